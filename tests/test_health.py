"""``/healthz``, ``/readyz`` and ``idnode status`` against real servers: readiness follows the
store, the keys, Redis and the sync backlog away and back."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from registry.bootstrap import prefix_values
from registry.model.jsonvalues import value_to_json
from resolver.cli import parser
from resolver.config import STORE_FILE, ConfigError, load, write_initial
from resolver.node import Node
from resolver.server import worker_command
from resolver.shell import Shell
from resolver.statuscmd import report
from sync.agent import SyncAgent
from tests.conftest import JSON, NODE_ADMIN, free_port, init_node
from tests.pgcluster import cluster
from tests.procs import cli, serving
from tests.redisproc import redis_server

DEADLINE = 30.0  # seconds for readiness to follow a change
POLL = 0.05


@dataclass
class Running:
    url: str
    node: Node
    session: aiohttp.ClientSession

    async def ready(self) -> tuple[int, dict[str, Any]]:
        async with self.session.get(f"{self.url}/readyz") as r:
            assert r.headers["Content-Type"].startswith("application/json")
            assert r.headers["Cache-Control"] == "no-store"
            return r.status, await r.json()

    async def until(
        self, status: int, what: str, also: Callable[[dict[str, Any]], bool] = lambda _: True
    ) -> dict[str, Any]:
        """Poll /readyz until it answers ``status`` (and ``also`` holds of the body)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while True:
            got, body = await self.ready()
            if got == status and also(body):
                return body
            assert loop.time() < deadline, f"{what}: still {got} {body} after {DEADLINE} s"
            await asyncio.sleep(POLL)


@contextlib.asynccontextmanager
async def running(data: Path, init: bool = True, **settings: Any) -> AsyncIterator[Running]:
    """The node in ``data`` (made first, if ``init``) served in-process on port 0 as
    ``idnode serve`` serves it, ``settings`` over its configuration; the test holds the node
    to act on its store."""
    if init:
        await init_node(data)
    config = dataclasses.replace(load(data, env={}), http="127.0.0.1:0", **settings)
    shell = Shell(config, services=[SyncAgent])
    await shell.start()
    try:
        (http,) = shell.listeners
        assert shell.node is not None
        async with aiohttp.ClientSession() as session:
            yield Running(f"http://127.0.0.1:{http.addresses[0][1]}", shell.node, session)
    finally:
        await shell.close()


