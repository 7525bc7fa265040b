"""What a connection may hold of the server, and for how long: the limits aiohttp lacks.

aiohttp's protocol has a keep-alive timeout (an idle connection is closed when it runs out)
and bounds on header sizes, but no deadline for a request's head and no bound on how many
connections are open: a client that connects and sends nothing, or sends a request line a
byte at a time, keeps its socket until the keep-alive timeout, and enough such clients use
up the process's file descriptors, after which no new client gets in at all.

:class:`LimitedProtocol` adds both:

- **Head deadline**: a request's line and headers must arrive within ``header_timeout`` of
  the connection opening, or, on a kept-alive connection, of the request's first byte. A
  head that arrives in one read (nearly all do) costs a check of two attributes; only a
  head split over reads is timed, by a single timer per connection that reschedules itself
  rather than being cancelled and made anew for each request.
- **Connection cap**: past ``max_connections`` open connections (per process) a new one is
  answered ``503`` at once and closed, so the process never runs out of descriptors and
  its clients are not kept waiting in the listen queue. A warning says so, at most once a
  :data:`WARN_EVERY` seconds.

The keep-alive timeout is aiohttp's own; the body deadline is enforced where a body is read
(:func:`resolver.http.api.read_json`) and, for a body no handler reads, by aiohttp's lingering
time, set to the same value (:func:`handler_options`).
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("idnode.http")

DEFAULT_MAX_CONNECTIONS = 10_000
# Descriptors kept for the process's own use when the cap is derived from the file limit:
# the store and its WAL, Redis and outbound HTTP connections, the event loop's own.
FD_RESERVE_MIN, FD_RESERVE_MAX = 32, 128
WARN_EVERY = 10.0  # seconds between warnings that connections are being refused


@dataclass(frozen=True)
class Limits:
    """The connection limits of one serving process (seconds, and a count)."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keepalive_timeout: float = 75.0
    max_connections: int = DEFAULT_MAX_CONNECTIONS


def connection_cap(configured: int, file_limit: int | None = None) -> int:
    """``configured`` when set (> 0); else as many connections as the process's file limit
    (``file_limit``: its soft ``RLIMIT_NOFILE``) leaves room for after a reserve of its own,
    at most :data:`DEFAULT_MAX_CONNECTIONS`."""
    if configured > 0:
        return configured
    if file_limit is None:
        file_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if file_limit == resource.RLIM_INFINITY or file_limit <= 0:
        return DEFAULT_MAX_CONNECTIONS
    reserve = max(FD_RESERVE_MIN, min(FD_RESERVE_MAX, file_limit // 4))
    return max(1, min(DEFAULT_MAX_CONNECTIONS, file_limit - reserve))


def handler_options(limits: Limits) -> dict[str, Any]:
    """aiohttp's own protocol settings for ``limits``: runner keyword arguments."""
    # lingering_time: how long the rest of a body no handler read is drained before the
    # connection is closed, which bounds such a body by the same deadline as a read one.
    return {"keepalive_timeout": limits.keepalive_timeout, "lingering_time": limits.body_timeout}


def busy_answer(content_type: str, body: bytes, status: int = 503) -> bytes:
    """A whole HTTP/1.1 answer (``503`` unless told otherwise) that closes the connection,
    to write at once."""
    return (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    ).encode("ascii") + body


class LimitedServer(web.Server):
    """aiohttp's low-level server, making ``protocol`` connections and counting the open
    ones."""

    def __init__(
        self,
        handler: Any,
        *,
        limits: Limits,
        protocol: type[LimitedProtocol],
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self.limits = limits
        self.protocol = protocol
        self.open = 0  # connections accepted and not yet lost
        self.refused = 0  # since the last warning
        self._warned_at = -WARN_EVERY

    def __call__(self) -> RequestHandler:
        # As web.Server.__call__ does, with this server's protocol.
        return self.protocol(self, loop=self._loop, **self._kwargs)

    def refuse(self, transport: asyncio.BaseTransport) -> None:
        """Answer a connection over the cap with 503 and close it."""
        stream = cast(asyncio.Transport, transport)  # uvloop's are not asyncio subclasses
        stream.write(self.protocol.busy)
        stream.close()
        self.refused += 1
        now = self._loop.time()
        if now - self._warned_at >= WARN_EVERY:
            log.warning(
                "%d connections open (max_connections): refused %d new one(s)",
                self.open,
                self.refused,
            )
            self._warned_at = now
            self.refused = 0


class LimitedProtocol(RequestHandler):
    """aiohttp's HTTP protocol with a deadline for each request's head and the server's
    connection cap (see the module's documentation)."""

    __slots__ = ("_head_seen", "_head_since", "_head_timer", "_server")

    # The answer to a connection over the cap, written before any request is read.
    busy = busy_answer("text/plain", b"Too many open connections")

    def __init__(self, manager: LimitedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._server: LimitedServer | None = manager
        self._head_since = 0.0  # when the awaited head began
        self._head_seen = 0  # requests parsed by then: a head completed since when this grew
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        server = self._server
        assert server is not None
        if server.open >= server.limits.max_connections:
            self._server = None
            self._manager = None  # aiohttp's connection_lost then does nothing
            self._force_close = True  # and data_received ignores what comes
            server.refuse(transport)
            return
        server.open += 1
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: BaseException | None) -> None:
        server = self._server
        if server is not None:
            server.open -= 1
            self._server = None
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        waiter = self._waiter
        # Bytes read, and still no request for the loop waiting for one (a whole head in one
        # read has ended that wait): a head is on its way. Timed from now unless it is the
        # one already timed (no request parsed since the stamp).
        if (
            waiter is not None
            and not waiter.done()
            and data
            and self._head_seen != self._request_count
        ):
            self._await_head()

    def _await_head(self) -> None:
        self._head_since = self._loop.time()
        self._head_seen = self._request_count
        if self._head_timer is None:
            self._arm(self._head_since)

    def _arm(self, since: float) -> None:
        assert self._server is not None
        deadline = since + self._server.limits.header_timeout
        self._head_timer = self._loop.call_at(deadline, self._head_deadline)

    def _head_deadline(self) -> None:
        self._head_timer = None
        if self._server is None or self._head_seen != self._request_count:
            return  # closed, or the head arrived: the next one is timed when it starts
        since = self._head_since
        if self._loop.time() < since + self._server.limits.header_timeout:
            self._arm(since)  # a later head than the one this timer was set for
            return
        log.debug("closing a connection from %s: no request head in time", self.peername)
        self.force_close()


class LimitedRunner(web.AppRunner):
    """An app runner whose server is a :class:`LimitedServer` of ``protocol``."""

    def __init__(
        self,
        app: web.Application,
        *,
        limits: Limits,
        protocol: type[LimitedProtocol] = LimitedProtocol,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, **handler_options(limits), **kwargs)
        self._limits = limits
        self._protocol = protocol

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()
        # The app's server as made, remade as a LimitedServer with the same settings
        # (aiohttp has no hook for the protocol class its server makes).
        server = LimitedServer(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            limits=self._limits,
            protocol=self._protocol,
            **made._kwargs,
        )
        return server
