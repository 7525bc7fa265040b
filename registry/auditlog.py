"""The stored audit log as its operator uses it: read in order (paged by number, so any
length streams), verified end to end, pruned to its retention, and told of the node's
configuration. What an entry holds and how entries are chained: :mod:`registry.audit`,
:mod:`registry.store.chain`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from registry.audit import Caller
from registry.service import Registry
from registry.store.base import Store
from registry.store.chain import AuditEntry, AuditQuery, Verifier

PAGE = 5000  # entries read per store call when streaming
PRUNE_BATCH = 10_000  # entries deleted per transaction (a writer waits no longer)
DAY = 86400


async def stream(
    store: Store, query: AuditQuery, after: int = 0, page: int = PAGE
) -> AsyncIterator[AuditEntry]:
    """Every entry matching ``query`` numbered after ``after``, in order."""
    while True:
        entries = await store.audit_entries(query, after, page)
        for entry in entries:
            yield entry
        if len(entries) < page:
            return
        after = entries[-1].seq


async def verify(store: Store, page: int = PAGE) -> Verifier:
    """Walk the whole chain, from the anchor to the head as it was when the walk began, a
    page at a time; the verifier says whether it holds, or the first entry that breaks it."""
    verifier = Verifier(await store.audit_head())
    after = verifier.head.anchor_seq
    while after < verifier.head.seq:
        entries = await store.audit_entries(AuditQuery(), after, page)
        if not entries or not verifier.feed(entries):
            break
        after = entries[-1].seq
    verifier.finish()
    return verifier


async def prune(store: Store, days: int, now: float, batch: int = PRUNE_BATCH) -> int:
    """Delete the entries older than ``days`` (in transactions of ``batch``); how many. The
    last one deleted stays the anchor, so the rest still verifies."""
    total = 0
    while True:
        done = await store.audit_prune(now - days * DAY, batch)
        total += done
        if done < batch:
            return total


def settings_digest(settings: Mapping[str, Any]) -> tuple[str, str]:
    """(SHA-256, canonical JSON) of the settings a node runs with."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest(), text


async def record_config(registry: Registry, settings: Mapping[str, Any], caller: Caller) -> bool:
    """Append a ``config`` entry if ``settings`` (no secret among them) differ from those
    the last one recorded; whether it did. The entry holds their digest (``after``), the
    previous one (``before``) and the settings themselves (``detail``)."""
    digest, text = settings_digest(settings)
    last = ""
    async for entry in stream(registry.store, AuditQuery(action="config")):
        last = entry.after  # config entries are few: one per change of settings
    if last == digest:
        return False
    ctx = registry.context(caller)
    entry_ = ctx.entry("config", before=last, after=digest, detail=text)
    await registry.store.transact([], lambda _: ([entry_], None))
    return True
