"""``GET /metrics``: the node's counters in the Prometheus text format."""

from __future__ import annotations

from aiohttp import web

from resolver.http.keys import NODE


async def metrics(request: web.Request) -> web.Response:
    node = request.app[NODE]
    cache = node.cache
    lines = []
    for name, value in cache.stats.as_dict().items():
        metric = f"idnode_cache_{name}_total"
        lines += [f"# TYPE {metric} counter", f"{metric} {value}"]
    gauges = {
        "idnode_cache_local_entries": len(cache.local),
        "idnode_cache_local_bytes": cache.local.bytes,
        "idnode_cache_redis_up": int(cache.redis is not None and not cache.redis.breaker.is_open),
    }
    for metric, value in gauges.items():
        lines += [f"# TYPE {metric} gauge", f"{metric} {value}"]
    for source in node.metrics:  # the sync agent's figures (idnode_sync_*)
        lines += await source()
    return web.Response(
        text="\n".join(lines) + "\n",
        content_type="text/plain",
        charset="utf-8",
        headers={"Cache-Control": "no-store"},
    )
