"""The Redis cache with real processes: ``idnode serve`` nodes and ``redis-server`` instances
owned by each test (free loopback ports, temporary directories, persistence off).

What must hold whatever happens to Redis: no process serves a record older than an
acknowledged write, and every resolution succeeds (from the store when Redis is down, slow
or partly gone), quickly.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests import procs
from tests.conftest import ENT8, ENT8_ADMIN, JSON, init_node
from tests.redisproc import POLL, cluster, redis_server

DEADLINE = 20.0  # seconds any one wait-for-a-condition may take
REQUEST_BOUND = 2.0  # seconds: a generous bound on any one request while Redis misbehaves
NO_LOCAL_TIER = {"IDNODE_CACHE_ENTRIES": "0"}  # every cached read must go to Redis

HITS = "idnode_cache_redis_hits_total"
LOCAL_HITS = "idnode_cache_local_hits_total"
MISSES = "idnode_cache_misses_total"
FILLS = "idnode_cache_redis_fills_total"
ERRORS = "idnode_cache_redis_errors_total"
OPENS = "idnode_cache_breaker_opens_total"
UP = "idnode_cache_redis_up"


def url_of(tag: str, n: int | str) -> str:
    return f"https://example.org/{tag}/{n}"


def body(value: str) -> dict[str, Any]:
    return {"values": [{"index": 1, "type": "URL", "data": value}]}


# ------------------------------------------------------------------ node processes


@dataclass
class Node:
    """A running ``idnode serve``; after it stopped, its whole stderr and exit status."""

    served: procs.Served
    log: str = ""
    returncode: int | None = None

    def api(self, handle: str) -> str:
        return self.served.api(handle)

    @property
    def metrics_url(self) -> str:
        return f"{self.served.url}/metrics"

    def stderr(self) -> str:
        """What the (running) node logged so far, for assertion messages."""
        text = self.log if self.returncode is not None else self.served.stderr_text()
        return text[-3000:]


@contextlib.asynccontextmanager
async def node(data: Path, *extra: str, env: dict[str, str] | None = None) -> AsyncIterator[Node]:
    served = await procs.start("serve", "--data", data, "--http", "127.0.0.1:0", *extra, env=env)
    running = Node(served)
    keep = os.dup(served.stderr.fileno())  # procs.stop closes its copy
    try:
        yield running
    finally:
        try:
            await procs.stop(served)
        finally:
            with os.fdopen(keep, "rb") as f:
                f.seek(0)
                running.log = f.read().decode("utf-8", "replace")
            running.returncode = served.proc.returncode


def assert_clean_exit(*nodes: Node) -> None:
    """Each node stopped on SIGTERM by itself (no hang, no kill) and logged no traceback."""
    for n in nodes:
        assert n.returncode == 0, f"exit status {n.returncode}; stderr:\n{n.log[-3000:]}"
        assert "Traceback" not in n.log, n.log[-5000:]


async def metrics(session: aiohttp.ClientSession, n: Node) -> dict[str, float]:
    async with session.get(n.metrics_url) as r:
        assert r.status == 200, await r.text()
        text = await r.text()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


async def wait_metrics(
    session: aiohttp.ClientSession,
    n: Node,
    done: Callable[[dict[str, float]], bool],
    what: str,
    between: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, float]:
    """Poll /metrics (every POLL s, or after each ``between()``) until ``done``; fails after
    DEADLINE s with the last metrics and the node's stderr."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while True:
        m = await metrics(session, n)
        if done(m):
            return m
        assert loop.time() < deadline, (
            f"{what}: not within {DEADLINE} s; metrics {m}; stderr:\n{n.stderr()}"
        )
        if between is None:
            await asyncio.sleep(POLL)
        else:
            await between()


async def get_url(
    session: aiohttp.ClientSession, n: Node, handle: str
) -> tuple[int, str | None, float]:
    """(status, the URL value or None, seconds taken); a transport error is status 0."""
    t0 = time.monotonic()
    try:
        async with session.get(n.api(handle)) as r:
            status = r.status
            payload = await r.json() if status == 200 else None
    except (aiohttp.ClientError, ConnectionError, TimeoutError) as exc:
        return 0, repr(exc), time.monotonic() - t0
    elapsed = time.monotonic() - t0
    if payload is None:
        return status, None, elapsed
    urls = [v["data"]["value"] for v in payload["values"] if v["type"] == "URL"]
    return status, urls[0] if len(urls) == 1 else repr(payload), elapsed


