"""The record cache against real components: SQLite store, the mmap generation table, and
(in test_cache_redis.py / test_cache_processes.py) real Redis servers."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

import pytest

from registry.cache.entry import CacheEntry, decode_entry, encode_entry, record_ttl
from registry.cache.generations import _HEADER, SLOTS, GenerationTable
from registry.cache.records import RecordCache
from registry.model.identifiers import handle_key
from registry.model.values import PERM_SECRET, TTL_ABSOLUTE, Value
from registry.store.base import Change, Delete, Put, Record, key_hash
from registry.store.sqlite import SQLiteStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class CountingStore(SQLiteStore):
    """A real SQLite store that counts the reads the cache makes, and can hold them."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, readers=2)
        self.reads = 0
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def get(self, key: str) -> Record | None:
        self.reads += 1
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        return await super().get(key)


def url(text: str, ttl: int = 86400) -> Value:
    return Value(1, "URL", text.encode(), ttl=ttl)


async def write(store: SQLiteStore, cache: RecordCache, handle: str, *values: Value) -> None:
    """A write as the write service does it: commit, then invalidate before acknowledging."""
    key = handle_key(handle)

    def mutation(_: Mapping[str, Record]) -> tuple[Sequence[Change], None]:
        if not values:
            return [Delete(key)], None
        return [Put(key, Record(handle, values))], None

    await store.transact([key], mutation)
    await cache.invalidate([key])


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[tuple[CountingStore, RecordCache, Clock]]:
    store = CountingStore(tmp_path / "reg.db")
    await store.open()
    clock = Clock()
    cache = RecordCache(
        store, GenerationTable.open(tmp_path), clock=clock, max_ttl=600, negative_ttl=5
    )
    try:
        yield store, cache, clock
    finally:
        await cache.close()
        await store.close()


KEY = handle_key("88.1/a")


async def test_miss_then_hit(parts: tuple[CountingStore, RecordCache, Clock]) -> None:
    store, cache, _ = parts
    await write(store, cache, "88.1/a", url("https://x/1"))
    first = await cache.get(KEY)
    assert first.record is not None and first.record.values[0].data == b"https://x/1"
    assert (store.reads, cache.stats.misses, cache.stats.local_hits) == (1, 1, 0)
    second = await cache.get(KEY)
    assert second is first  # the very same ready-to-send entry
    assert (store.reads, cache.stats.local_hits) == (1, 1)


async def test_write_invalidates(parts: tuple[CountingStore, RecordCache, Clock]) -> None:
    store, cache, _ = parts
    await write(store, cache, "88.1/a", url("https://x/1"))
    await cache.get(KEY)
    await write(store, cache, "88.1/a", url("https://x/2"))
    got = await cache.get(KEY)
    assert got.record is not None and got.record.values[0].data == b"https://x/2"
    await write(store, cache, "88.1/a")  # delete
    assert (await cache.get(KEY)).record is None


async def test_negative_caching_and_create(parts: tuple[CountingStore, RecordCache, Clock]) -> None:
    store, cache, clock = parts
    assert (await cache.get(KEY)).record is None
    assert (await cache.get(KEY)).record is None
    assert (store.reads, cache.stats.negative_hits) == (1, 1)
    clock.now += 5.1  # the negative TTL passes
    assert (await cache.get(KEY)).record is None
    assert store.reads == 2 and cache.stats.expired == 1
    await write(store, cache, "88.1/a", url("https://x/1"))  # a create ends the negative entry
    got = await cache.get(KEY)
    assert got.record is not None and store.reads == 3


async def test_ttl_is_smallest_value_ttl_capped(
    parts: tuple[CountingStore, RecordCache, Clock],
) -> None:
    store, cache, clock = parts
    await write(store, cache, "88.1/a", url("https://x/1", ttl=30), Value(2, "DESC", b"d", ttl=90))
    await cache.get(KEY)
    clock.now += 29.9
    await cache.get(KEY)
    assert store.reads == 1
    clock.now += 0.2
    await cache.get(KEY)
    assert store.reads == 2
    # Capped: a one-day TTL stays at most max_ttl (600 s).
    await write(store, cache, "88.1/a", url("https://x/2"))
    await cache.get(KEY)
    clock.now += 601
    await cache.get(KEY)
    assert store.reads == 4


