"""``GET /metrics``: the node's figures in the Prometheus text format
(:func:`resolver.metrics.exposition`)."""

from __future__ import annotations

from aiohttp import web

from resolver.http.keys import NODE
from resolver.metrics import exposition


async def metrics(request: web.Request) -> web.Response:
    text = await exposition(request.app[NODE])
    return web.Response(
        text=text,
        content_type="text/plain",
        charset="utf-8",
        headers={"Cache-Control": "no-store"},
    )
