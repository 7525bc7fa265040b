"""A prefix suspended through one host is refused by every other at once: two ``idnode
serve`` processes on one PostgreSQL database (as tests/test_hosts.py runs them), each having
resolved the identifier from its hot path before."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from tests.conftest import ENT8, JSON, NODE_ADMIN, init_node
from tests.pgserver import fresh_database
from tests.test_cache_processes import Checks, Node, create, get_url, node, wait_metrics
from tests.test_hosts import COHERENT, copy_host

ITEM = f"{ENT8}/LC-1"


async def act(session: aiohttp.ClientSession, host: Node, action: str) -> int:
    url = host.api("").replace("/api/handles/", f"/api/enterprises/{ENT8}/{action}")
    async with session.post(url, json={"reason": "audit"}, headers={**NODE_ADMIN, **JSON}) as r:
        await r.read()
        return r.status


async def test_a_suspension_is_seen_by_every_host_at_once(tmp_path: Path) -> None:
    with fresh_database() as dsn:
        first = tmp_path / "h0"
        await init_node(first, store=dsn, cache_lease="2")
        second = copy_host(first, tmp_path / "h1")
        async with (
            node(first) as a,
            node(second) as b,
            aiohttp.ClientSession() as session,
        ):
            for host in (a, b):
                await wait_metrics(session, host, lambda m: m.get(COHERENT) == 1, "in step")
            await create(session, a, Checks(), [ITEM], "lc")
            for _ in range(3):  # cached on each host: later reads take the hot path
                for host in (a, b):
                    assert (await get_url(session, host, ITEM))[0] == 200
            assert await act(session, a, "suspend") == 200
            for host in (b, a):
                assert (await get_url(session, host, ITEM))[0] == 403
            assert await act(session, b, "reactivate") == 200
            for host in (a, b):
                assert (await get_url(session, host, ITEM))[0] == 200
