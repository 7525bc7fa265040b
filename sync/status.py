"""What the node's link to the top-level looks like: the figures ``idnode sync status``
prints and the serving node adds to ``/metrics``."""

from __future__ import annotations

import time
from typing import Any

from resolver.node import Node
from sync.state import load_registration, load_status


async def status_of(node: Node) -> dict[str, Any]:
    """Registration, outbox, delivery and statistics figures of ``node``."""
    data_dir = node.config.data_dir
    reg = load_registration(data_dir)
    sent = load_status(data_dir)
    summary = await node.store.outbox_summary()
    now = time.time()
    return {
        "registered": reg is not None,
        "toplevel": reg.toplevel if reg else None,
        "app_id": reg.app_id if reg else None,
        "public_url": reg.public_url if reg else None,
        "registered_at": reg.registered_at if reg else None,
        "pending": summary.pending,
        "oldest_pending_age": round(now - summary.oldest, 3) if summary.oldest else None,
        "dead": summary.dead,
        "delivered": sent.delivered,
        "last_attempt": sent.last_attempt,
        "last_success": sent.last_success,
        "last_error": sent.last_error,
        "last_error_at": sent.last_error_at,
        "last_heartbeat": sent.heartbeat,
        "stats": await node.store.stats_totals(),
    }


async def metric_lines(node: Node) -> list[str]:
    """:func:`status_of` as Prometheus gauges (``idnode_sync_*``)."""
    sync = await status_of(node)
    gauges = {
        "idnode_sync_registered": int(sync["registered"]),
        "idnode_sync_pending_items": sync["pending"],
        "idnode_sync_oldest_pending_age_seconds": sync["oldest_pending_age"] or 0,
        "idnode_sync_refused_items": sync["dead"],
        "idnode_sync_delivered_items": sync["delivered"],
        "idnode_sync_last_success_timestamp_seconds": sync["last_success"] or 0,
        "idnode_sync_last_error_timestamp_seconds": sync["last_error_at"] or 0,
    }
    lines = []
    for metric, value in gauges.items():
        lines += [f"# TYPE {metric} gauge", f"{metric} {value}"]
    for prefix, counts in sync["stats"].items():
        for name, value in counts.items():
            lines.append(f'idnode_sync_stats_{name}{{prefix="{prefix}"}} {value}')
    return lines
