"""Caches of several hosts on one PostgreSQL registry, in one process: each host a node of
its own (its own data directory, so its own generation table), all on one database. What a
write on one host does to the others' caches, and what a host does that cannot hear them
(registry/store/postgres/channel.py). tests/test_hosts.py runs the same with processes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import asyncpg
import pytest

from registry.errors import HandleNotFound
from registry.model.identifiers import parse
from registry.model.values import Value
from registry.store.base import Mutation, StoreUnavailable
from resolver.config import load
from resolver.core import Query
from resolver.node import Node
from tests.conftest import ENT8, init_node
from tests.pgserver import fresh_database, terminate_backends
from tests.store_contract import TIMEOUT

R = TypeVar("R")
HANDLE = f"{ENT8}/SHARED"
LEASE = 2.0  # seconds: short, so the tests of a silent host are quick


@pytest.fixture
def dsn() -> Iterator[str]:
    with fresh_database() as location:
        yield location


def copy_host(source: Path, target: Path) -> Path:
    """Another host of the same node: its data directory without the generation table."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("cache.gen"))
    return target


@contextlib.asynccontextmanager
async def hosts(tmp_path: Path, dsn: str, n: int) -> AsyncIterator[list[Node]]:
    first = tmp_path / "h0"
    await init_node(first, store=dsn, cache_lease=str(LEASE))
    dirs = [first] + [copy_host(first, tmp_path / f"h{i}") for i in range(1, n)]
    nodes: list[Node] = []
    try:
        for d in dirs:
            nodes.append(await Node.open(dataclasses.replace(load(d, env={}))))
        for node in nodes:
            await wait_for(lambda node=node: node.cache.coherent, "coherent")  # type: ignore[misc]
        yield nodes
    finally:
        for node in nodes:
            await node.close()


async def wait_for(condition: Callable[[], object], what: str) -> None:
    """Poll ``condition()`` (every 10 ms, within TIMEOUT s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not condition():
        assert loop.time() < deadline, f"not {what} within {TIMEOUT} s"
        await asyncio.sleep(0.01)


def url(text: str) -> list[Value]:
    return [Value(index=1, type="URL", data=text.encode())]


async def resolved(node: Node, handle: str = HANDLE) -> str:
    answer = await node.resolver.resolve(Query(handle))
    return next(v.data.decode() for v in answer.values if v.type == "URL")


async def test_a_write_returns_once_every_other_host_dropped_the_old_record(
    tmp_path: Path, dsn: str
) -> None:
    async with hosts(tmp_path, dsn, 3) as (a, b, c):
        ident = parse(HANDLE)
        await a.registry.put_record(ident, url("https://e/1"))
        for node in (b, c):  # cached, and served from the cache
            assert await resolved(node) == "https://e/1"
            hits = node.cache.stats.local_hits
            assert await resolved(node) == "https://e/1"
            assert node.cache.stats.local_hits == hits + 1
        await a.registry.put_record(ident, url("https://e/2"))
        # Nothing awaited in between: the write returned after b and c had bumped.
        assert b.cache.peek(ident.key) is None and c.cache.peek(ident.key) is None
        assert [await resolved(n) for n in (a, b, c)] == ["https://e/2"] * 3
        await c.registry.delete_record(ident)
        for node in (a, b):
            with pytest.raises(HandleNotFound):
                await resolved(node)


async def test_a_write_lost_while_committing_still_drops_the_writers_cached_record(
    tmp_path: Path, dsn: str
) -> None:
    """A write answered 503 "may have been applied" (the connection lost as it committed)
    that was applied: the writer's host drops its cached record all the same (its own
    processes do not hear their host's notices)."""
    async with hosts(tmp_path, dsn, 2) as (a, b):
        ident = parse(HANDLE)
        await a.registry.put_record(ident, url("https://e/1"))
        assert await resolved(a) == "https://e/1"
        assert a.cache.peek(ident.key) is not None
        store = a.registry.store
        committed = store.transact

        async def lost_after_commit(keys: Sequence[str], mutation: Mutation[R]) -> R:
            await committed(keys, mutation)
            raise StoreUnavailable("lost while committing")

        store.transact = lost_after_commit  # type: ignore[method-assign]
        try:
            with pytest.raises(StoreUnavailable):
                await a.registry.put_record(ident, url("https://e/2"))
        finally:
            store.transact = committed  # type: ignore[method-assign]
        assert [await resolved(n) for n in (a, b)] == ["https://e/2"] * 2


