"""The native listener: UDP and TCP on one host:port, moving bytes between sockets and
:class:`~resolver.native.service.NativeService`. No protocol decisions live here.

UDP: each datagram is answered on the spot when the hot path (:mod:`.hot`) can, else it is
reassembled (:mod:`.udp`), decoded and answered by a task; replies longer than one datagram
are split as the reference splits them. At most ``max_in_flight`` slow requests run at once;
beyond that a request is answered "server too busy".

TCP: a connection carries any number of requests, answered in order (the reference answers
one and closes; its clients close after each reply, so they see no difference). Bytes that
break the framing get the reference's blind error reply, then the connection is closed: a
stream cannot be resynchronised. A connection is closed when it has waited ``idle_timeout``
for a request (or for its peer to read); at ``max_connections`` a new connection takes the
place of the one idle longest (one that never sent a request first), or is closed at once if
every connection is busy. Reading pauses while the peer does not read its replies.

The hot path's replies are counted here, into the ready series of a successful resolution
(:attr:`resolver.metrics.Recorder.resolved`): every one counted, one in :data:`SAMPLE` timed
and standing for the untimed ones before it (:class:`_HotTimer`), so that a hot reply pays an
integer increment instead of a clock pair and an observation. The service counts every other
answer. A request the core answered leaves its reply's shape with the hot path
(:meth:`~resolver.native.hot.HotAnswers.learn`), so the next one like it is answered hot.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from concurrent.futures import ThreadPoolExecutor
from time import perf_counter
from typing import Any

from resolver.metrics import Histogram
from resolver.native.admin import NativeAdmin
from resolver.native.certify import Certifier
from resolver.native.errors import RemoteProtocolError
from resolver.native.hot import Send
from resolver.native.messages import Message
from resolver.native.pending import PendingChallenges
from resolver.native.readers import decode
from resolver.native.service import NativeService
from resolver.native.settings import NativeLimits
from resolver.native.tcp import Framer
from resolver.native.udp import DATAGRAM_SIZE, Reassembler, receive, split_frame
from resolver.node import Node
from resolver.siteinfo import public_address, site_record

log = logging.getLogger("idnode.native")

_SIGNING_THREADS = 2
_BATCH = 64  # hot replies written at once on a TCP connection
SAMPLE = 64  # one hot reply in SAMPLE is timed


class _HotTimer:
    """The hot replies' share of the resolved series: ``untimed`` replies not filed yet;
    one is timed once ``untimed`` reaches ``budget`` (the first at once, then one in
    :data:`SAMPLE`), and files itself with them; :meth:`flush` files the rest under the last
    latency measured."""

    __slots__ = ("budget", "last", "series", "untimed")

    def __init__(self, series: Histogram) -> None:
        self.series = series
        self.untimed = 0
        self.budget = 0
        self.last = 0.0

    def timed(self, seconds: float) -> None:
        """A timed hot reply, standing for itself and the untimed ones before it."""
        self.series.observe_many(seconds, self.untimed + 1)
        self.last = seconds
        self.untimed = 0
        self.budget = SAMPLE - 1

    def flush(self) -> None:
        """File the untimed replies (the listener does twice a second, and when closed)."""
        if self.untimed:
            self.series.observe_many(self.last, self.untimed)
            self.untimed = 0


def _unconnected(data: bytes, addr: Any) -> None:
    pass


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, service: NativeService, limits: NativeLimits, timer: _HotTimer) -> None:
        self.service = service
        self.hot = service.hot.send
        self.timer = timer
        self.limits = limits
        self.codec_limits = limits.codec
        self.reassembler = Reassembler(
            timeout=limits.reassembly_timeout,
            max_pending=limits.max_pending_messages,
            max_pending_bytes=limits.max_pending_bytes,
            limits=self.codec_limits,
        )
        self.transport: asyncio.DatagramTransport | None = None
        self.sendto: Send = _unconnected
        self.tasks: set[asyncio.Task[None]] = set()
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram transport
        self.sendto = self.transport.sendto  # type: ignore[union-attr]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        timer = self.timer
        if timer.untimed < timer.budget:
            if self.hot(data, addr, self.sendto):
                timer.untimed += 1
                return
        else:
            start = perf_counter()
            if self.hot(data, addr, self.sendto):
                timer.timed(perf_counter() - start)
                return
        try:
            message = receive(data, addr[0], self.loop.time(), self.reassembler, self.codec_limits)
        except RemoteProtocolError as exc:
            refusal = self.service.refuse(exc)
            if refusal is not None:
                self._send(refusal, addr)
            return
        if message is None:
            return  # fragments still missing
        if len(self.tasks) >= self.limits.max_in_flight:
            self._send(self.service.busy(message), addr)
            return
        task = self.loop.create_task(self._answer(message, addr, data))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, message: Message, addr: Any, data: bytes) -> None:
        try:
            reply = await self.service.respond(message, udp=True, peer=str(addr[0]))
        except Exception:  # a bug: the service answers every failure itself
            log.exception("native udp: no answer to op %d", message.header.op_code)
            return
        if reply is not None:
            self._send(reply, addr)
            self.service.hot.learn(data)

    def _send(self, frame: bytes, addr: Any) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if len(frame) <= DATAGRAM_SIZE:
            transport.sendto(frame, addr)
            return
        for datagram in split_frame(frame):
            transport.sendto(datagram, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors from earlier replies (a client that went away): nothing to do.
        log.debug("native udp: %s", exc)


class _Tcp(asyncio.Protocol):
    """One TCP connection."""

    def __init__(self, listener: NativeListener) -> None:
        self.listener = listener
        self.service = listener.service
        self.loop = listener.loop
        self.framer = Framer(listener.limits.codec)
        self.transport: asyncio.Transport | None = None
        self.peer = "?"  # the client's address: what challenges and the throttle go by
        self.last = self.loop.time()  # of the last request or reply
        self.served = 0
        self.busy: asyncio.Task[None] | None = None  # the request being answered
        self.eof = False
        self.writing_paused = False
        self.reading_paused = False
        # Buffered bytes beyond which reading pauses while a request is being answered.
        self.max_buffered = listener.limits.max_message_length + 20

    @property
    def idle(self) -> bool:
        return self.busy is None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport
        peername = transport.get_extra_info("peername")
        if peername:
            self.peer = str(peername[0])
        self.listener.admit(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.connections.pop(self, None)
        if self.busy is not None:
            self.busy.cancel()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.last = self.loop.time()
        try:
            self.framer.feed(data)
        except RemoteProtocolError:
            return  # already refused: the connection is closing
        if self.busy is None:
            self._drain()
        elif self.framer.buffered > self.max_buffered:
            self._pause_reading()

    def eof_received(self) -> bool:
        self.eof = True
        self.framer.feed_eof()
        if self.busy is None:
            self._drain()
        return True  # half-close: the replies still go out, then _drain closes

    def pause_writing(self) -> None:
        self.writing_paused = True
        self._pause_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self.last = self.loop.time()
        if self.busy is None:
            self._resume_reading()
            self._drain()

    def _pause_reading(self) -> None:
        transport = self.transport
        if transport is not None and not self.reading_paused and not self.eof:
            self.reading_paused = True
            transport.pause_reading()

    def _resume_reading(self) -> None:
        transport = self.transport
        if transport is not None and self.reading_paused:
            self.reading_paused = False
            transport.resume_reading()

    def _drain(self) -> None:
        """Answer the complete frames buffered, in order, until one needs the core. The hot
        path's replies to one read go out in one write (of at most :data:`_BATCH`)."""
        hot = self.service.hot.frame
        timer = self.listener.timer
        replies: list[bytes] = []
        while (transport := self.transport) is not None and not self.writing_paused:
            try:
                frame = self.framer.next_frame()
            except RemoteProtocolError as exc:
                self._write(replies)
                self._refuse(exc)
                return
            if frame is None:
                self._write(replies)
                if self.eof:
                    transport.close()
                return
            self.served += 1
            if timer.untimed < timer.budget:
                reply = hot(frame)
                if reply is not None:
                    timer.untimed += 1
            else:
                start = perf_counter()
                reply = hot(frame)
                if reply is not None:
                    timer.timed(perf_counter() - start)
            if reply is not None:
                replies.append(reply)
                if len(replies) >= _BATCH:  # and the peer's reading is checked again
                    self._write(replies)
                continue
            self._write(replies)
            try:
                message = decode(frame, self.listener.limits.codec)
            except RemoteProtocolError as exc:
                self._refuse(exc)
                return
            self.busy = self.loop.create_task(self._answer(message, frame))
            return
        self._write(replies)

    def _write(self, replies: list[bytes]) -> None:
        transport = self.transport
        if replies and transport is not None:
            transport.write(replies[0] if len(replies) == 1 else b"".join(replies))
            replies.clear()

    async def _answer(self, message: Message, frame: bytes) -> None:
        try:
            reply = await self.service.respond(message, udp=False, peer=self.peer)
        except Exception:  # a bug: the service answers every failure itself
            log.exception("native tcp: no answer to op %d", message.header.op_code)
            if self.transport is not None:
                self.transport.abort()  # the requests behind it cannot be answered in order
            return
        finally:
            self.busy = None
        transport = self.transport
        if transport is None:
            return
        self.last = self.loop.time()
        if reply is not None:
            transport.write(reply)
            self.service.hot.learn(frame)
        if not self.writing_paused:
            self._resume_reading()
            self._drain()

    def _refuse(self, exc: RemoteProtocolError) -> None:
        transport = self.transport
        if transport is None:
            return
        reply = self.service.refuse(exc)
        if reply is not None:
            transport.write(reply)
        transport.close()