def test_record_ttl() -> None:
    rec = Record(
        "88.1/a", (url("u", ttl=50), Value(2, "X", b"", ttl=1_000_100, ttl_type=TTL_ABSOLUTE))
    )
    assert record_ttl(rec, 1_000_000, 3600, 5) == 50
    assert record_ttl(rec, 1_000_080, 3600, 5) == 20  # the absolute TTL is now the smallest
    assert record_ttl(None, 0, 3600, 5) == 5
    assert record_ttl(Record("88.1/a", ()), 0, 3600, 5) == 3600
    assert record_ttl(Record("88.1/a", (url("u", ttl=0),)), 0, 3600, 5) == 0


async def test_ttl_zero_is_never_cached(parts: tuple[CountingStore, RecordCache, Clock]) -> None:
    store, cache, _ = parts
    await write(store, cache, "88.1/a", url("https://x/1", ttl=0))
    await cache.get(KEY)
    await cache.get(KEY)
    assert store.reads == 2 and len(cache.local) == 0


async def test_stampede_makes_one_store_read(
    parts: tuple[CountingStore, RecordCache, Clock],
) -> None:
    store, cache, _ = parts
    await write(store, cache, "88.1/a", url("https://x/1"))
    store.gate = asyncio.Event()
    store.entered.clear()
    tasks = [asyncio.create_task(cache.get(KEY)) for _ in range(50)]
    # The first task is held in the store; the other 49, scheduled before this test wakes
    # up, have all joined its flight by then.
    await store.entered.wait()
    assert cache.stats.coalesced == 49
    store.gate.set()
    entries = await asyncio.gather(*tasks)
    assert store.reads == 1
    assert all(e is entries[0] for e in entries)


async def test_a_write_during_a_load_is_not_cached(
    parts: tuple[CountingStore, RecordCache, Clock],
) -> None:
    """A read that raced a write answers the old state but must not cache it."""
    store, cache, _ = parts
    await write(store, cache, "88.1/a", url("https://x/1"))
    store.gate = asyncio.Event()
    store.entered.clear()
    racing = asyncio.create_task(cache.get(KEY))
    await store.entered.wait()
    await cache.invalidate([KEY])  # a writer committed meanwhile (content irrelevant here)
    store.gate.set()
    await racing
    store.gate = None
    await cache.get(KEY)
    assert store.reads == 2  # the raced entry was not served from the cache


async def test_another_process_write_is_seen(
    parts: tuple[CountingStore, RecordCache, Clock], tmp_path: Path
) -> None:
    """A second cache over the same data directory stands for another worker or the CLI."""
    store, cache, _ = parts
    other = RecordCache(store, GenerationTable.open(tmp_path))
    try:
        await write(store, cache, "88.1/a", url("https://x/1"))
        await cache.get(KEY)
        await write(store, other, "88.1/a", url("https://x/2"))  # invalidated by the other
        got = await cache.get(KEY)
        assert got.record is not None and got.record.values[0].data == b"https://x/2"
        assert cache.stats.stale == 1
    finally:
        other.gens.close()


async def test_bypass_reads_the_store(parts: tuple[CountingStore, RecordCache, Clock]) -> None:
    store, cache, _ = parts
    await write(store, cache, "88.1/a", url("https://x/1"))
    await cache.get(KEY)
    await cache.get(KEY, bypass=True)
    await cache.get(KEY, bypass=True)
    assert store.reads == 3 and cache.stats.bypasses == 2


async def test_local_tier_is_bounded(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "reg.db")
    await store.open()
    cache = RecordCache(store, GenerationTable.open(tmp_path), max_entries=10, max_bytes=4000)
    try:
        for i in range(30):
            await write(store, cache, f"88.1/h{i}", url(f"https://x/{i}"))
            await cache.get(handle_key(f"88.1/h{i}"))
        assert len(cache.local) <= 10 and cache.local.bytes <= 4000
        assert cache.stats.evictions >= 20
        big = Value(1, "DESC", b"x" * 5000)
        await write(store, cache, "88.1/big", big)
        await cache.get(handle_key("88.1/big"))
        assert cache.local.get(handle_key("88.1/big")) is None  # larger than the budget
    finally:
        await cache.close()
        await store.close()


