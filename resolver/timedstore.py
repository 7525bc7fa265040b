"""A :class:`registry.store.base.Store` that times every call of the store it wraps.

:meth:`resolver.node.Node.open` puts it around whichever store the configuration names, so
that the registry, the cache and the sync agent are timed alike, and no backend needs to know
of metrics. Each call is filed under its method's name in ``idnode_store_duration_seconds``;
a call that fails is timed too (a timeout is latency as much as an answer is).

Single-record reads (``get``: every cache miss) are timed one in :data:`GET_SAMPLE`: timing
one takes a coroutine around the store's own and the bookkeeping, ~3,700 instructions (0.7%
of a cold resolution), while the others are handed the store's coroutine as it is. So
``op="get"``'s ``_count`` counts the reads timed, not all reads (the cache's
``idnode_cache_misses_total`` counts those).

A store several hosts share (:class:`~registry.store.base.SharedStore`) stays one when timed
(:func:`timed`): the node and the sync agent tell it apart by that, to join the other hosts
and to take the sender's lease among them.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Coroutine, Mapping, Sequence
from time import perf_counter
from typing import Any, TypeVar

from registry.store.base import (
    CacheListener,
    Lease,
    Mutation,
    OutboxItem,
    OutboxSummary,
    Record,
    ReplicaStatus,
    SharedStore,
    Store,
    WritePositions,
)
from registry.store.chain import AuditEntry, AuditHead, AuditQuery
from resolver.metrics import HistogramFamily

T = TypeVar("T")
R = TypeVar("R")

GET_SAMPLE = 16  # one single-record read in this many is timed (a power of two)


def timed(store: Store, family: HistogramFamily) -> TimedStore:
    """``store`` with every call timed into ``family``; still a shared store if it is one."""
    if isinstance(store, SharedStore):
        return TimedSharedStore(store, family)
    return TimedStore(store, family)


class TimedStore:
    """``inner``, every call timed into ``family`` (label ``op``: the method's name)."""

    def __init__(self, inner: Store, family: HistogramFamily) -> None:
        self.inner = inner
        self._family = family
        self._get = family.labels("get")
        self._reads = itertools.count()

    async def _timed(self, op: str, call: Awaitable[T]) -> T:
        start = perf_counter()
        try:
            return await call
        finally:
            self._family.labels(op).observe(perf_counter() - start)

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def schema_version(self) -> int:
        return await self._timed("schema_version", self.inner.schema_version())

    def get(self, key: str) -> Coroutine[Any, Any, Record | None]:
        if next(self._reads) & (GET_SAMPLE - 1):
            return self.inner.get(key)
        return self._timed_get(key)

    async def _timed_get(self, key: str) -> Record | None:
        start = perf_counter()
        try:
            return await self.inner.get(key)
        finally:
            self._get.observe(perf_counter() - start)

    async def get_many(self, keys: Sequence[str]) -> dict[str, Record]:
        return await self._timed("get_many", self.inner.get_many(keys))

    async def transact(self, keys: Sequence[str], mutation: Mutation[R]) -> R:
        return await self._timed("transact", self.inner.transact(keys, mutation))

    async def list_handles(
        self, prefix_key: str, offset: int = 0, limit: int | None = None
    ) -> tuple[int, list[str]]:
        return await self._timed("list_handles", self.inner.list_handles(prefix_key, offset, limit))

    async def iter_handles(
        self, prefix_key: str, after_key: str | None, limit: int
    ) -> list[tuple[str, str]]:
        return await self._timed(
            "iter_handles", self.inner.iter_handles(prefix_key, after_key, limit)
        )

    async def reverse_lookup(
        self, type_key: str, pattern: str, limit: int, within: Sequence[str] | None = None
    ) -> list[str]:
        return await self._timed(
            "reverse_lookup", self.inner.reverse_lookup(type_key, pattern, limit, within)
        )

    async def scan(self, after_key: str | None, limit: int) -> list[tuple[str, Record]]:
        return await self._timed("scan", self.inner.scan(after_key, limit))

    async def count(self) -> int:
        return await self._timed("count", self.inner.count())

    async def outbox_peek(self, limit: int) -> list[OutboxItem]:
        return await self._timed("outbox_peek", self.inner.outbox_peek(limit))

    async def outbox_done(self, delivered: Sequence[int], dead: Mapping[int, str]) -> None:
        await self._timed("outbox_done", self.inner.outbox_done(delivered, dead))

    async def outbox_summary(self) -> OutboxSummary:
        return await self._timed("outbox_summary", self.inner.outbox_summary())

    async def stats_close(self, before: int) -> int:
        return await self._timed("stats_close", self.inner.stats_close(before))

    async def stats_totals(self) -> dict[str, dict[str, int]]:
        return await self._timed("stats_totals", self.inner.stats_totals())

    async def audit_head(self) -> AuditHead:
        return await self._timed("audit_head", self.inner.audit_head())

    async def audit_entries(self, query: AuditQuery, after: int, limit: int) -> list[AuditEntry]:
        return await self._timed("audit_entries", self.inner.audit_entries(query, after, limit))

    async def audit_prune(self, before: float, limit: int) -> int:
        return await self._timed("audit_prune", self.inner.audit_prune(before, limit))


class TimedSharedStore(TimedStore):
    """A :class:`TimedStore` over a store several hosts share: joining the hosts and the
    leases are passed through (untimed: they are no store calls a request waits on)."""

    def __init__(self, inner: Store, family: HistogramFamily) -> None:
        if not isinstance(inner, SharedStore):
            raise TypeError(f"{type(inner).__name__} is not a store hosts share")
        super().__init__(inner, family)
        self.shared = inner

    async def share(
        self,
        host: int,
        lease: float,
        listener: CacheListener | None,
        positions: WritePositions | None = None,
    ) -> None:
        await self.shared.share(host, lease, listener, positions)

    def lease(self, name: str) -> Lease:
        return self.shared.lease(name)

    def replicas(self) -> list[ReplicaStatus]:
        return self.shared.replicas()