async def test_a_host_that_stops_hearing_stops_caching_and_writes_wait_no_longer_than_its_lease(
    tmp_path: Path, dsn: str
) -> None:
    """Host b's renewal is held up (its lease row locked): it suspends its cache when its
    lease runs out; a's writes wait for b at most until then; b serves only fresh records,
    and caches again once its renewal goes through."""
    async with hosts(tmp_path, dsn, 2) as (a, b):
        ident = parse(HANDLE)
        await a.registry.put_record(ident, url("https://e/1"))
        assert await resolved(b) == "https://e/1"
        blocker = await asyncpg.connect(dsn)
        try:
            tx = blocker.transaction()
            await tx.start()
            await blocker.execute("SELECT 1 FROM cache_members FOR UPDATE")
            await wait_for(lambda: not b.cache.coherent, "suspended")
            assert b.cache.stats.suspensions == 1
            assert b.cache.peek(ident.key) is None  # every entry refused
            loop = asyncio.get_running_loop()
            started = loop.time()
            await a.registry.put_record(ident, url("https://e/2"))
            assert loop.time() - started < LEASE + 0.5
            assert await resolved(b) == "https://e/2"
            misses = b.cache.stats.misses
            assert await resolved(b) == "https://e/2"
            assert b.cache.stats.misses == misses + 1  # from the store: nothing is cached
            await tx.rollback()
        finally:
            await blocker.close()
        await wait_for(lambda: b.cache.coherent, "caching again")
        assert await resolved(b) == "https://e/2"
        hits = b.cache.stats.local_hits
        assert await resolved(b) == "https://e/2"
        assert b.cache.stats.local_hits == hits + 1


async def test_a_host_whose_channel_is_cut_suspends_until_it_is_back(
    tmp_path: Path, dsn: str
) -> None:
    async with hosts(tmp_path, dsn, 2) as (a, b):
        ident = parse(HANDLE)
        await a.registry.put_record(ident, url("https://e/1"))
        assert await resolved(b) == "https://e/1"
        await terminate_backends(dsn, "application_name = 'idnode-channel'")
        await wait_for(lambda: b.cache.stats.suspensions >= 1, "suspended")
        await a.registry.put_record(ident, url("https://e/2"))
        assert await resolved(b) == "https://e/2"
        await wait_for(lambda: a.cache.coherent and b.cache.coherent, "back in step")
        await a.registry.put_record(ident, url("https://e/3"))
        assert b.cache.peek(ident.key) is None
        assert await resolved(b) == "https://e/3"


async def test_a_command_line_writer_waits_for_the_hosts_and_never_caches(
    tmp_path: Path, dsn: str
) -> None:
    async with hosts(tmp_path, dsn, 1) as (a,):
        ident = parse(HANDLE)
        await a.registry.put_record(ident, url("https://e/1"))
        assert await resolved(a) == "https://e/1"
        admin = await Node.open(
            load(copy_host(tmp_path / "h0", tmp_path / "cli"), env={}), serving=False
        )
        try:
            assert await resolved(admin) == "https://e/1"
            assert await resolved(admin) == "https://e/1"
            assert admin.cache.stats.local_hits == 0 and admin.cache.stats.suspensions == 0
            await admin.registry.put_record(ident, url("https://e/2"))
            assert a.cache.peek(ident.key) is None
        finally:
            await admin.close()
        assert await resolved(a) == "https://e/2"


async def test_a_write_of_many_keys_is_named_in_several_notices_not_as_everything(
    tmp_path: Path, dsn: str
) -> None:
    """An import batch of 1,500 keys (three notices' worth): the other host drops exactly
    those keys, and keeps serving the rest from its cache."""
    async with hosts(tmp_path, dsn, 2) as (a, b):
        ident, other = parse(HANDLE), parse(f"{ENT8}/UNTOUCHED")
        await a.registry.import_records([(ident, url("https://e/1")), (other, url("https://o"))])
        assert await resolved(b) == "https://e/1"
        assert await resolved(b, other.text) == "https://o"
        batch = [(parse(f"{ENT8}/BULK-{i}"), url(f"https://b/{i}")) for i in range(1499)]
        await a.registry.import_records([(ident, url("https://e/2")), *batch])
        assert b.cache.peek(ident.key) is None
        assert b.cache.peek(other.key) is not None  # not every generation was bumped
        assert await resolved(b) == "https://e/2"
        assert await resolved(b, f"{ENT8}/BULK-1498") == "https://b/1498"
