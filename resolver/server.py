"""Running the node: one event loop per process, ``--workers N`` processes sharing the port
through SO_REUSEPORT."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import ssl
import subprocess
import sys

from aiohttp import web

from resolver import logs
from resolver.config import Config
from resolver.http.app import make_app
from resolver.http.protocol import make_runner


def ssl_context(config: Config) -> ssl.SSLContext | None:
    if not config.tls_cert or not config.tls_key:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(config.tls_cert, config.tls_key)
    return ctx


async def serve_async(config: Config, *, reuse_port: bool = False) -> None:
    app = make_app(config)
    runner = make_runner(app, config, handler_cancellation=True)
    await runner.setup()
    settle_heap()
    ctx = ssl_context(config)
    site = web.TCPSite(
        runner,
        config.http_host,
        config.http_port,
        ssl_context=ctx,
        reuse_port=reuse_port,
        backlog=1024,
    )
    await run_until_signalled(runner, site, "idnode", "https" if ctx else "http")


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
    runner: web.AppRunner, site: web.TCPSite, label: str, scheme: str = "http"
) -> None:
    """Announce ``site``'s address and serve until SIGINT/SIGTERM, then clean up."""
    try:
        # Handlers first: whoever reads the line below may signal at once.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await site.start()
        for sock in getattr(site._server, "sockets", ()):  # aiohttp has no public accessor
            host, port = sock.getsockname()[:2]
            # Tests and scripts read this line to find the port when serving on port 0.
            announce(f"{label} listening on {scheme}://{host}:{port}")
        await stop.wait()
    finally:
        await runner.cleanup()


def announce(line: str) -> None:
    """Write ``line`` to stdout in one ``write`` (atomic on a pipe up to PIPE_BUF bytes).
    Workers share their parent's stdout, and ``print`` under ``PYTHONUNBUFFERED`` writes
    the text and the newline separately, so two workers' lines could merge into one."""
    sys.stdout.flush()
    os.write(sys.stdout.fileno(), f"{line}\n".encode())


def run(config: Config, *, reuse_port: bool = False) -> None:
    """Serve until SIGINT/SIGTERM; several workers when ``config.workers`` > 1."""
    logs.configure(config)
    if config.workers > 1 and not reuse_port:
        run_workers(config)
        return
    main = serve_async(config, reuse_port=reuse_port)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is optional off Linux
        asyncio.run(main)
    else:
        uvloop.run(main)


def run_workers(config: Config) -> None:
    if config.http_port == 0:
        raise SystemExit("--workers > 1 needs a fixed port (the workers share it)")
    cmd = [
        sys.executable,
        "-m",
        "resolver.cli",
        "serve",
        "--data",
        str(config.data_dir),
        "--http",
        config.http,
        "--workers",
        "1",
        "--reuse-port",
    ]
    # Settings that may have come from flags reach the workers as flags too.
    if config.redis_url:
        cmd += ["--redis", config.redis_url]
    if config.tls_cert and config.tls_key:
        cmd += ["--tls-cert", str(config.tls_cert), "--tls-key", str(config.tls_key)]
    cmd += ["--log-format", config.log_format]
    if config.access_log:
        cmd.append("--access-log")
    procs = [subprocess.Popen(cmd) for _ in range(config.workers)]

    def forward(signum: int, _frame: object) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(max(codes))
