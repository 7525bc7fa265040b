"""One sender of the outbox among several hosts on one PostgreSQL registry: a mock top-level
and two ``idnode serve`` hosts (separate data directories); reports go out once, from
whichever host holds the database's lease, and another host takes over when it dies."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import NODE_ADMIN, init_node
from tests.pgserver import fresh_database
from tests.procs import Served
from tests.syncprocs import (
    app_create,
    get_json,
    node_serving,
    prefix_body,
    register,
    toplevel_init,
    toplevel_serving,
    until,
)
from tests.test_sync_e2e import metrics, put

SENDER = "idnode_sync_sender"
PENDING = "idnode_sync_pending_items"


@pytest.fixture
def dsn() -> Iterator[str]:
    with fresh_database() as location:
        yield location


async def both(s: aiohttp.ClientSession, *hosts: Served) -> list[dict[str, float]]:
    return [await metrics(s, h) for h in hosts]


async def counters(s: aiohttp.ClientSession, top: Served, app: str) -> dict[str, Any]:
    _, items, _ = await get_json(s, top.url + "/toplevel/v1/items")
    (mine,) = [c for c in items["apps"] if c["app_id"] == app]
    return dict(mine)


async def create_prefixes(
    s: aiohttp.ClientSession, hosts: list[Served], first: int, n: int
) -> None:
    for i in range(first, first + n):
        prefix = f"88.118.{i}"
        host = hosts[i % len(hosts)]
        assert await put(s, host, f"0.NA/{prefix}", prefix_body(prefix, "x"), NODE_ADMIN) == 201


async def test_one_sender_among_hosts_and_another_takes_over(tmp_path: Path, dsn: str) -> None:
    top_data, h0 = tmp_path / "top", tmp_path / "h0"
    toplevel_init(top_data)
    app = app_create(top_data, "88.118")
    await init_node(h0, store=dsn, cache_lease="2")
    async with (
        aiohttp.ClientSession() as s,
        toplevel_serving(top_data) as top,
        node_serving(h0) as a,
    ):
        register(h0, top, app, a)
        h1 = tmp_path / "h1"  # another host: the registered data directory, copied
        shutil.copytree(h0, h1, ignore=shutil.ignore_patterns("cache.gen", "sender.lock"))
        async with node_serving(h1) as b:
            await create_prefixes(s, [a, b], 100, 6)
            await until(
                lambda: both(s, a, b),
                lambda ms: all(m[PENDING] == 0 for m in ms) and any(m[SENDER] for m in ms),
                "the outbox delivered",
            )
            await create_prefixes(s, [a, b], 106, 2)  # more rounds of both agents
            ms = await until(
                lambda: both(s, a, b),
                lambda ms: all(m[PENDING] == 0 for m in ms),
                "the outbox delivered again",
            )
            assert [m[SENDER] for m in ms].count(1) == 1, ms  # one sender, not one a host
            got = await counters(s, top, app)
            assert got["duplicate"] == 0 and got["rejected"] == 0, got
            assert got["accepted"] == got["ids"] >= 8, got

            sender, other = (a, b) if ms[0][SENDER] else (b, a)
            sender.proc.kill()  # SIGKILL: its session ends, and with it the lease
            await sender.proc.wait()
            await create_prefixes(s, [other], 108, 3)
            m = await until(
                lambda: metrics(s, other),
                lambda m: m[SENDER] == 1 and m[PENDING] == 0,
                "the other host sends",
            )
            got = await counters(s, top, app)
            assert got["rejected"] == 0 and got["ids"] >= 11, (got, m)
            # Every item reached the top-level once (a batch the killed host sent but
            # never marked delivered comes again as a duplicate, and is counted once).
            assert got["accepted"] == got["ids"], got