async def put_url(session: aiohttp.ClientSession, n: Node, handle: str, value: str) -> int:
    async with session.put(n.api(handle), json=body(value), headers={**ENT8_ADMIN, **JSON}) as r:
        await r.read()
        return r.status


async def delete(session: aiohttp.ClientSession, n: Node, handle: str) -> int:
    async with session.delete(n.api(handle), headers=ENT8_ADMIN) as r:
        await r.read()
        return r.status


@dataclass
class Checks:
    """Every read compared with what was acknowledged last."""

    expected: dict[str, str | None] = field(default_factory=dict)  # None: deleted
    stale: list[tuple[str, str, Any, Any]] = field(default_factory=list)
    failed: list[tuple[str, str, int, Any]] = field(default_factory=list)
    slow: list[tuple[str, str, float]] = field(default_factory=list)
    reads: int = 0

    async def read(
        self, session: aiohttp.ClientSession, n: Node, handle: str, where: str = ""
    ) -> bool:
        status, value, elapsed = await get_url(session, n, handle)
        self.reads += 1
        want = self.expected[handle]
        if elapsed > REQUEST_BOUND:
            self.slow.append((where, handle, elapsed))
        if want is None:
            if status == 404:
                return True
            if status == 200:
                self.stale.append((where, handle, "404", value))
            else:
                self.failed.append((where, handle, status, value))
            return False
        if status != 200:
            self.failed.append((where, handle, status, value))
            return False
        if value != want:
            self.stale.append((where, handle, want, value))
            return False
        return True

    def assert_ok(self, *nodes: Node) -> None:
        logs = "\n".join(n.stderr() for n in nodes)
        assert self.failed == [], (
            f"{len(self.failed)} of {self.reads} reads failed: {self.failed[:5]}\n{logs}"
        )
        assert self.stale == [], (
            f"{len(self.stale)} of {self.reads} reads stale (where, handle, expected, got): "
            f"{self.stale[:5]}\n{logs}"
        )
        assert self.slow == [], f"reads slower than {REQUEST_BOUND} s: {self.slow[:5]}\n{logs}"


async def within(event: asyncio.Event, what: str, checks: Checks, n: Node) -> None:
    try:
        await asyncio.wait_for(event.wait(), DEADLINE)
    except TimeoutError:
        raise AssertionError(
            f"no {what} within {DEADLINE} s; failed {checks.failed[:5]}; stale "
            f"{checks.stale[:5]}; stderr:\n{n.stderr()}"
        ) from None


async def create(
    session: aiohttp.ClientSession, n: Node, checks: Checks, handles: list[str], tag: str
) -> None:
    for h in handles:
        value = url_of(tag, h)
        assert await put_url(session, n, h, value) == 201
        checks.expected[h] = value


# ------------------------------------------------------------------ a. two nodes, one data dir

ROUNDS = 200
HANDLES_A = [f"{ENT8}/SHARED-{k}" for k in range(4)]
DELETE_EVERY = 7


