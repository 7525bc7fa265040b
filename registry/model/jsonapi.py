"""Query-string parsing with the reference server's conventions."""

from __future__ import annotations

from multidict import MultiMapping

from registry.errors import ProtocolError


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
    return tuple(query.getall("type", ()))
