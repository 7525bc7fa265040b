"""``GET /metrics``: the node's counters in the Prometheus text format."""

from __future__ import annotations

from aiohttp import web

from resolver.http.keys import NODE
from sync.cli import status_of


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
    # The same figures as `idnode sync status`.
    sync = await status_of(node)
    gauges |= {
        "idnode_sync_registered": int(sync["registered"]),
        "idnode_sync_pending_items": sync["pending"],
        "idnode_sync_oldest_pending_age_seconds": sync["oldest_pending_age"] or 0,
        "idnode_sync_refused_items": sync["dead"],
        "idnode_sync_delivered_items": sync["delivered"],
        "idnode_sync_last_success_timestamp_seconds": sync["last_success"] or 0,
        "idnode_sync_last_error_timestamp_seconds": sync["last_error_at"] or 0,
    }
    for metric, value in gauges.items():
        lines += [f"# TYPE {metric} gauge", f"{metric} {value}"]
    for prefix, counts in sync["stats"].items():
        for name, value in counts.items():
            lines.append(f'idnode_sync_stats_{name}{{prefix="{prefix}"}} {value}')
    return web.Response(
        text="\n".join(lines) + "\n",
        content_type="text/plain",
        charset="utf-8",
        headers={"Cache-Control": "no-store"},
    )
