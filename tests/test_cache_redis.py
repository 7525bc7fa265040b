"""The Redis tier against real redis-server processes started by the test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from registry.cache.generations import GenerationTable
from registry.cache.records import RecordCache
from registry.cache.redis_tier import RedisConfigError, RedisTier, connect
from registry.model.identifiers import handle_key
from registry.store.sqlite import SQLiteStore
from tests.conftest import free_port
from tests.redisproc import RedisServer, redis_server
from tests.test_cache import Clock, CountingStore, url, write

KEY = handle_key("88.1/a")


class Monotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Two:
    """Two caches over one store, one generation table and one Redis: two processes."""

    store: CountingStore
    a: RecordCache
    b: RecordCache
    clock: Clock
    breaker_clock: Monotonic
    redis: RedisServer


def _cache(
    store: SQLiteStore, data: Path, redis: RedisServer, clock: Clock, mono: Monotonic
) -> RecordCache:
    gens = GenerationTable.open(data)
    cache = RecordCache(store, gens, clock=clock, max_ttl=600, negative_ttl=5)
    cache.redis = RedisTier(redis.url, format(gens.epoch, "x"), 0.5, cache.stats, clock=mono)
    return cache


@pytest.fixture
async def two(tmp_path: Path) -> AsyncIterator[Two]:
    async with redis_server(tmp_path / "redis") as redis:
        store = CountingStore(tmp_path / "reg.db")
        await store.open()
        clock, mono = Clock(), Monotonic()
        a = _cache(store, tmp_path, redis, clock, mono)
        b = _cache(store, tmp_path, redis, clock, mono)
        try:
            yield Two(store, a, b, clock, mono, redis)
        finally:
            await a.close()
            await b.close()
            await store.close()


async def _load(cache: RecordCache) -> None:
    await cache.get(KEY)
    assert cache.redis is not None
    await cache.redis.flush()  # the background fill has landed


async def test_redis_hit_in_another_process(two: Two) -> None:
    await write(two.store, two.a, "88.1/a", url("https://x/1"))
    await _load(two.a)
    assert two.store.reads == 1 and two.a.stats.redis_fills == 1
    got = await two.b.get(KEY)
    assert got.record is not None and got.record.values[0].data == b"https://x/1"
    assert two.store.reads == 1 and two.b.stats.redis_hits == 1
    await two.b.get(KEY)  # now in b's own tier
    assert two.b.stats.local_hits == 1


async def test_write_elsewhere_refuses_the_redis_entry(two: Two) -> None:
    await write(two.store, two.a, "88.1/a", url("https://x/1"))
    await _load(two.a)
    # A writer whose Redis DEL never happened (Redis unreachable for it): only the
    # generation moves. The Redis entry is still there and must not be served.
    tier, two.a.redis = two.a.redis, None
    assert tier is not None
    await tier.close()
    await write(two.store, two.a, "88.1/a", url("https://x/2"))
    assert (await two.redis.cli("DBSIZE")).strip() == "1"
    got = await two.b.get(KEY)
    assert got.record is not None and got.record.values[0].data == b"https://x/2"
    assert two.b.stats.stale == 1 and two.b.stats.redis_hits == 0


async def test_negative_entries_shared_and_ended_by_create(two: Two) -> None:
    await _load(two.a)
    assert (await two.b.get(KEY)).record is None
    assert two.b.stats.negative_hits == 1 and two.store.reads == 1
    await write(two.store, two.a, "88.1/a", url("https://x/1"))
    assert (await two.b.get(KEY)).record is not None


async def test_redis_entries_expire_by_the_clock(two: Two) -> None:
    await write(two.store, two.a, "88.1/a", url("https://x/1", ttl=30))
    await _load(two.a)
    two.clock.now += 31
    await two.b.get(KEY)
    assert two.b.stats.redis_hits == 0 and two.b.stats.expired == 1 and two.store.reads == 2


async def test_redis_down_then_back(two: Two) -> None:
    await write(two.store, two.a, "88.1/a", url("https://x/1"))
    await _load(two.a)
    await two.redis.kill()
    for _ in range(5):  # every resolution still answers, from the store
        got = await two.b.get(KEY, bypass=False)
        assert got.record is not None
        two.b.local.clear()
    tier = two.b.redis
    assert tier is not None
    assert two.b.stats.redis_errors == 3 and tier.breaker.is_open  # then it stopped trying
    assert two.b.stats.breaker_opens == 1
    await two.redis.restart()  # empty: it kept nothing
    two.breaker_clock.now += 10  # past the breaker's back-off: the next call probes
    await _load(two.b)  # miss (Redis is empty), refill
    assert not tier.breaker.is_open
    two.b.local.clear()
    await two.b.get(KEY)
    assert two.b.stats.redis_hits == 1


def test_connect_rejects_unknown_schemes() -> None:
    with pytest.raises(RedisConfigError):
        connect("http://127.0.0.1:6379", 0.1)
    with pytest.raises(RedisConfigError):
        connect("redis+sentinel://127.0.0.1:26379", 0.1)  # no service name


async def test_sentinel_url_finds_the_master(tmp_path: Path) -> None:
    """``redis+sentinel://`` asks a real Sentinel for the service's master and uses it."""
    async with redis_server(tmp_path / "master") as master:
        port = free_port()
        conf = tmp_path / "sentinel.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
            f"sentinel monitor idn 127.0.0.1 {master.port} 1\n"
        )
        proc = await asyncio.create_subprocess_exec(
            "/usr/bin/redis-server",
            str(conf),
            "--sentinel",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            assert proc.stdout is not None
            async with asyncio.timeout(15):
                while b"+monitor master idn" not in await proc.stdout.readline():
                    pass
            store = SQLiteStore(tmp_path / "reg.db")
            await store.open()
            gens = GenerationTable.open(tmp_path)
            cache = RecordCache(store, gens)
            cache.redis = RedisTier(f"redis+sentinel://127.0.0.1:{port}/idn", "t", 1.0, cache.stats)
            try:
                await write(store, cache, "88.1/a", url("https://x/1"))
                await _load(cache)
                assert cache.stats.redis_fills == 1 and cache.stats.redis_errors == 0
                assert (await master.cli("DBSIZE")).strip() == "1"  # it went to the master
                cache.local.clear()
                await cache.get(KEY)
                assert cache.stats.redis_hits == 1
            finally:
                await cache.close()
                await store.close()
        finally:
            proc.kill()
            await proc.wait()
