"""What a Handle JSON API request says, and how its errors are written, without any HTTP
machinery: the handle its path names, its query parameters (with the reference server's
conventions) and the JSON of an error answer. The node's API and the mock top-level's both
read requests and write errors through here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from registry.errors import HandleError, InvalidHandle, ProtocolError, TemplateViolation

if TYPE_CHECKING:
    from multidict import MultiMapping

API_HANDLES = "/api/handles/"


def path_handle(raw: str, prefix: str = API_HANDLES) -> str:
    """The handle the raw request target ``raw`` names after ``prefix``, exactly as sent,
    percent-decoded ('+' stays '+'); the query string is not part of it."""
    if "?" in raw:
        raw = raw.partition("?")[0]
    rest = raw[len(prefix) :] if raw.startswith(prefix) else ""
    if "%" not in rest:
        return rest
    try:
        return unquote_to_bytes(rest).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidHandle("Handle is not valid UTF-8 (check its percent-escapes)") from None


def error_json(exc: HandleError, handle: str | None) -> dict[str, Any]:
    """The body of an error answer: ``{"responseCode":N[,"message":M][,"handle":H]}``."""
    body: dict[str, Any] = {"responseCode": exc.response_code}
    if exc.message:
        body["message"] = exc.message
    if handle is not None:
        body["handle"] = handle
    if isinstance(exc, TemplateViolation):
        body["errors"] = exc.errors
    return body


def flag(query: MultiMapping[str], name: str) -> bool | None:
    """A boolean parameter: absent → None; present without a value → True."""
    if name not in query:
        return None
    raw = query[name].strip().lower()
    return raw in ("", "true", "1", "yes")


def overwrite(query: MultiMapping[str]) -> bool:
    """``overwrite``: missing means true; any value but "true" (any case) means false."""
    if "overwrite" not in query:
        return True
    return query["overwrite"].strip().lower() == "true"


def integer(raw: str, name: str) -> int:
    """The whole number ``raw`` of parameter ``name``, or a protocol error naming it."""
    try:
        return int(raw.strip(), 10)
    except ValueError:
        raise ProtocolError(f"Invalid {name} {raw!r}: expected an integer"[:200]) from None


def indexes(query: MultiMapping[str]) -> tuple[tuple[int, ...], bool]:
    """The ``index`` parameters and whether ``index=various`` was given."""
    out: list[int] = []
    various = False
    for raw in query.getall("index", ()):
        if raw.strip().lower() == "various":
            various = True
            continue
        out.append(integer(raw, "index"))
    return tuple(out), various


def types(query: MultiMapping[str]) -> tuple[str, ...]:
    """The ``type`` parameters, in order."""
    return tuple(query.getall("type", ()))
