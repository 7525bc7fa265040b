"""Reading records from a Handle HTTP JSON API (another node, the top-level): the one
client both forwarding and ``idnode verify --server`` use."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson

from registry.errors import RC_HANDLE_NOT_FOUND, RC_VALUES_NOT_FOUND, HandleError
from registry.model.jsonvalues import value_from_json
from registry.model.values import Value
from resolver.requestid import REQUEST_ID, REQUEST_ID_HEADER

if TYPE_CHECKING:
    import aiohttp

FETCH_TIMEOUT = 5.0


class FetchError(Exception):
    """The server did not answer, or answered something that is not a record."""


async def get_json(
    session: aiohttp.ClientSession,
    base: str,
    handle: str,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """``GET base/api/handles/handle``: the HTTP status and the JSON object answered. The
    query carries the id of the request it is made for, if any, so that the other node's
    logs show it too."""
    # Imported here: importing aiohttp's client loads the system's CA certificates (~0.1 s),
    # which CLI commands that never fetch (get, put, import, ...) should not pay.
    import aiohttp

    url = f"{base}/api/handles/{quote(handle, safe='/:')}"
    rid = REQUEST_ID.get()
    if rid is not None:
        headers = {**(headers or {}), REQUEST_ID_HEADER: rid}
    try:
        async with session.get(
            url, headers=headers, timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT)
        ) as resp:
            raw = await resp.read()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise FetchError(f"fetching {handle} from {base}: {type(exc).__name__}: {exc}") from None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise FetchError(f"fetching {handle} from {base}: HTTP {status}, not a JSON object")
    return status, body


def values_of(body: Mapping[str, Any], handle: str) -> tuple[Value, ...]:
    """The values of a JSON answer ``body`` for ``handle``."""
    try:
        return tuple(value_from_json(v, keep_timestamp=True) for v in body.get("values", []))
    except HandleError as exc:
        raise FetchError(f"{handle}: unreadable value: {exc.message}") from None


async def fetch_values(
    session: aiohttp.ClientSession, base: str, handle: str
) -> tuple[Value, ...] | None:
    """The values of ``handle`` at ``base``; None when it does not exist there."""
    status, body = await get_json(session, base, handle)
    if status == 404 or body.get("responseCode") == RC_HANDLE_NOT_FOUND:
        return None
    if status != 200 or body.get("responseCode") not in (1, RC_VALUES_NOT_FOUND):
        raise FetchError(f"fetching {handle} from {base}: HTTP {status}")
    return values_of(body, handle)
