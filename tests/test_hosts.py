"""Several hosts serving one registry, as the README's multi-host layout runs them: three
``idnode serve`` processes, each with its own data directory (copied from the first, without
its generation table), on one PostgreSQL database and one Redis.

Writes go through each host in turn and every host is read before and after each write: no
read may be older than the last acknowledged write, whatever happens meanwhile — a host
killed with SIGKILL, Redis killed and restarted, every PostgreSQL session cut (what a server
restart does to them; the server itself is shared with other tests). Writes that meet the
cut may be refused with 503 and are tried again; none acknowledged is lost.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import ENT8, init_node
from tests.pgserver import fresh_database, terminate_backends
from tests.redisproc import redis_server
from tests.test_cache_processes import (
    DEADLINE,
    LOCAL_HITS,
    Checks,
    Node,
    assert_clean_exit,
    create,
    get_url,
    node,
    put_url,
    url_of,
    wait_metrics,
)

# Rounds of one write and reads on every host; IDNODE_TEST_HOST_ROUNDS runs more (1000).
ROUNDS = int(os.environ.get("IDNODE_TEST_HOST_ROUNDS", "300"))
KILL_HOST = ROUNDS // 4  # SIGKILL of the third host before this round
KILL_REDIS = ROUNDS * 3 // 8
RESTART_REDIS = ROUNDS // 2
CUT_POSTGRES = ROUNDS * 5 // 8  # every idnode session on the database ended
HANDLES = [f"{ENT8}/HOST-{k}" for k in range(5)]
LEASE = "2"  # seconds: a dead host holds writes up to this long
COHERENT = "idnode_cache_coherent"
SUSPENSIONS = "idnode_cache_suspensions_total"


@pytest.fixture
def dsn() -> Iterator[str]:
    with fresh_database() as location:
        yield location


def copy_host(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("cache.gen"))
    return target


async def write(
    session: aiohttp.ClientSession, host: Node, handle: str, value: str, refused: list[int]
) -> None:
    """PUT until acknowledged (200 or 201); a 503 (the database away) is tried again."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while True:
        status = await put_url(session, host, handle, value)
        if status in (200, 201):
            return
        assert status == 503, f"write of {handle} answered {status}:\n{host.stderr()}"
        refused.append(status)
        assert loop.time() < deadline, f"writes refused for {DEADLINE} s:\n{host.stderr()}"
        await asyncio.sleep(0.05)


async def test_three_hosts_on_one_database_never_serve_a_stale_read(
    tmp_path: Path, dsn: str
) -> None:
    first = tmp_path / "h0"
    await init_node(first, store=dsn, cache_lease=LEASE)
    dirs = [first, copy_host(first, tmp_path / "h1"), copy_host(first, tmp_path / "h2")]
    checks = Checks()
    refused: list[int] = []
    async with (
        redis_server(tmp_path / "redis") as redis,
        node(dirs[0], "--redis", redis.url) as a,
        node(dirs[1], "--redis", redis.url) as b,
        node(dirs[2], "--redis", redis.url) as c,
        aiohttp.ClientSession() as session,
    ):
        hosts = [a, b, c]
        for host in hosts:
            await wait_metrics(session, host, lambda m: m.get(COHERENT) == 1, "in step")
        await create(session, a, checks, HANDLES, "first")
        alive = list(hosts)
        for i in range(ROUNDS):
            if i == KILL_HOST:
                c.served.proc.kill()
                await c.served.proc.wait()
                alive.remove(c)
            elif i == KILL_REDIS:
                await redis.kill()
            elif i == RESTART_REDIS:
                await redis.start()
            elif i == CUT_POSTGRES:
                assert await terminate_backends(dsn) > 0
            handle = HANDLES[i % len(HANDLES)]
            writer = alive[i % len(alive)]
            for host in alive:
                await checks.read(session, host, handle, f"round {i} before, {hosts.index(host)}")
            value = url_of("round", i)
            await write(session, writer, handle, value, refused)
            checks.expected[handle] = value
            for host in alive:
                await checks.read(session, host, handle, f"round {i} after, {hosts.index(host)}")
        # Every host back in step after the cut, and every acknowledged write in place.
        for host in alive:
            m = await wait_metrics(session, host, lambda m: m.get(COHERENT) == 1, "in step")
            assert m[SUSPENSIONS] >= 1  # the cut suspended its cache
            assert m[LOCAL_HITS] > 0  # and the cache was in play
        for handle in HANDLES:
            for host in alive:
                status, got, _ = await get_url(session, host, handle)
                assert (status, got) == (200, checks.expected[handle])

    checks.assert_ok(a, b)
    assert checks.reads == sum(2 * (3 if i < KILL_HOST else 2) for i in range(ROUNDS))
    assert_clean_exit(a, b)
    print(f"{ROUNDS} rounds, {checks.reads} reads, {len(refused)} writes refused (503)")