async def test_two_nodes_on_one_data_dir_never_serve_a_stale_record(tmp_path: Path) -> None:
    data = tmp_path / "node"
    await init_node(data)
    checks = Checks()
    async with (
        redis_server(tmp_path / "redis") as redis,
        node(data, "--redis", redis.url) as a,
        node(data, "--redis", redis.url) as b,
        aiohttp.ClientSession() as session,
    ):
        await create(session, a, checks, HANDLES_A, "first")
        before = await metrics(session, b)
        bad_writes: list[tuple[int, str, str, int]] = []
        for i in range(ROUNDS):
            handle = HANDLES_A[i % len(HANDLES_A)]
            # Even rounds A writes and B reads; odd rounds the reverse.
            writer, reader = (a, b) if i % 2 == 0 else (b, a)
            await checks.read(session, reader, handle, f"round {i} warm")
            if i % DELETE_EVERY == DELETE_EVERY - 1 and checks.expected[handle] is not None:
                status = await delete(session, writer, handle)
                if status != 200:
                    bad_writes.append((i, handle, "delete", status))
                checks.expected[handle] = None
            else:
                value = url_of("round", i)
                status = await put_url(session, writer, handle, value)
                want = 201 if checks.expected[handle] is None else 200
                if status != want:
                    bad_writes.append((i, handle, value, status))
                checks.expected[handle] = value
            await checks.read(session, reader, handle, f"round {i} other node")
            await checks.read(session, writer, handle, f"round {i} writing node")
            await checks.read(session, reader, handle, f"round {i} other node again")
        after_b = await metrics(session, b)
        after_a = await metrics(session, a)

    assert bad_writes == []
    checks.assert_ok(a, b)
    assert checks.reads == 4 * ROUNDS
    # The cache was in play: B answered from its tiers, and Redis served hits.
    b_hits = after_b[LOCAL_HITS] + after_b[HITS] - before[LOCAL_HITS] - before[HITS]
    assert b_hits > 0, after_b
    assert after_a[HITS] + after_b[HITS] > 0, (after_a, after_b)
    assert_clean_exit(a, b)


# ------------------------------------------------------------------ b. Redis killed mid-load

READERS = 8
STATIC = [f"{ENT8}/STATIC-{k}" for k in range(20)]
WRITTEN = [f"{ENT8}/WRITTEN-{k}" for k in range(4)]
KILL_AFTER = 300  # successful reads before Redis is SIGKILLed
DURING_OUTAGE = 300  # successful reads with Redis dead before it is restarted
MAX_REQUESTS = 200_000  # a bound on the load, far above what the test needs
LOAD_TIMEOUT = 45.0


async def test_redis_killed_mid_load(tmp_path: Path) -> None:
    data = tmp_path / "node"
    await init_node(data)
    checks = Checks()
    bad_writes: list[tuple[str, int]] = []
    served = 0
    killed_at: int | None = None
    kill_now, outage_served, done = asyncio.Event(), asyncio.Event(), asyncio.Event()
    requests = itertools.count()
    phases: dict[str, dict[str, float]] = {}

    async with (
        redis_server(tmp_path / "redis") as redis,
        node(data, "--redis", redis.url, env=NO_LOCAL_TIER) as n,
        aiohttp.ClientSession() as session,
    ):
        await create(session, n, checks, STATIC + WRITTEN, "initial")

        def count_success() -> None:
            nonlocal served
            served += 1
            if served >= KILL_AFTER:
                kill_now.set()
            if killed_at is not None and served >= killed_at + DURING_OUTAGE:
                outage_served.set()

        async def reader(k: int) -> None:
            for i in itertools.count(k):
                if done.is_set() or next(requests) > MAX_REQUESTS:
                    return
                if await checks.read(session, n, STATIC[i % len(STATIC)], "reader"):
                    count_success()

        async def writer() -> None:
            for i in itertools.count():
                if done.is_set() or next(requests) > MAX_REQUESTS:
                    return
                handle = WRITTEN[i % len(WRITTEN)]
                value = url_of("written", i)
                status = await put_url(session, n, handle, value)
                if status != 200:
                    bad_writes.append((handle, status))
                    continue
                checks.expected[handle] = value
                # Read-your-write right after the acknowledgement.
                if await checks.read(session, n, handle, "after write"):
                    count_success()

        async def controller() -> None:
            nonlocal killed_at
            try:
                await within(kill_now, f"{KILL_AFTER} successful reads", checks, n)
                phases["before kill"] = await metrics(session, n)
                await redis.kill()
                killed_at = served
                await within(
                    outage_served, f"{DURING_OUTAGE} successful reads without Redis", checks, n
                )
                phases["outage"] = await wait_metrics(
                    session,
                    n,
                    lambda m: m[ERRORS] > phases["before kill"][ERRORS] and m[OPENS] > 0,
                    "Redis errors and a breaker opening while Redis is dead",
                )
                await redis.restart()
                phases["restarted"] = await metrics(session, n)
                phases["recovered"] = await wait_metrics(
                    session,
                    n,
                    lambda m: m[HITS] > phases["restarted"][HITS],
                    "Redis hits again after the restart",
                )
            finally:
                done.set()

        await asyncio.wait_for(
            asyncio.gather(controller(), writer(), *(reader(k) for k in range(READERS))),
            LOAD_TIMEOUT,
        )
        # After the load: every identifier is still exact.
        for h in STATIC + WRITTEN:
            await checks.read(session, n, h, "final")

    assert bad_writes == [], bad_writes
    checks.assert_ok(n)
    assert killed_at is not None and served >= killed_at + DURING_OUTAGE
    before, outage = phases["before kill"], phases["outage"]
    restarted, recovered = phases["restarted"], phases["recovered"]
    assert before[HITS] > 0 and before[ERRORS] == 0, before  # Redis served before the kill
    assert outage[ERRORS] > before[ERRORS], outage
    assert outage[OPENS] > before[OPENS], outage
    assert outage[MISSES] > before[MISSES], outage  # the outage was served from the store
    assert recovered[HITS] > restarted[HITS], recovered
    assert_clean_exit(n)