def test_entry_encoding_round_trip() -> None:
    rec = Record(
        "88.1/a", (url("https://x"), Value(300, "HS_SECKEY", b"s", permissions=PERM_SECRET))
    )
    entry = CacheEntry.build("88.1/A", rec, 7, 42, 123.5)
    assert not entry.all_public and [v.index for v in entry.public] == [1]
    back = decode_entry("88.1/A", encode_entry(entry))
    assert back is not None
    assert (back.record, back.epoch, back.gen, back.expires_at) == (rec, 7, 42, 123.5)
    missing = decode_entry("88.1/A", encode_entry(CacheEntry.build("88.1/A", None, 7, 1, 2.0)))
    assert missing is not None and missing.record is None
    assert decode_entry("88.1/A", b"garbage") is None
    assert decode_entry("88.1/A", encode_entry(entry)[:-3]) is None
    blob = bytearray(encode_entry(entry))
    blob[-1] ^= 1
    assert decode_entry("88.1/A", bytes(blob)) is None  # the CRC catches a flipped bit


def test_entries_carry_their_renderings_and_decode_lazily() -> None:
    """A rendering made before the entry is shared comes back with it from Redis, and the
    record is decoded only when something asks for it; compacting keeps the same answers."""
    rec = Record(
        "88.1/a", (url("https://x"), Value(300, "HS_SECKEY", b"s", permissions=PERM_SECRET))
    )
    entry = CacheEntry.build("88.1/A", rec, 7, 42, 123.5)
    entry.render("json", lambda e: b"[%d]" % len(e.public))
    back = decode_entry("88.1/A", encode_entry(entry))
    assert back is not None and back.rendered == {"json": b"[1]"}
    assert back.found and not back.all_public and back.any_public
    assert back._record is None  # still encoded
    assert back.render("json", lambda e: b"never called") == b"[1]"
    assert back.record == rec and back.public == (rec.values[0],)
    entry.compact()
    assert entry._record is None and entry.record == rec and entry.public == (rec.values[0],)


def test_generation_table_is_shared_and_persistent(tmp_path: Path) -> None:
    a, b = GenerationTable.open(tmp_path), GenerationTable.open(tmp_path)
    try:
        assert a.epoch == b.epoch
        before = b.get(KEY)
        a.bump([KEY])
        assert b.get(KEY) == before + 1
    finally:
        a.close()
        b.close()
    again = GenerationTable.open(tmp_path)
    assert again.get(KEY) == before + 1 and again.epoch == a.epoch
    again.close()
    (tmp_path / "cache.gen").write_bytes(b"not a table")
    fresh = GenerationTable.open(tmp_path)
    assert fresh.epoch != a.epoch  # a recreated table never vouches for old entries
    fresh.close()


def test_other_hosts_bump_by_hash_and_a_lost_host_bumps_everything(tmp_path: Path) -> None:
    """What a shared store's news does to the table (registry/cache/coherence.py)."""
    a, b = GenerationTable.open(tmp_path), GenerationTable.open(tmp_path)
    try:
        assert a.host == b.host  # the processes of one host share one table
        before = {k: b.get(k) for k in (KEY, "88.1/OTHER")}
        a.bump_hashes([key_hash(KEY)])
        assert b.get(KEY) == before[KEY] + 1 and b.get("88.1/OTHER") == before["88.1/OTHER"]
        a.bump_all()
        assert b.get(KEY) == before[KEY] + 2 and b.get("88.1/OTHER") == before["88.1/OTHER"] + 1
        assert b.get_slot(_HEADER) == 1 and b.get_slot(_HEADER + 8 * (SLOTS - 1)) == 1
    finally:
        a.close()
        b.close()
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(tmp_path / "cache.gen", copy / "cache.gen")
    copied = GenerationTable.open(copy)
    try:  # a data directory copied to another host, table and all: still another table
        assert copied.epoch == a.epoch and copied.host != a.host
    finally:
        copied.close()


def test_the_write_position_is_the_hosts_and_only_grows(tmp_path: Path) -> None:
    """The position read replicas are held to (registry/store/postgres/replicas.py): one per
    host, raised by any of its processes, never lowered, kept apart from the generations."""
    a, b = GenerationTable.open(tmp_path), GenerationTable.open(tmp_path)
    try:
        assert b.position() == 0
        a.advance(5 << 32)
        assert b.position() == 5 << 32
        b.advance(7)  # an older write's position, heard late
        assert a.position() == 5 << 32
        a.bump_all()
        assert b.position() == 5 << 32 and b.get_slot(_HEADER + 8 * (SLOTS - 1)) == 1
    finally:
        a.close()
        b.close()