def checks(body: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = body["checks"]
    return result


# Another process holding the SQLite write and read-mark locks of the WAL index (bytes
# 120-127 of the -shm file): as a stuck backup tool or sqlite3 shell would, it leaves the
# store's readers unable to start a read until it lets go.
LOCKER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 8, 120)
print("locked", flush=True)
sys.stdin.readline()
"""


@contextlib.asynccontextmanager
async def store_locked(data: Path) -> AsyncIterator[None]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LOCKER,
        str(data / f"{STORE_FILE}-shm"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert await asyncio.wait_for(proc.stdout.readline(), DEADLINE) == b"locked\n"
        yield
    finally:
        proc.stdin.close()  # the locker exits, and its locks go with it
        await asyncio.wait_for(proc.wait(), DEADLINE)


# ------------------------------------------------------------------ healthz, readyz


async def test_healthz_and_readyz_of_a_ready_node(tmp_path: Path) -> None:
    async with running(tmp_path / "node") as n:
        async with n.session.get(f"{n.url}/healthz") as r:
            assert r.status == 200
            health = await r.json()
        assert health["status"] == "ok" and health["version"]
        assert health["uptime_seconds"] >= 0
        status, body = await n.ready()
        assert status == 200, body
        assert body["status"] == "ready"
        # No Redis configured: no Redis check.
        assert set(checks(body)) == {"store", "keys", "sync_backlog"}
        assert all(c["ok"] is True for c in checks(body).values()), body
        assert checks(body)["store"]["seconds"] >= 0
        assert checks(body)["store"]["backend"] == "sqlite"
        assert checks(body)["sync_backlog"]["max"] == 1000


async def test_readiness_follows_the_store_away_and_back(tmp_path: Path) -> None:
    data = tmp_path / "node"
    async with running(data, ready_timeout=0.3) as n:
        await n.until(200, "ready at first")
        async with store_locked(data):
            body = await n.until(503, "the store locked by another process")
            store = checks(body)["store"]
            assert store["ok"] is False
            assert store["error"] == "no answer within 0.3 s", store
            assert checks(body)["keys"]["ok"] is True  # only what failed is reported failed
            async with n.session.get(f"{n.url}/healthz") as r:
                assert r.status == 200  # the process itself is alive
        await n.until(200, "ready once the lock is gone")

        await n.node.store.close()  # gone for good (a closed store is never reopened)
        body = await n.until(503, "the store closed")
        assert checks(body)["store"] == {
            "ok": False,
            "backend": "sqlite",
            "error": "StoreClosed: Store is closed",
        }


async def test_readiness_follows_a_postgresql_server_away_and_back(tmp_path: Path) -> None:
    """The node's own PostgreSQL server stopped: not ready, the store check says why; the
    server started again: ready, the same node (its pool reconnects)."""
    data = tmp_path / "node"
    with cluster() as made:
        pg = await asyncio.to_thread(made.primary)
        await init_node(data, store=pg.url())
        async with running(data, init=False, ready_timeout=2.0) as n:
            body = await n.until(200, "ready on PostgreSQL")
            assert checks(body)["store"]["ok"] is True
            await asyncio.to_thread(pg.stop)
            body = await n.until(503, "the PostgreSQL server stopped")
            store = checks(body)["store"]
            assert store["ok"] is False and store["backend"] == "postgresql", body
            assert store["error"].startswith("StoreUnavailable: "), store
            assert checks(body)["keys"]["ok"] is True  # only what failed is reported failed
            async with n.session.get(f"{n.url}/healthz") as r:
                assert r.status == 200  # the process itself is alive
            await asyncio.to_thread(pg.start)
            body = await n.until(200, "the PostgreSQL server back")
            assert all(c["ok"] is True for c in checks(body).values()), body


async def test_readiness_follows_redis_away_and_back(tmp_path: Path) -> None:
    async with (
        redis_server(tmp_path / "redis") as redis,
        running(tmp_path / "node", redis_url=redis.url) as n,
    ):
        body = await n.until(200, "ready with Redis up")
        assert checks(body)["redis"] == {"ok": True, "state": "up"}
        await redis.kill()
        body = await n.until(503, "Redis killed")
        assert checks(body)["redis"]["ok"] is False
        assert checks(body)["redis"]["state"] in ("down", "circuit open"), body
        assert checks(body)["store"]["ok"] is True
        await redis.start()  # same port: the node's client reconnects
        body = await n.until(200, "Redis back")
        assert checks(body)["redis"] == {"ok": True, "state": "up"}


async def test_redis_can_be_left_out_of_readiness(tmp_path: Path) -> None:
    """``ready_requires_redis = false``: Redis down is reported but the node stays ready
    (it answers from its own tier and the store)."""
    data = tmp_path / "node"
    await init_node(data, ready_requires_redis="false")
    async with (
        redis_server(tmp_path / "redis") as redis,
        running(data, init=False, redis_url=redis.url) as n,
    ):
        assert n.node.config.ready_requires_redis is False  # from the config file
        body = await n.until(200, "ready with Redis up")
        assert checks(body)["redis"] == {"ok": True, "state": "up", "required": False}
        await redis.kill()
        body = await n.until(200, "Redis reported down", lambda b: not checks(b)["redis"]["ok"])
        assert body["status"] == "ready"
        assert checks(body)["redis"]["state"] in ("down", "circuit open"), body
        assert checks(body)["redis"]["required"] is False
        async with n.session.get(f"{n.url}/api/handles/0.NA/88.118") as r:
            assert r.status == 200  # still answering, from the store
        async with n.session.get(f"{n.url}/metrics") as r:
            text = await r.text()
        assert "idnode_ready 1\n" in text
        assert 'idnode_ready_check{check="redis"} 0\n' in text
        await redis.start()
        body = await n.until(200, "Redis back", lambda b: checks(b)["redis"]["ok"])
        assert checks(body)["redis"] == {"ok": True, "state": "up", "required": False}


async def test_readiness_follows_the_signing_keys(tmp_path: Path) -> None:
    data = tmp_path / "node"
    async with running(data) as n:
        await n.until(200, "ready")
        (data / "keys").rename(tmp_path / "keys.aside")
        body = await n.until(503, "keys moved away")
        keys = checks(body)["keys"]
        assert keys["ok"] is False and str(data / "keys") in keys["error"], keys
        (tmp_path / "keys.aside").rename(data / "keys")
        await n.until(200, "keys back")


async def test_readiness_follows_the_sync_backlog(tmp_path: Path) -> None:
    data = tmp_path / "node"
    async with running(data) as n:
        pending = checks((await n.ready())[1])["sync_backlog"]["pending"]
    # The node is not registered with a top-level: what a write reports stays in the outbox.
    async with running(data, init=False, ready_max_backlog=pending) as n:
        status, body = await n.ready()
        assert status == 200 and checks(body)["sync_backlog"]["max"] == pending, body
        values = [value_to_json(v) for v in prefix_values("88.118.7", "ent7-secret")]
        async with n.session.put(  # a new enterprise prefix: reported to the top-level
            f"{n.url}/api/handles/0.NA/88.118.7",
            json={"values": values},
            headers={**NODE_ADMIN, **JSON},
        ) as r:
            assert r.status == 201, await r.text()
        status, body = await n.ready()
        assert status == 503, body
        assert checks(body)["sync_backlog"] == {"ok": False, "pending": pending + 1, "max": pending}


# ------------------------------------------------------------------ idnode status


async def test_idnode_status(tmp_path: Path) -> None:
    data = tmp_path / "node"
    await init_node(data)
    async with serving(data) as served:
        ok = await asyncio.to_thread(cli, "status", "--server", served.url)
        assert ok.returncode == 0, ok.stderr
        lines = ok.stdout.splitlines()
        assert lines[0] == f"{served.url}: ready"
        assert any(line.split()[:2] == ["store", "ok"] for line in lines), ok.stdout
        assert any(line.split()[:2] == ["keys", "ok"] for line in lines), ok.stdout

        as_json = await asyncio.to_thread(cli, "status", "--server", served.url, "--json")
        assert as_json.returncode == 0 and '"status": "ready"' in as_json.stdout

        (data / "secrets.key").rename(tmp_path / "secrets.key")
        try:
            bad = await asyncio.to_thread(cli, "status", "--server", served.url)
        finally:
            (tmp_path / "secrets.key").rename(data / "secrets.key")
        assert bad.returncode == 1, (bad.stdout, bad.stderr)
        assert bad.stdout.splitlines()[0] == f"{served.url}: NOT READY"
        keys = next(line for line in bad.stdout.splitlines() if line.split()[0] == "keys")
        assert keys.split()[1] == "FAIL" and "secrets.key" in keys, bad.stdout

    nobody = f"http://127.0.0.1:{free_port()}"
    gone = await asyncio.to_thread(cli, "status", "--server", nobody)
    assert gone.returncode == 2 and gone.stderr.startswith(f"idnode: {nobody}/readyz: no answer")
    not_url = await asyncio.to_thread(cli, "status", "--server", "127.0.0.1:8000")
    assert not_url.returncode == 2 and "http://" in not_url.stderr


# ------------------------------------------------------------------ ready_requires_redis


def test_ready_requires_redis_from_file_environment_and_flag(tmp_path: Path) -> None:
    data = tmp_path / "node"
    data.mkdir()
    write_initial(data, "88.118", "n")
    assert load(data, env={}).ready_requires_redis is True  # the default
    off = {"IDNODE_READY_REQUIRES_REDIS": "false"}
    assert load(data, env=off).ready_requires_redis is False
    args = parser().parse_args(["serve", "--data", str(data), "--no-ready-requires-redis"])
    assert args.ready_requires_redis is False
    flags = {"ready_requires_redis": args.ready_requires_redis}
    config = load(data, flags, env={})
    assert config.ready_requires_redis is False
    # Each worker of `--workers N` is told too (they are started with flags, not this config).
    assert worker_command(config)[-1] == "--no-ready-requires-redis"
    assert "--no-ready-requires-redis" not in worker_command(load(data, env={}))
    again = {"ready_requires_redis": True}
    assert load(data, again, env=off).ready_requires_redis is True  # a flag wins
    with pytest.raises(ConfigError, match="ready_requires_redis must be true or false"):
        load(data, env={"IDNODE_READY_REQUIRES_REDIS": "sometimes"})


def test_status_report_marks_a_check_not_required() -> None:
    body = {
        "status": "ready",
        "checks": {
            "store": {"ok": True, "backend": "postgresql", "seconds": 0.0012},
            "redis": {"ok": False, "state": "down", "required": False},
        },
    }
    assert report("http://n", body).splitlines() == [
        "http://n: ready",
        "  store         ok    1.2 ms, postgresql",
        "  redis         FAIL  down (not required)",
    ]
