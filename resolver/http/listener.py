"""The HTTP listener: the node's aiohttp app on one address, with the connection limits of
:mod:`resolver.http.limits` and TLS when the configuration names a certificate."""

from __future__ import annotations

import ssl

from aiohttp import web

from resolver.config import Config
from resolver.http.app import make_app
from resolver.http.protocol import make_runner
from resolver.listeners import Running, Serving, listening_lines
from resolver.node import Node


def ssl_context(config: Config) -> ssl.SSLContext | None:
    """The server's TLS context when ``config`` names a certificate and its key."""
    if not config.tls_cert or not config.tls_key:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(config.tls_cert, config.tls_key)
    return ctx


async def start_site(
    runner: web.BaseRunner,
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    reuse_port: bool = False,
    label: str = "idnode",
) -> Running:
    """Serve ``runner`` (set up) on ``host:port`` until the listener is closed (which cleans
    the runner up: listening stops, requests in progress finish); the runner is cleaned up
    if serving cannot start."""
    site = web.TCPSite(
        runner, host, port, ssl_context=ssl_context, reuse_port=reuse_port, backlog=1024
    )
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = getattr(site._server, "sockets", ())  # aiohttp has no public accessor
    addresses = [s.getsockname()[:2] for s in bound]
    lines = listening_lines("https" if ssl_context else "http", addresses, label)
    return Running(addresses, lines, runner.cleanup)


async def start_http(node: Node, config: Config, host: str, port: int, serving: Serving) -> Running:
    """The node's HTTP API, reverse lookup and proxy on ``host:port`` (the ``http`` kind)."""
    ctx = ssl_context(config)
    app = make_app(config, node)
    runner = make_runner(app, config, handler_cancellation=True)  # logs as config says
    await runner.setup()
    return await start_site(runner, host, port, ssl_context=ctx, reuse_port=serving.reuse_port)