# ------------------------------------------------------------------ c. Redis Cluster

CLUSTER_HANDLES = [f"{ENT8}/CLUSTER-{k}" for k in range(30)]
PASSES_AFTER_KILL = 3


async def test_redis_cluster_serves_and_survives_losing_a_master(tmp_path: Path) -> None:
    data = tmp_path / "node"
    await init_node(data)
    checks = Checks()
    async with (
        cluster(tmp_path / "cluster", 3) as redis,
        node(data, "--redis", redis.url, env=NO_LOCAL_TIER) as n,
        aiohttp.ClientSession() as session,
    ):
        await create(session, n, checks, CLUSTER_HANDLES, "cluster")
        start = await metrics(session, n)
        for h in CLUSTER_HANDLES:
            await checks.read(session, n, h, "first pass")
        total = len(CLUSTER_HANDLES)
        filled = await wait_metrics(
            session, n, lambda m: m[FILLS] >= start[FILLS] + total, "every entry in Redis"
        )
        for h in CLUSTER_HANDLES:
            await checks.read(session, n, h, "second pass")
        second = await metrics(session, n)
        # The entries are spread over the three masters.
        keys = [
            len((await s.cli("--scan", "--pattern", "*:r:88.118.8/CLUSTER-*")).split())
            for s in redis.servers
        ]

        victim = next(s for s, k in zip(redis.servers, keys, strict=True) if k > 0)
        await victim.kill()
        for p in range(PASSES_AFTER_KILL):
            for h in CLUSTER_HANDLES:
                await checks.read(session, n, h, f"pass {p} after a master died")
        # Writes go on and are read back exactly.
        for k, h in enumerate(CLUSTER_HANDLES[:5]):
            value = url_of("after-kill", k)
            assert await put_url(session, n, h, value) == 200
            checks.expected[h] = value
            await checks.read(session, n, h, "read-your-write after a master died")
        after = await metrics(session, n)

        # Once the survivors declare the cluster down (node timeout), they refuse every key:
        # resolution still goes on, from the store.
        survivors = [s for s in redis.servers if s is not victim]
        await redis.wait_state("fail", survivors)
        for k, h in enumerate(CLUSTER_HANDLES):
            await checks.read(session, n, h, "cluster down")
            if k % 6 == 0:
                value = url_of("cluster-down", k)
                assert await put_url(session, n, h, value) == 200
                checks.expected[h] = value
                await checks.read(session, n, h, "read-your-write, cluster down")
        down = await metrics(session, n)

    checks.assert_ok(n)
    assert filled[MISSES] - start[MISSES] == total, filled
    assert second[HITS] - filled[HITS] == total, (filled, second)
    assert second[MISSES] == filled[MISSES], (filled, second)
    assert all(k > 0 for k in keys) and sum(keys) == total, keys
    assert after[MISSES] > second[MISSES], after  # the dead master's keys from the store
    assert after[ERRORS] > second[ERRORS], after
    assert down[MISSES] - after[MISSES] >= total, down  # nothing served by a downed cluster
    assert_clean_exit(n)


# ------------------------------------------------------------------ d. Redis frozen (SIGSTOP)

FROZEN_HANDLES = [f"{ENT8}/FROZEN-{k}" for k in range(10)]
FROZEN_PASSES = 3
CONCURRENT = 20


