"""``GET /api/audit``: the audit log for the node admin, filtered and paged by entry
number (keyset paging: ``after`` is the last number of the page before, ``next`` in the
answer)."""

from __future__ import annotations

from aiohttp import web

from registry.audit import identity_key, parse_time
from registry.errors import SUCCESS, InsufficientPermissions, ProtocolError
from registry.model import jsonapi
from registry.model.identifiers import handle_key
from registry.store.chain import AuditQuery
from resolver.http.credentials import principal
from resolver.http.keys import NODE
from resolver.http.respond import json_response

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def _time(raw: str | None, name: str) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        return parse_time(raw)
    except ValueError:
        raise ProtocolError(
            f"Invalid {name} {raw!r}: expected seconds since the epoch or ISO 8601"[:200]
        ) from None


def query_of(q: web.Request) -> tuple[AuditQuery, int, int]:
    """The filters, ``after`` and ``limit`` of a request's query string."""
    params = q.query
    prefix, identity = params.get("prefix") or None, params.get("identity") or None
    query = AuditQuery(
        prefix=None if prefix is None else handle_key(prefix),
        identity=None if identity is None else identity_key(identity),
        action=params.get("action") or None,
        since=_time(params.get("since"), "since"),
        until=_time(params.get("until"), "until"),
    )
    after = jsonapi.integer(params.get("after", "0"), "after")
    limit = jsonapi.integer(params.get("limit", str(DEFAULT_LIMIT)), "limit")
    if after < 0 or not 1 <= limit <= MAX_LIMIT:
        raise ProtocolError(f"after must not be negative, limit must be 1 to {MAX_LIMIT}")
    return query, after, limit


async def audit_entries(request: web.Request) -> web.Response:
    node = request.app[NODE]
    who = await principal(request, node, required=True)
    assert who is not None
    if not await node.registry.is_node_admin(who):
        raise InsufficientPermissions(f"{who.identity} may not read the audit log")
    query, after, limit = query_of(request)
    entries = await node.store.audit_entries(query, after, limit)
    body = {
        "responseCode": SUCCESS.response_code,
        "entries": [e.as_json() for e in entries],
        "next": entries[-1].seq if len(entries) == limit else None,
    }
    return json_response(body)