class NativeListener:
    """A running native listener (:func:`start_native`)."""

    def __init__(
        self, node: Node, service: NativeService, limits: NativeLimits, executor: Any
    ) -> None:
        self.node = node
        self.service = service
        self.limits = limits
        self.loop = asyncio.get_running_loop()
        self.connections: dict[_Tcp, None] = {}  # insertion order: oldest first
        self.executor = executor
        self.server: asyncio.Server | None = None
        self.udp: asyncio.DatagramTransport | None = None
        self.udp_protocol: _Udp | None = None
        self.timer = _HotTimer(service.recorder.resolved)
        self._housekeeper: asyncio.Task[None] | None = None

    @property
    def sockets(self) -> list[socket.socket]:
        """The TCP listening socket(s), then the UDP socket."""
        out: list[socket.socket] = list(self.server.sockets) if self.server else []
        if self.udp is not None:
            out.append(self.udp.get_extra_info("socket"))
        return out

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the listener is bound to, on both transports."""
        assert self.server is not None
        host, port = self.server.sockets[0].getsockname()[:2]
        return host, port

    def admit(self, connection: _Tcp) -> None:
        """Register a new connection, making room at the cap (see the module docstring)."""
        connections = self.connections
        if len(connections) >= self.limits.max_connections:
            idle = [c for c in connections if c.idle]
            if not idle:
                assert connection.transport is not None
                connection.transport.abort()
                return
            victim = min(idle, key=lambda c: (c.served > 0, c.last))
            connections.pop(victim, None)
            if victim.transport is not None:
                victim.transport.abort()
        connections[connection] = None

    async def _housekeeping(self) -> None:
        """Twice a second (or as often as the idle timeout needs): the hot path's clock, and
        closing the connections idle too long."""
        timeout = self.limits.idle_timeout
        interval = min(max(timeout / 4, 0.01), 0.5)
        hot = self.service.hot
        while True:
            await asyncio.sleep(interval)
            hot.tick()
            self.timer.flush()
            deadline = self.loop.time() - timeout
            for connection in [c for c in self.connections if c.idle and c.last < deadline]:
                self.connections.pop(connection, None)
                if connection.transport is not None:
                    connection.transport.abort()

    async def close(self) -> None:
        """Stop accepting, close every connection and socket, drop the requests in flight."""
        if self._housekeeper is not None:
            self._housekeeper.cancel()
        if self.server is not None:
            self.server.close()
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()
        self.connections.clear()
        if self.udp is not None:
            self.udp.close()
        if self.udp_protocol is not None:
            for task in list(self.udp_protocol.tasks):
                task.cancel()
        if self.server is not None:
            await self.server.wait_closed()
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
        self.timer.flush()
        if self._hot_lines in self.node.metrics:
            self.node.metrics.remove(self._hot_lines)

    async def _hot_lines(self) -> list[str]:
        """The hot path's counters for /metrics (:class:`~resolver.native.hot.HotAnswers`)."""
        self.timer.flush()
        hot = self.service.hot
        name = "idnode_native_hot_total"
        return [
            f"# HELP {name} Native resolution requests by how the hot path took them: "
            "answered from a kept reply (hit), from a reply built for them (built), or left "
            "to the core (core).",
            f"# TYPE {name} counter",
            f'{name}{{outcome="hit"}} {hot.hits}',
            f'{name}{{outcome="built"}} {hot.built}',
            f'{name}{{outcome="core"}} {hot.passed}',
        ]


