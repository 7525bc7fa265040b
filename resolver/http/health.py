"""``GET /healthz`` (the process answers) and ``GET /readyz`` (it can serve: the checks of
:mod:`resolver.health`), as JSON; 503 while not ready."""

from __future__ import annotations

import time

from aiohttp import web

from resolver import __version__
from resolver.health import readiness
from resolver.http.keys import NODE
from resolver.http.respond import json_response

NO_STORE = {"Cache-Control": "no-store"}


async def healthz(request: web.Request) -> web.Response:
    started = request.app[NODE].telemetry.started
    body = {
        "status": "ok",
        "version": __version__,
        "uptime_seconds": round(time.time() - started, 3),
    }
    return json_response(body, headers=NO_STORE)


async def readyz(request: web.Request) -> web.Response:
    ready = await readiness(request.app[NODE])
    return json_response(ready.to_json(), 200 if ready.ok else 503, NO_STORE)