async def test_frozen_redis_costs_a_timeout_not_an_error(tmp_path: Path) -> None:
    data = tmp_path / "node"
    await init_node(data)
    checks = Checks()
    write_times: list[float] = []
    async with (
        redis_server(tmp_path / "redis") as redis,
        node(data, "--redis", redis.url, env=NO_LOCAL_TIER) as n,
        aiohttp.ClientSession() as session,
    ):
        await create(session, n, checks, FROZEN_HANDLES, "frozen")
        total = len(FROZEN_HANDLES)
        start = await metrics(session, n)
        for h in FROZEN_HANDLES:
            await checks.read(session, n, h, "warm")
        await wait_metrics(session, n, lambda m: m[FILLS] >= start[FILLS] + total, "filled")
        for h in FROZEN_HANDLES:
            await checks.read(session, n, h, "warm hits")
        warm = await metrics(session, n)

        redis.pause()
        try:
            for p in range(FROZEN_PASSES):
                for h in FROZEN_HANDLES:
                    await checks.read(session, n, h, f"frozen pass {p}")
            await asyncio.gather(
                *(
                    checks.read(session, n, FROZEN_HANDLES[k % total], "frozen, concurrent")
                    for k in range(CONCURRENT)
                )
            )
            # A write while Redis is frozen is acknowledged promptly and read back exactly.
            for k, h in enumerate(FROZEN_HANDLES[:3]):
                value = url_of("while-frozen", k)
                t0 = time.monotonic()
                assert await put_url(session, n, h, value) == 200
                write_times.append(time.monotonic() - t0)
                checks.expected[h] = value
                await checks.read(session, n, h, "read-your-write while frozen")
            frozen = await metrics(session, n)
        finally:
            redis.resume()

        async def read_all() -> None:
            for h in FROZEN_HANDLES:
                await checks.read(session, n, h, "after SIGCONT")

        resumed = await wait_metrics(
            session, n, lambda m: m[HITS] > frozen[HITS], "Redis hits after SIGCONT", read_all
        )
        await read_all()

    checks.assert_ok(n)
    assert warm[HITS] - start[HITS] >= total, warm
    assert all(t < REQUEST_BOUND for t in write_times), write_times
    assert frozen[ERRORS] > warm[ERRORS], frozen
    assert frozen[OPENS] > warm[OPENS], frozen
    assert frozen[UP] == 0, frozen
    assert resumed[HITS] > frozen[HITS], resumed
    assert_clean_exit(n)


# ------------------------------------------------------------------ e. the CLI writes

CLI_ROUNDS = 3


async def test_cli_write_is_seen_by_a_running_server(tmp_path: Path) -> None:
    data = tmp_path / "node"
    await init_node(data)
    checks = Checks()
    handle = f"{ENT8}/BY-CLI"
    cli_results = []
    async with (
        redis_server(tmp_path / "redis") as redis,
        node(data, "--redis", redis.url) as n,
        aiohttp.ClientSession() as session,
    ):
        await create(session, n, checks, [handle], "http")
        for i in range(CLI_ROUNDS):
            # Two reads: the second is served by the in-process tier.
            before = await metrics(session, n)
            await checks.read(session, n, handle, f"round {i} warm")
            await checks.read(session, n, handle, f"round {i} warm again")
            warmed = await metrics(session, n)
            assert warmed[LOCAL_HITS] > before[LOCAL_HITS], (before, warmed)

            value = url_of("cli", i)
            result = await asyncio.to_thread(
                procs.cli, "put", handle, "--value", f"URL={value}", "--data", data
            )
            cli_results.append((result.returncode, result.stderr))
            if result.returncode == 0:
                checks.expected[handle] = value
            await checks.read(session, n, handle, f"round {i} right after the CLI put")

        await checks.read(session, n, handle, "warm before the CLI delete")
        result = await asyncio.to_thread(procs.cli, "delete", handle, "--data", data)
        cli_results.append((result.returncode, result.stderr))
        checks.expected[handle] = None
        await checks.read(session, n, handle, "right after the CLI delete")

    assert [rc for rc, _ in cli_results] == [0] * (CLI_ROUNDS + 1), cli_results
    checks.assert_ok(n)
    assert_clean_exit(n)
