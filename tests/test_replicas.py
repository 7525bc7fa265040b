"""Read replicas and a PostgreSQL restart, on a private cluster as the README's multi-host
layout runs it: a primary and a streaming standby (``pg_basebackup -R``), two ``idnode
serve`` hosts with their own data directories on the primary, each reading from the standby
(``--store-replicas``).

Host A keeps no in-process cache (every read reaches a store: the replica whenever it may
answer), host B caches (its fills come from the replica). Whatever the replica does — lag,
stop, pause its replay — no read through either host may be older than the last write
acknowledged through either. The cluster is shared by the module's tests (starting one costs
seconds); each test has a database of its own on it.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from tests.conftest import ENT8, ENT8_ADMIN, init_node
from tests.pgcluster import Cluster, Server, cluster
from tests.test_cache_processes import (
    DEADLINE,
    NO_LOCAL_TIER,
    Checks,
    Node,
    assert_clean_exit,
    create,
    get_url,
    metrics,
    node,
    put_url,
    url_of,
    wait_metrics,
)
from tests.test_hosts import COHERENT, SUSPENSIONS, copy_host, write

ROUNDS = 120
HANDLES = [f"{ENT8}/REPLICA-{k}" for k in range(6)]
LEASE = "2"
UP = "idnode_store_replica_up"
LAG_BYTES = "idnode_store_replica_lag_bytes"
LAG_SECONDS = "idnode_store_replica_lag_seconds"
READS = "idnode_store_replica_reads_total"
SKIPPED = "idnode_store_replica_skipped_total"


@dataclass
class Pair:
    cluster: Cluster
    primary: Server
    standby: Server


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    with cluster() as made:
        primary = made.primary()
        yield Pair(made, primary, made.standby(primary))


@dataclass
class Hosts:
    a: Node  # no in-process cache
    b: Node  # caching
    dsn: str
    replica: str


async def _sql(url: str, statement: str) -> object:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        return await conn.fetchval(statement)
    finally:
        await conn.close()


@pytest.fixture
async def database(pair: Pair) -> AsyncIterator[str]:
    """A new database on the cluster (created on the primary, streamed to the standby)."""
    name = f"idnode_replica_{secrets.token_hex(4)}"
    await _sql(pair.primary.url(), f'CREATE DATABASE "{name}"')
    yield name
    await _sql(pair.primary.url(), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def hosts(tmp_path: Path, pair: Pair, database: str) -> AsyncIterator[Hosts]:
    dsn, replica = pair.primary.url(database), pair.standby.url(database)
    first = tmp_path / "a"
    await init_node(first, store=dsn, cache_lease=LEASE)
    second = copy_host(first, tmp_path / "b")
    flags = ("--store-replicas", replica)
    async with node(first, *flags, env=NO_LOCAL_TIER) as a, node(second, *flags) as b:
        yield Hosts(a, b, dsn, replica)
    assert_clean_exit(a, b)


def labelled(m: dict[str, float], metric: str) -> float | None:
    """The value of ``metric`` for the (one) replica, or None where absent."""
    found = [v for k, v in m.items() if k.startswith(metric + "{")]
    assert len(found) <= 1, found
    return found[0] if found else None


async def in_step(session: aiohttp.ClientSession, *nodes: Node) -> None:
    for n in nodes:
        await wait_metrics(
            session, n, lambda m: m.get(COHERENT) == 1 and labelled(m, UP) == 1, "in step"
        )


async def rounds(
    session: aiohttp.ClientSession, h: Hosts, checks: Checks, count: int, tag: str
) -> None:
    """Write through each host in turn; read through both at once after each write."""
    refused: list[int] = []
    for i in range(count):
        handle = HANDLES[i % len(HANDLES)]
        writer = (h.a, h.b)[i % 2]
        value = url_of(tag, i)
        await write(session, writer, handle, value, refused)
        checks.expected[handle] = value
        for n in (h.a, h.b):
            await checks.read(session, n, handle, f"{tag} {i}")
        # And one written rounds ago: what the replica may answer once caught up.
        older = HANDLES[(i + 3) % len(HANDLES)]
        for n in (h.a, h.b):
            await checks.read(session, n, older, f"{tag} {i} older")
    assert refused == [], f"writes refused: {refused}"


async def test_reads_from_the_replica_never_lag_the_writes(hosts: Hosts) -> None:
    checks = Checks()
    async with aiohttp.ClientSession() as session:
        await in_step(session, hosts.a, hosts.b)
        await create(session, hosts.a, checks, HANDLES, "first")
        await rounds(session, hosts, checks, ROUNDS, "round")
        m_a, m_b = await metrics(session, hosts.a), await metrics(session, hosts.b)
    checks.assert_ok(hosts.a, hosts.b)
    # The replica answered reads on both hosts (the test was not all on the primary) ...
    assert (labelled(m_a, READS) or 0) > 0, m_a
    assert (labelled(m_b, READS) or 0) > 0, m_b
    # ... and its lag is reported, streaming on one machine: small.
    for m in (m_a, m_b):
        assert labelled(m, UP) == 1
        lag_bytes, lag_seconds = labelled(m, LAG_BYTES), labelled(m, LAG_SECONDS)
        assert lag_bytes is not None and 0 <= lag_bytes < 16 << 20, m
        assert lag_seconds is not None and 0 <= lag_seconds < 10, m


async def listed(session: aiohttp.ClientSession, n: Node, path: str) -> object:
    async with session.get(n.served.url + path, headers=ENT8_ADMIN) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def test_listings_and_reverse_lookup_from_the_replica_see_each_write(
    hosts: Hosts, pair: Pair
) -> None:
    """A handle created through one host is at once in the other host's listing and
    reverse lookup (reads a replica may answer), with the replica streaming and paused."""
    async with aiohttp.ClientSession() as session:
        await in_step(session, hosts.a, hosts.b)
        try:
            for i in range(40):
                if i == 20:
                    await _sql(pair.standby.url(), "SELECT pg_wal_replay_pause()")
                writer, reader = ((hosts.a, hosts.b), (hosts.b, hosts.a))[i % 2]
                handle, value = f"{ENT8}/LISTED-{i:02}", url_of("listed", i)
                assert await put_url(session, writer, handle, value) == 201
                path = f"/api/handles?prefix={ENT8}&pageSize=100"
                listing = await listed(session, reader, path)
                assert isinstance(listing, dict) and handle in listing["handles"], (i, listing)
                assert int(listing["totalCount"]) == i + 1
                found = await listed(session, reader, f"/hrls/handles/?URL={value}")
                assert found == [handle], (i, found)
        finally:
            await _sql(pair.standby.url(), "SELECT pg_wal_replay_resume()")
        m = await metrics(session, hosts.a)
    assert (labelled(m, READS) or 0) > 0, m


async def test_a_paused_replica_is_not_read(hosts: Hosts, pair: Pair) -> None:
    checks = Checks()
    async with aiohttp.ClientSession() as session:
        await in_step(session, hosts.a, hosts.b)
        await create(session, hosts.a, checks, HANDLES, "first")
        await _sql(pair.standby.url(), "SELECT pg_wal_replay_pause()")
        try:
            before = [await metrics(session, n) for n in (hosts.a, hosts.b)]
            await rounds(session, hosts, checks, 20, "paused")
            # Its lag grows and is seen; reads went to the primary instead.
            for n, m0 in zip((hosts.a, hosts.b), before, strict=True):
                m = await wait_metrics(
                    session, n, lambda m: (labelled(m, LAG_BYTES) or 0) > 0, "lag seen"
                )
                assert (labelled(m, SKIPPED) or 0) > (labelled(m0, SKIPPED) or 0)
                assert labelled(m, UP) == 1  # up, just behind
            paused = await _sql(pair.standby.url(), "SELECT pg_get_wal_replay_pause_state()")
            assert paused == "paused"
        finally:
            await _sql(pair.standby.url(), "SELECT pg_wal_replay_resume()")
        # Caught up again, it is read again.
        reads = labelled(await metrics(session, hosts.a), READS) or 0
        await rounds(session, hosts, checks, 10, "resumed")
        await wait_metrics(session, hosts.a, lambda m: (labelled(m, READS) or 0) > reads, "read")
    checks.assert_ok(hosts.a, hosts.b)


async def test_a_stopped_replica_costs_no_read(hosts: Hosts, pair: Pair) -> None:
    checks = Checks()
    async with aiohttp.ClientSession() as session:
        await in_step(session, hosts.a, hosts.b)
        await create(session, hosts.a, checks, HANDLES, "first")
        await rounds(session, hosts, checks, 10, "before")
        await asyncio.to_thread(pair.standby.stop)
        try:
            await rounds(session, hosts, checks, 30, "stopped")
            for n in (hosts.a, hosts.b):
                await wait_metrics(session, n, lambda m: labelled(m, UP) == 0, "replica down")
            await rounds(session, hosts, checks, 10, "down")
        finally:
            await asyncio.to_thread(pair.standby.start)
        await in_step(session, hosts.a, hosts.b)
        reads = labelled(await metrics(session, hosts.a), READS) or 0
        await rounds(session, hosts, checks, 10, "back")
        await wait_metrics(session, hosts.a, lambda m: (labelled(m, READS) or 0) > reads, "read")
    checks.assert_ok(hosts.a, hosts.b)


# ------------------------------------------------------------------ the primary restarted

WRITERS = 4


async def test_primary_restarted_mid_run(hosts: Hosts, pair: Pair) -> None:
    """``pg_ctl restart -m fast`` while writes are in flight through both hosts: writes fail
    with 503 only, none acknowledged is lost, writes resume without restarting idnode, and
    both hosts are back in step (their caches were suspended meanwhile)."""
    acked: list[tuple[str, str]] = []
    statuses: dict[int, int] = {}
    stop = asyncio.Event()
    restarted = asyncio.Event()
    first_ack = asyncio.Event()
    after = 0  # writes acknowledged after the restart

    async def writer(k: int, session: aiohttp.ClientSession) -> None:
        nonlocal after
        n = 0
        while not stop.is_set():
            handle, value = f"{ENT8}/RESTART-{k}-{n}", url_of("restart", n)
            status = await put_url(session, (hosts.a, hosts.b)[k % 2], handle, value)
            statuses[status] = statuses.get(status, 0) + 1
            if status == 201:
                acked.append((handle, value))
                first_ack.set()
                after += restarted.is_set()
            n += 1

    async def reader(session: aiohttp.ClientSession) -> None:
        """Acknowledged writes read back through the other host meanwhile: each is there,
        or the read is refused (503) while the database is away; never not found."""
        i = 0
        await first_ack.wait()
        while not stop.is_set() and acked:
            i += 1
            handle, value = acked[(i * 7919) % len(acked)]
            k = int(handle.split("-")[1])
            status, got, _ = await get_url(session, (hosts.b, hosts.a)[k % 2], handle)
            reads[status] = reads.get(status, 0) + 1
            if status != 503 and (status, got) != (200, value):
                stale.append((handle, value, status, got))

    reads: dict[int, int] = {}
    stale: list[tuple[str, str, int, str | None]] = []
    async with aiohttp.ClientSession() as session:
        await in_step(session, hosts.a, hosts.b)
        tasks = [asyncio.create_task(writer(k, session)) for k in range(WRITERS)]
        tasks.append(asyncio.create_task(reader(session)))
        loop = asyncio.get_running_loop()
        try:
            deadline = loop.time() + DEADLINE
            while len(acked) < 50:  # writes in flight, and acknowledged
                assert loop.time() < deadline, f"writes not acknowledged: {statuses}"
                await asyncio.sleep(0.01)
            await asyncio.to_thread(pair.primary.restart)
            restarted.set()
            deadline = loop.time() + DEADLINE
            while after < 50:  # service resumed by itself
                assert loop.time() < deadline, f"no writes after the restart: {statuses}"
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            first_ack.set()  # a reader still waiting for the first write ends too
            await asyncio.gather(*tasks)
        assert set(statuses) <= {201, 503}, statuses  # refused cleanly, or acknowledged
        assert statuses.get(503, 0) > 0, statuses  # the restart did meet writes in flight
        assert stale == [], stale[:5]
        assert reads.get(200, 0) > 0, reads
        print(f"writes answered {statuses}, reads answered {reads}")

        # Nothing acknowledged was lost: every write is in the database ...
        conn = await asyncpg.connect(hosts.dsn)
        try:
            rows = await conn.fetch("SELECT handle FROM handles WHERE handle LIKE '%/RESTART-%'")
        finally:
            await conn.close()
        stored = {r[0] for r in rows}
        assert not [h for h, _ in acked if h not in stored]
        # ... both hosts re-joined (their caches suspended while the channel was down) ...
        for n in (hosts.a, hosts.b):
            m = await wait_metrics(session, n, lambda m: m.get(COHERENT) == 1, "in step")
            assert m[SUSPENSIONS] >= 1
        # ... and each serves every acknowledged write, and exact rounds across them again.
        for handle, value in acked[:: max(1, len(acked) // 40)]:
            for n in (hosts.a, hosts.b):
                status, got, _ = await get_url(session, n, handle)
                assert (status, got) == (200, value), (handle, n.stderr())
        checks = Checks()
        await create(session, hosts.b, checks, HANDLES, "after")
        await rounds(session, hosts, checks, 20, "after")
    checks.assert_ok(hosts.a, hosts.b)
