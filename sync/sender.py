"""Delivering the outbox to the top-level node: batches in ``seq`` order (so per prefix in
the order they were committed), retried with exponential backoff and jitter until accepted.

Delivery is at least once — a batch whose answer was lost is sent again — and exactly once in
effect: every item's id (``<app id>:<seq>``) is an idempotency key the top-level remembers,
and it answers ``duplicate`` for a retry. An item is deleted from the outbox only after the
top-level answered for it; one it ``rejected`` (permanently) is moved to the dead-letter
table for the operator, never dropped silently.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from registry.store.base import OutboxItem, Store
from sync.client import IntakeClient, IntakeError
from sync.protocol import BATCH_PATH, MAX_BATCH

log = logging.getLogger("idnode.sync")

BACKOFF_BASE = 0.5
BACKOFF_CAP = 60.0


def item_id(app: str, seq: int) -> str:
    return f"{app}:{seq}"


def backoff(failures: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait after ``failures`` consecutive failures: exponential, capped, with
    "equal jitter" (half fixed, half random) so many nodes do not retry in step."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** min(failures, 16))
    return float(ceiling / 2 + rng() * ceiling / 2)


@dataclass
class DrainResult:
    delivered: int = 0
    refused: int = 0


def batch_body(app: str, items: list[OutboxItem]) -> dict[str, object]:
    return {
        "items": [
            {
                "prefix": item.prefix,
                **item.body,
                "id": item_id(app, item.seq),
                "kind": item.kind,
            }
            for item in items
        ]
    }


async def drain(
    store: Store, client: IntakeClient, limit: int = MAX_BATCH, max_batches: int | None = None
) -> DrainResult:
    """Send pending items until the outbox is empty (or ``max_batches`` were sent). Raises
    :class:`IntakeError` when a batch is not answered; what was answered stays answered."""
    out = DrainResult()
    batches = 0
    while max_batches is None or batches < max_batches:
        items = await store.outbox_peek(limit)
        if not items:
            break
        answer = await client.post(BATCH_PATH, batch_body(client.app, items))
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list):
            raise IntakeError("top-level answered a batch without results", transient=True)
        by_id = {r.get("id"): r for r in results if isinstance(r, dict)}
        delivered: list[int] = []
        dead: dict[int, str] = {}
        for item in items:
            result = by_id.get(item_id(client.app, item.seq))
            status = result.get("status") if result else None
            if status in ("accepted", "duplicate"):
                delivered.append(item.seq)
            elif status == "rejected":
                assert result is not None
                dead[item.seq] = str(result.get("error") or "rejected")
                log.warning("top-level refused outbox item %s: %s", item.seq, dead[item.seq])
            # no answer for an item: it stays and goes again with the next batch
        await store.outbox_done(delivered, dead)
        out.delivered += len(delivered)
        out.refused += len(dead)
        batches += 1
        if not delivered and not dead:
            raise IntakeError("top-level answered for none of the batch", transient=True)
    return out
