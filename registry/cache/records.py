"""Read-through record lookups: in-process tier → Redis → store, exact and stampede-proof.

``get`` captures the key's generation *before* reading anything; whatever it then finds or
loads is tagged with that generation and is only ever served while the generation is still
current (see :mod:`registry.cache.generations`). Concurrent misses for one key and
generation share a single store read.

With a store several hosts share, the cache is exact only while the host hears every other
host's writes (:mod:`registry.store.postgres.channel`); while it may not, it is *suspended*:
every entry made before is refused (all generations bumped) and nothing is served from
Redis or cached until it :meth:`resume` s. The hot path (:meth:`peek`) needs no check of its
own for that: the bumped generations refuse every entry it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable

from registry.cache.entry import CacheEntry, Renderer, decode_entry, encode_entry, record_ttl
from registry.cache.generations import GenerationTable
from registry.cache.local import LocalTier
from registry.cache.redis_tier import RedisTier
from registry.cache.stats import CacheStats
from registry.store.base import Store


class RecordCache:
    def __init__(
        self,
        store: Store,
        gens: GenerationTable,
        *,
        redis: RedisTier | None = None,
        stats: CacheStats | None = None,
        max_entries: int = 100_000,
        max_bytes: int = 64 << 20,
        max_ttl: float = 3600.0,
        negative_ttl: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.gens = gens
        self.redis = redis
        self.stats = stats or CacheStats()
        self.local = LocalTier(max_entries, max_bytes, self.stats)
        self.max_ttl = max_ttl
        self.negative_ttl = negative_ttl
        self.clock = clock
        # Renderings every cached entry gets when loaded from the store (transports register
        # theirs), so that they travel with it through Redis: see :mod:`.entry`.
        self.renderers: dict[str, Renderer] = {}
        self._inflight: dict[tuple[str, int], asyncio.Future[CacheEntry]] = {}
        self._cleanup: set[asyncio.Task[None]] = set()
        self.coherent = True  # False: suspended, reads go to the store (see the module)

    def suspend(self) -> None:
        """Stop serving from and filling the tiers, refusing every entry made so far: the
        host may have missed another host's write."""
        if self.coherent:
            self.stats.suspensions += 1
        self.coherent = False
        self.gens.bump_all()
        self.local.clear()

    def resume(self) -> None:
        """Cache again, from nothing: the host hears every write from now on (and any it
        missed before is refused with everything else)."""
        self.gens.bump_all()
        self.coherent = True

    def peek(self, key: str) -> CacheEntry | None:
        """The in-process tier's current entry for ``key``, or None: a hit without
        awaiting anything (the hot path; :meth:`get` does everything else)."""
        entries = self.local.entries  # LocalTier.get, inlined: the hot path
        entry = entries.get(key)
        if (
            entry is not None
            and entry.gen == self.gens.get_slot(entry.slot)  # the entry knows its slot
            and entry.expires_at > self.clock()
        ):
            entries.move_to_end(key)
            if entry.found:
                self.stats.local_hits += 1
            else:
                self.stats.negative_hits += 1
            return entry
        return None

    def current(self, entry: CacheEntry) -> bool:
        """Whether ``entry`` (one :meth:`peek` or :meth:`get` returned) may still be served:
        no write to its key since and not expired. For those who keep something built from
        an entry; unlike :meth:`peek` it neither counts a hit nor refreshes the entry's place
        in the in-process tier."""
        return entry.gen == self.gens.get_slot(entry.slot) and entry.expires_at > self.clock()

    async def get(self, key: str, *, bypass: bool = False) -> CacheEntry:
        """The entry for ``key`` (``entry.found`` is false when it does not exist)."""
        gens = self.gens
        if bypass:  # auth=true: authoritative, straight from the store
            gen = gens.get(key)
            self.stats.bypasses += 1
            record = await self.store.get(key)
            return CacheEntry(key, record, gens.epoch, gen, 0.0)
        entry = self.peek(key)
        if entry is not None:
            return entry
        offset = gens.slot_of(key)
        gen = gens.get_slot(offset)
        stale = self.local.get(key)
        if stale is not None:
            self._refused(stale, gen)
            self.local.discard(key)
        flight = self._inflight.get((key, gen))
        if flight is not None:
            self.stats.coalesced += 1
            return await asyncio.shield(flight)
        flight = asyncio.get_running_loop().create_future()
        self._inflight[(key, gen)] = flight
        try:
            entry = await self._load(key, offset, gen)
        except BaseException as exc:
            flight.set_exception(exc)
            flight.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        finally:
            del self._inflight[(key, gen)]
        flight.set_result(entry)
        return entry

    def _refused(self, entry: CacheEntry, gen: int) -> None:
        if entry.gen != gen or entry.epoch != self.gens.epoch:
            self.stats.stale += 1
        else:
            self.stats.expired += 1

    async def _load(self, key: str, offset: int, gen: int) -> CacheEntry:
        if self.redis is not None and self.coherent:
            blob = await self.redis.get(key)
            if blob is not None:
                entry = decode_entry(key, blob)
                if entry is not None:
                    if (
                        entry.epoch == self.gens.epoch
                        and entry.gen == self.gens.get_slot(offset)
                        and entry.expires_at > self.clock()
                    ):
                        if entry.found:
                            self.stats.redis_hits += 1
                        else:
                            self.stats.negative_hits += 1
                        entry.slot = offset
                        self.local.put(entry)
                        return entry
                    self._refused(entry, self.gens.get_slot(offset))
        self.stats.misses += 1
        record = await self.store.get(key)
        now = self.clock()
        ttl = record_ttl(record, now, self.max_ttl, self.negative_ttl)
        entry = CacheEntry(key, record, self.gens.epoch, gen, now + ttl)
        entry.slot = offset
        # A write committed while we read makes this entry stale before it is cached: keep
        # it out of both tiers (it is still a correct answer to a request that raced it).
        if ttl > 0 and self.coherent and self.gens.get_slot(offset) == gen:
            if record is not None:
                for fmt, fn in self.renderers.items():
                    entry.render(fmt, fn)
            self.local.put(entry)
            if self.redis is not None:
                self.redis.fill(key, encode_entry(entry), ttl)
        return entry

    async def invalidate(self, keys: Iterable[str]) -> None:
        """After a committed write, before it is acknowledged: no tier of any process on
        this host may serve the old records from now on."""
        keys = list(keys)
        self.gens.bump(keys)
        for key in keys:
            self.local.discard(key)
        if self.redis is not None:
            # Freeing the dead Redis entries is hygiene, not correctness: not awaited.
            task = asyncio.create_task(self.redis.delete(keys))
            self._cleanup.add(task)
            task.add_done_callback(self._cleanup.discard)

    async def close(self) -> None:
        for task in list(self._cleanup):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.redis is not None:
            await self.redis.close()
        self.gens.close()
