"""What the node's link to the top-level looks like: the figures ``idnode sync status``
prints and the serving node adds to ``/metrics``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from registry.store.base import STAT_FIELDS
from resolver.node import Node
from sync.state import Registration, SenderStatus, load_registration, load_status


def _files(data_dir: Path) -> tuple[Registration | None, SenderStatus]:
    return load_registration(data_dir), load_status(data_dir)


async def status_of(node: Node) -> dict[str, Any]:
    """Registration, outbox, delivery and statistics figures of ``node``."""
    # The sync files are read in a thread: a serving process answers /metrics with these,
    # and a slow disk must not hold up the requests sharing its event loop.
    reg, sent = await asyncio.to_thread(_files, node.config.data_dir)
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


# (metric, what status_of calls it, help): the gauges of the link to the top-level.
GAUGES = (
    ("idnode_sync_registered", "registered", "1 when the node is registered with a top-level."),
    ("idnode_sync_pending_items", "pending", "Outbox items not yet delivered to the top-level."),
    (
        "idnode_sync_oldest_pending_age_seconds",
        "oldest_pending_age",
        "Age of the oldest outbox item not yet delivered (0: none).",
    ),
    ("idnode_sync_refused_items", "dead", "Outbox items the top-level refused for good."),
    (
        "idnode_sync_delivered_items",
        "delivered",
        "Outbox items the top-level accepted, as the sender last recorded.",
    ),
    (
        "idnode_sync_last_success_timestamp_seconds",
        "last_success",
        "When a delivery last succeeded (0: never).",
    ),
    (
        "idnode_sync_last_error_timestamp_seconds",
        "last_error_at",
        "When a delivery last failed (0: never).",
    ),
)


async def metric_lines(node: Node) -> list[str]:
    """:func:`status_of` as Prometheus gauges (``idnode_sync_*``)."""
    sync = await status_of(node)
    lines = []
    for metric, field, help_text in GAUGES:
        value = sync[field]
        shown = int(value) if isinstance(value, bool) else value or 0
        lines += _gauge(metric, help_text, [f"{metric} {shown}"])
    for name in STAT_FIELDS:
        # Gauges, not counters: intervals already reported are dropped after a retention
        # period, and the totals fall with them. Prefixes are digits and dots: no escaping.
        metric = f"idnode_sync_stats_{name}"
        samples = [f'{metric}{{prefix="{p}"}} {c[name]}' for p, c in sync["stats"].items()]
        help_text = f"{name.capitalize()} per prefix over the statistics intervals kept."
        lines += _gauge(metric, help_text, samples)
    return lines


def _gauge(metric: str, help_text: str, samples: list[str]) -> list[str]:
    # The text format by hand: resolver.metrics is not part of the node's public surface.
    return [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge", *samples]
