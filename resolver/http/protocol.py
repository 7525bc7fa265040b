"""The HTTP connection protocol the node serves with: aiohttp's, with the connection limits
of :mod:`resolver.http.limits` and answers in Handle JSON."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from registry.errors import ServerBusy
from resolver.config import Config
from resolver.http.limits import LimitedProtocol, LimitedRunner, Limits, busy_answer, connection_cap
from resolver.http.respond import JSON_TYPE


def _busy() -> bytes:
    error = ServerBusy("Server too busy: too many open connections")
    return busy_answer(
        JSON_TYPE, orjson.dumps({"responseCode": error.response_code, "message": error.message})
    )


class NodeProtocol(LimitedProtocol):
    """The node's protocol: the limits, answering in Handle JSON."""

    __slots__ = ()

    busy = _busy()


def limits_of(config: Config) -> Limits:
    """The connection limits ``config`` sets for this process."""
    return Limits(
        header_timeout=config.header_timeout,
        body_timeout=config.body_timeout,
        keepalive_timeout=config.keepalive_timeout,
        max_connections=connection_cap(config.max_connections),
    )


def make_runner(app: web.Application, config: Config, **kwargs: Any) -> web.AppRunner:
    """The runner that serves ``app`` with ``config``'s limits (``kwargs``: aiohttp's)."""
    return LimitedRunner(app, limits=limits_of(config), protocol=NodeProtocol, **kwargs)
