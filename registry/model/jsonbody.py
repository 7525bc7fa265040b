"""The body of a write as the Handle JSON API takes it, from bytes to values: whichever
carries it (an HTTP PUT, ``idnode put --json``)."""

from __future__ import annotations

from typing import Any

import orjson

from registry.errors import ProtocolError
from registry.model.jsonvalues import value_from_json
from registry.model.values import Value


def decode(body: bytes, method: str = "PUT") -> Any:
    """The JSON of a write's body, or a protocol error saying what is wrong with it (in the
    reference's words for a PUT; ``method`` names the request that carried it)."""
    if not body.strip():
        raise ProtocolError(f"Invalid JSON in {method} request: the body is empty")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"Invalid JSON in {method} request: {exc}") from None


def values_from_body(body: Any) -> tuple[list[Value], str | None]:
    """The values and the optional ``handle`` field of a decoded body: ``{"values":[...]}``,
    an array of values, or one value."""
    handle = None
    if isinstance(body, dict) and "values" in body:
        handle = body.get("handle")
        if handle is not None and not isinstance(handle, str):
            raise ProtocolError("The body's handle field must be a string")
        items = body["values"]
        if not isinstance(items, list):
            raise ProtocolError("values must be a JSON array")
    elif isinstance(body, list):
        items = body
    elif isinstance(body, dict) and "index" in body:
        items = [body]
    else:
        raise ProtocolError(
            'Invalid JSON in PUT request: expected {"values":[...]}, an array '
            "of values, or one value"
        )
    return [value_from_json(v) for v in items], handle
