"""Redis servers owned by a test: ``redis-server`` processes on free loopback ports, each in
its own directory, with persistence off, and a Redis Cluster made of them.

Readiness is learnt from the server's own log line (``Ready to accept connections``) read
from its stdout, never from a fixed sleep. A background task keeps draining that stdout (a
full pipe would block Redis) and keeps the log for assertion messages.

Never connects to anything but the servers started here (never the shared 6379).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from tests.conftest import free_port
from tests.procs import run_command

REDIS_SERVER = "/usr/bin/redis-server"
REDIS_CLI = "/usr/bin/redis-cli"
READY = "Ready to accept connections"
START_TIMEOUT = 15.0  # seconds for redis-server to say it is ready
STOP_TIMEOUT = 10.0
CLUSTER_TIMEOUT = 30.0  # seconds for `redis-cli --cluster create` and cluster_state:ok
POLL = 0.05  # seconds between polls of CLUSTER INFO
LOG_LINES = 400  # lines of each server's log kept for messages
CLUSTER_BUS_OFFSET = 10_000  # a cluster node also listens on port + 10000


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    for _ in range(200):
        port = free_port()
        if port + CLUSTER_BUS_OFFSET <= 65535 and _bindable(port + CLUSTER_BUS_OFFSET):
            return port
    for port in range(20000, 55535):  # the kernel kept picking high ports: scan
        if _bindable(port) and _bindable(port + CLUSTER_BUS_OFFSET):
            return port
    raise RuntimeError("no free port pair for a cluster node")


class RedisServer:
    """One ``redis-server`` on ``127.0.0.1:port`` with its files in ``workdir``."""

    def __init__(self, workdir: Path, *extra: str, port: int | None = None) -> None:
        self.workdir = workdir
        self.extra = extra
        self.port = port or free_port()
        self.proc: asyncio.subprocess.Process | None = None
        self.log: list[str] = []
        self.starts = 0
        self._pump: asyncio.Task[None] | None = None
        self.stopped = False  # SIGSTOPped

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log[-lines:])

    async def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        if self.running:
            raise RuntimeError(f"redis on {self.address} already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        self.log.append(f"--- start #{self.starts} on port {self.port}")
        proc = await asyncio.create_subprocess_exec(
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            "--daemonize",
            "no",
            "--logfile",
            "",
            *self.extra,
            cwd=self.workdir,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self.proc = proc
        self.stopped = False
        ready = asyncio.get_running_loop().create_future()
        self._pump = asyncio.create_task(self._read(proc, ready))
        try:
            await asyncio.wait_for(asyncio.shield(ready), START_TIMEOUT)
        except TimeoutError:
            await self._abandon(ready)
            raise TimeoutError(
                f"redis-server on {self.address} not ready within {START_TIMEOUT} s:\n"
                + self.log_tail()
            ) from None
        except BaseException:
            await self._abandon(ready)
            raise

    async def _abandon(self, ready: asyncio.Future[None]) -> None:
        await self.kill()
        if ready.done() and not ready.cancelled():
            ready.exception()  # retrieved: no "never retrieved" warning

    async def _read(self, proc: asyncio.subprocess.Process, ready: asyncio.Future[None]) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            text = line.decode("utf-8", "replace").rstrip()
            self.log.append(text)
            del self.log[:-LOG_LINES]
            if READY in text and not ready.done():
                ready.set_result(None)
        if not ready.done():
            await proc.wait()
            ready.set_exception(
                RuntimeError(
                    f"redis-server on {self.address} exited with {proc.returncode} before "
                    f"being ready:\n{self.log_tail()}"
                )
            )

    async def kill(self) -> None:
        """SIGKILL the server and reap it (no shutdown, nothing saved)."""
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
        if self._pump is not None:
            await asyncio.wait_for(self._pump, STOP_TIMEOUT)
            self._pump = None
        self.stopped = False

    async def restart(self) -> None:
        """Kill (if running) and start again on the same port, in the same directory."""
        await self.kill()
        await self.start()

    def pause(self) -> None:
        """SIGSTOP: the server keeps its socket (the kernel still accepts connections) but
        answers nothing until :meth:`resume`."""
        assert self.proc is not None and self.proc.returncode is None
        self.proc.send_signal(signal.SIGSTOP)
        self.stopped = True

    def resume(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGCONT)
        self.stopped = False

    async def stop(self) -> None:
        """Stop for good: SIGCONT if paused, then SIGKILL and reap (a test server holds no
        data worth a clean shutdown)."""
        self.resume()
        await self.kill()

    async def cli(self, *args: str, within: float = 10.0) -> str:
        """``redis-cli -h 127.0.0.1 -p PORT ARGS`` against this server only."""
        return await redis_cli("-h", "127.0.0.1", "-p", str(self.port), *args, within=within)

    async def __aenter__(self) -> RedisServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def redis_cli(*args: str, within: float = 10.0) -> str:
    """Run ``redis-cli ARGS`` to completion; its stdout (raises on a non-zero exit)."""
    return await run_command(REDIS_CLI, *args, within=within)


@contextlib.asynccontextmanager
async def redis_server(workdir: Path, *extra: str) -> AsyncIterator[RedisServer]:
    """A standalone test-owned Redis, killed on exit."""
    server = RedisServer(workdir, *extra)
    try:
        await server.start()
        yield server
    finally:
        await server.stop()


class Cluster:
    def __init__(self, servers: Sequence[RedisServer]) -> None:
        self.servers = list(servers)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(s.address for s in self.servers)

    async def info(self, server: RedisServer) -> dict[str, str]:
        out = await server.cli("cluster", "info")
        return dict(
            line.split(":", 1) for line in out.replace("\r", "").splitlines() if ":" in line
        )

    async def wait_state(self, state: str, servers: Sequence[RedisServer] | None = None) -> None:
        """Poll CLUSTER INFO on every (given) node until each reports ``cluster_state``."""
        servers = self.servers if servers is None else servers
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLUSTER_TIMEOUT
        while True:
            infos = [await self.info(s) for s in servers]
            if all(i.get("cluster_state") == state for i in infos):
                return
            if loop.time() > deadline:
                raise TimeoutError(
                    f"cluster not {state} within {CLUSTER_TIMEOUT} s: "
                    + "; ".join(
                        f"{s.address}: {i.get('cluster_state')} "
                        f"slots_ok={i.get('cluster_slots_ok')}"
                        for s, i in zip(servers, infos, strict=True)
                    )
                )
            await asyncio.sleep(POLL)

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(f"[{s.address}]\n{s.log_tail(lines)}" for s in self.servers)


@contextlib.asynccontextmanager
async def cluster(workdir: Path, n: int = 3) -> AsyncIterator[Cluster]:
    """``n`` masters (no replicas) joined into a Redis Cluster, all killed on exit."""
    servers = []
    for i in range(n):
        d = workdir / f"node{i}"
        servers.append(
            RedisServer(
                d,
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(d / "nodes.conf"),
                "--cluster-node-timeout",
                "2000",
                port=free_cluster_port(),
            )
        )
    group = Cluster(servers)
    try:
        for s in servers:
            await s.start()
        await redis_cli(
            "--cluster",
            "create",
            *(s.address for s in servers),
            "--cluster-replicas",
            "0",
            "--cluster-yes",
            within=CLUSTER_TIMEOUT,
        )
        await group.wait_state("ok")
        yield group
    finally:
        errors = []
        for s in servers:
            try:
                await s.stop()
            except Exception as exc:  # stop the others anyway
                errors.append(exc)
        if errors:
            raise errors[0]
