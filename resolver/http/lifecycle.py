"""``/api/enterprises``: applications for enterprise prefixes and the node admin's lifecycle
actions; ``/api/templates``: metadata templates (:mod:`registry.enterprises`,
:mod:`registry.templates`). Handlers decode, call, render; nothing more.

Anyone may apply, as many times per hour from one address as :data:`APPLY_PER_HOUR` (the
application's fields are bounded in size by :mod:`registry.model.enterprise`), so the queue
the node admin reviews cannot be flooded from one place.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque

from aiohttp import web

from registry.errors import CREATED, SUCCESS, ProtocolError, Throttled
from registry.model import enterprise as ent
from resolver.http.api import http_caller, read_json
from resolver.http.credentials import principal
from resolver.http.keys import NODE
from resolver.http.respond import json_response

APPLY_PER_HOUR = 5
_WINDOW = 3600.0
_ADDRESSES = 10_000  # addresses remembered (the oldest forgotten first)


class ApplyLimit:
    """At most ``per_window`` applications per address within ``window`` seconds."""

    def __init__(self, per_window: int = APPLY_PER_HOUR, window: float = _WINDOW) -> None:
        self.per_window = per_window
        self.window = window
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def take(self, address: str, now: float) -> None:
        times = self._seen.pop(address, None) or deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        self._seen[address] = times
        if len(self._seen) > _ADDRESSES:
            self._seen.popitem(last=False)
        if len(times) >= self.per_window:
            raise Throttled(int(times[0] + self.window - now) + 1)
        times.append(now)


APPLY_LIMIT: web.AppKey[ApplyLimit] = web.AppKey("apply_limit", ApplyLimit)


def _shown(e: ent.Enterprise) -> web.Response:
    return json_response({"responseCode": SUCCESS.response_code, **e.public()})


async def apply(request: web.Request) -> web.Response:
    body = await read_json(request)
    request.app[APPLY_LIMIT].take(request.remote or "?", time.monotonic())
    made = await request.app[NODE].enterprises.apply(body, http_caller(request))
    return json_response({"responseCode": CREATED.response_code, **made.public()}, CREATED.http)


async def list_enterprises(request: web.Request) -> web.Response:
    node = request.app[NODE]
    who = await principal(request, node, required=True)
    state = request.query.get("state") or None
    found = await node.enterprises.list_all(who, state)
    return json_response(
        {"responseCode": SUCCESS.response_code, "enterprises": [e.public() for e in found]}
    )


async def show_enterprise(request: web.Request) -> web.Response:
    node = request.app[NODE]
    who = await principal(request, node, required=True)
    return _shown(await node.enterprises.show(request.match_info["prefix"], who))


async def act(request: web.Request) -> web.Response:
    node = request.app[NODE]
    who = await principal(request, node, required=True)
    action = request.match_info["action"]
    if action not in ent.TRANSITIONS:
        raise ProtocolError(f"unknown action {action!r}; one of {', '.join(ent.ACTIONS)}"[:200])
    body = await read_json(request) if request.can_read_body else None
    reason = ent.reason_of(body, action)
    return _shown(
        await node.enterprises.act(
            request.match_info["prefix"], action, reason, who, http_caller(request)
        )
    )


# ------------------------------------------------------------------ templates


def _version(request: web.Request) -> int | None:
    raw = request.query.get("version")
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ProtocolError("version must be a positive number")
    return int(raw)


async def put_template(request: web.Request) -> web.Response:
    node = request.app[NODE]
    who = await principal(request, node, required=True)
    body = await read_json(request)
    made = await node.templates.put(request.match_info["name"], body, who, http_caller(request))
    return json_response(
        {
            "responseCode": CREATED.response_code,
            "handle": node.templates.handle(made.name),
            **made.to_json(),
        },
        CREATED.http,
    )


async def get_template(request: web.Request) -> web.Response:
    node = request.app[NODE]
    name = request.match_info["name"]
    found = await node.templates.get(name, _version(request))
    versions = sorted(await node.templates.versions(name))
    return json_response(
        {
            "responseCode": SUCCESS.response_code,
            "handle": node.templates.handle(name),
            **found.to_json(),
            "versions": versions,
        }
    )


async def list_templates(request: web.Request) -> web.Response:
    found = await request.app[NODE].templates.list_all()
    return json_response(
        {"responseCode": SUCCESS.response_code, "templates": [t.to_json() for t in found]}
    )