async def start_native(
    node: Node,
    host: str,
    port: int,
    limits: NativeLimits | None = None,
    *,
    site: bytes | None = None,
    reuse_port: bool = False,
) -> NativeListener:
    """Serve the native protocol for ``node`` on UDP and TCP ``host:port`` (port 0: a free
    port, the same for both). ``site`` is the node's site record (default: built from the
    node's public URL, name, root key and the bound port). ``reuse_port`` lets several
    processes share the port (SO_REUSEPORT)."""
    limits = limits or NativeLimits()
    loop = asyncio.get_running_loop()
    # The key that signs certified replies is the one the site record publishes: the root.
    key = await loop.run_in_executor(None, node.keyring.key, 0)
    certifier = Certifier(key)
    executor = ThreadPoolExecutor(_SIGNING_THREADS, "idnode-sign") if certifier.blocking else None
    recorder = node.telemetry.transport("native")
    pending = PendingChallenges(limits.challenge_timeout, limits.max_pending_challenges)
    admin = NativeAdmin(node.resolver, node.registry, node.listings, node.throttle, pending)
    service = NativeService(
        node.resolver, b"", certifier, limits, recorder=recorder, executor=executor, admin=admin
    )
    if node.tracing is not None:
        node.tracing.native(service)
    listener = NativeListener(node, service, limits, executor)
    try:
        await _bind(listener, host, port, reuse_port)
        if site is None:
            url = node.config.base_url
            bound = listener.address[1]
            address = await public_address(url)
            site = site_record(url, address, node.config.name, key.public_jwk(), bound)
        service.site = site
        listener._housekeeper = loop.create_task(listener._housekeeping())
        node.metrics.append(listener._hot_lines)
    except BaseException:
        await listener.close()
        raise
    return listener


async def _bind(listener: NativeListener, host: str, port: int, reuse_port: bool) -> None:
    """TCP first; UDP on the port TCP got. With port 0 another process may hold the UDP
    side of the port TCP was given: try a few ports."""
    loop = listener.loop
    for attempt in range(8):
        server = await loop.create_server(
            lambda: _Tcp(listener), host, port, reuse_port=reuse_port or None, backlog=1024
        )
        bound = server.sockets[0].getsockname()[1]
        try:
            udp, protocol = await loop.create_datagram_endpoint(
                lambda: _Udp(listener.service, listener.limits, listener.timer),
                local_addr=(host, bound),
                reuse_port=reuse_port or None,
            )
        except OSError:
            server.close()
            await server.wait_closed()
            if port != 0 or attempt == 7:
                raise
            continue
        listener.server = server
        listener.udp = udp
        listener.udp_protocol = protocol
        return
