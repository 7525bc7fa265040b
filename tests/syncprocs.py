"""A top-level node and secondary nodes as real processes on loopback, for the sync tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from registry.bootstrap import prefix_values
from registry.model.identifiers import parse, prefix_handle
from registry.model.jsonvalues import value_to_json
from resolver.config import load, write_initial
from resolver.node import Node
from tests.procs import Served, cli, start, stop

T = TypeVar("T")
DEADLINE = 60.0
POLL = 0.05

# Short intervals so reports flow within a test's time.
FAST_SYNC = {
    "IDNODE_SYNC_POLL": "0.1",
    "IDNODE_STATS_INTERVAL": "1",
    "IDNODE_SYNC_RETRY_MAX": "0.3",
    "IDNODE_HEARTBEAT_INTERVAL": "1",
}


async def init_secondary(data: Path, prefix: str, secrets: Mapping[str, str]) -> None:
    """A node homed on ``prefix`` with the prefix handles of ``secrets`` (prefix → secret)."""
    data.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - test setup, nothing runs yet
    write_initial(data, prefix, f"node {prefix}")
    node = await Node.open(load(data), create_keys=True)
    try:
        await node.registry.import_records(
            [(parse(prefix_handle(p)), prefix_values(p, s)) for p, s in secrets.items()]
        )
        await node.ensure_keys_published()
    finally:
        await node.close()


def prefix_body(prefix: str, secret: str) -> dict[str, Any]:
    return {"values": [value_to_json(v) for v in prefix_values(prefix, secret)]}


def toplevel_init(data: Path) -> dict[str, Any]:
    done = cli("toplevel", "init", "--data", data)
    assert done.returncode == 0, done.stderr
    return {"stdout": done.stdout}


def app_create(data: Path, prefix: str, *extra: str) -> str:
    done = cli("toplevel", "app", "create", "--data", data, "--prefix", prefix, *extra)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def register(data: Path, top: Served, app: str, node: Served) -> None:
    done = cli(
        "sync",
        "register",
        "--data",
        data,
        "--toplevel",
        top.url,
        "--app-id",
        app,
        "--public-url",
        node.url,
    )
    assert done.returncode == 0, done.stderr


def sync_status(data: Path) -> dict[str, Any]:
    done = cli("sync", "status", "--data", data, "--json")
    assert done.returncode == 0, done.stderr
    status: dict[str, Any] = json.loads(done.stdout)
    return status


@contextlib.asynccontextmanager
async def toplevel_serving(
    data: Path, *extra: str, http: str = "127.0.0.1:0"
) -> AsyncIterator[Served]:
    served = await start("toplevel", "serve", "--data", data, "--http", http, *extra)
    try:
        yield served
    finally:
        await stop(served)


@contextlib.asynccontextmanager
async def node_serving(
    data: Path, env: Mapping[str, str] | None = None, http: str = "127.0.0.1:0"
) -> AsyncIterator[Served]:
    served = await start("serve", "--data", data, "--http", http, env={**FAST_SYNC, **(env or {})})
    try:
        yield served
    finally:
        await stop(served)


async def get_json(
    session: aiohttp.ClientSession, url: str, headers: Mapping[str, str] | None = None
) -> tuple[int, Any, Mapping[str, str]]:
    async with session.get(url, headers=headers) as r:
        return r.status, await r.json(content_type=None), r.headers


async def until(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], what: str) -> T:
    """Poll ``probe`` until ``done(result)``; fail after DEADLINE s with the last result."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while True:
        got = await probe()
        if done(got):
            return got
        assert loop.time() < deadline, f"{what}: not within {DEADLINE} s; last: {got!r}"
        await asyncio.sleep(POLL)


@dataclass
class Chain:
    top: Served
    top_data: Path
    session: aiohttp.ClientSession
