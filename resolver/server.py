"""Running the node: one event loop per process serving it through the shell
(:mod:`resolver.shell`), ``--workers N`` processes sharing every listener's port through
SO_REUSEPORT, until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from resolver import logs
from resolver.auditkeeper import record_config_once
from resolver.config import Config, split_hostport
from resolver.listeners import Serving, configured
from resolver.shell import ServiceFactory, Shell


async def serve_async(
    config: Config, *, services: Sequence[ServiceFactory] = (), serving: Serving | None = None
) -> None:
    """Serve the node of ``config`` with ``services`` until SIGINT/SIGTERM."""
    shell = Shell(config, services=services, serving=serving)
    await run_until_signalled(shell.start, shell.close)


# Collection thresholds while serving (CPython's defaults: 700, 10, 10). Serving makes no
# cyclic garbage (a cold run of 80,000 requests: 0 objects collected), yet the defaults ran a
# full collection every ~0.8 s, and a full one walks every long-lived object: the resolver's
# memo of parsed handles and the cache tiers, which grow with the keys asked for (50,000 at
# 10 M). Rarer collections took 8.6% off a cold request's CPU at 10 M and 5% at 10 k.
SERVING_GC_THRESHOLDS = (10_000, 10, 100)


def settle_heap() -> None:
    """After start-up: what exists now (modules, the node, its keys) lives as long as the
    process, so move it out of the garbage collector's way (``gc.freeze``). A full
    collection then walks only what serving made since, which keeps its pause short; and
    collections run less often (:data:`SERVING_GC_THRESHOLDS`)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVING_GC_THRESHOLDS)


async def run_until_signalled(
    start: Callable[[], Awaitable[Sequence[str]]], close: Callable[[], Awaitable[None]]
) -> None:
    """``start`` what is served, settle the heap, announce the lines ``start`` returned, and
    serve until SIGINT/SIGTERM; then ``close`` (after a failed start too)."""
    try:
        # Handlers first: whoever reads the lines below may signal at once.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        lines = await start()
        settle_heap()
        for line in lines:
            # Tests and scripts read these to find the ports when serving on port 0.
            announce(line)
        await stop.wait()
    finally:
        await close()


def announce(line: str) -> None:
    """Write ``line`` to stdout in one ``write`` (atomic on a pipe up to PIPE_BUF bytes).
    Workers share their parent's stdout, and ``print`` under ``PYTHONUNBUFFERED`` writes
    the text and the newline separately, so two workers' lines could merge into one."""
    sys.stdout.flush()
    os.write(sys.stdout.fileno(), f"{line}\n".encode())


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop where there is one."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is optional off Linux
        asyncio.run(main)
    else:
        uvloop.run(main)


def run(
    config: Config, *, services: Sequence[ServiceFactory] = (), serving: Serving | None = None
) -> None:
    """Serve until SIGINT/SIGTERM; several workers when ``config.workers`` > 1 (each runs
    ``idnode serve`` again, and so gets its services from the command line)."""
    logs.configure(config)  # once, for every listener (and the workers do it themselves)
    serving = serving or Serving()
    if config.workers > 1 and not serving.reuse_port:
        run_loop(record_config_once(config))  # once, not by each worker
        run_workers(config)
        return
    run_loop(serve_async(config, services=services, serving=serving))


def run_workers(config: Config) -> None:
    for kind, address in configured(config):
        if split_hostport(address)[1] == 0:
            raise SystemExit(
                f"--workers > 1 needs a fixed port (the workers share it): {kind.name} {address}"
            )
    procs = [subprocess.Popen(worker_command(config)) for _ in range(config.workers)]

    def forward(signum: int, _frame: object) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(max(codes))


def worker_command(config: Config) -> list[str]:
    """One worker's command line: ``idnode serve`` again, with the settings that may have
    come from flags given as flags too (the rest it reads from the data directory and the
    environment it inherits)."""
    cmd = [
        sys.executable,
        "-m",
        "resolver.cli",
        "serve",
        "--data",
        str(config.data_dir),
        "--workers",
        "1",
        "--reuse-port",
    ]
    for kind, address in configured(config):
        cmd += [f"--{kind.name}", address]
    if config.dns:
        cmd += ["--dns-zone", config.dns_zone]
    if config.redis_url:
        cmd += ["--redis", config.redis_url]
    if config.tls_cert and config.tls_key:
        cmd += ["--tls-cert", str(config.tls_cert), "--tls-key", str(config.tls_key)]
    cmd += ["--log-format", config.log_format]
    if config.access_log:
        cmd.append("--access-log")
    if not config.ready_requires_redis:
        cmd.append("--no-ready-requires-redis")
    return cmd
