"""The DNS listener: UDP and TCP on one address, every query answered by an
:class:`~resolver.dns.answer.Answerer`. Only I/O here.

- UDP: a query the in-process cache answers is answered within ``datagram_received``; one
  that needs the resolver awaited becomes a task, at most ``udp_pending`` at once (more are
  answered REFUSED at once, as a busy server does).
- TCP (RFC 7766): messages framed by a 2-byte length; a connection may pipeline queries,
  answered as each is ready (each answer carries its query's id, so order does not matter),
  ``tcp_pipeline`` resolving at once and the rest read when those are done; while the peer
  does not read its answers, its queries are not read either. A connection with no query
  for ``tcp_idle`` seconds is closed, and one over ``tcp_connections`` at once is closed
  as soon as it is accepted.

Every answer sent is counted and timed for ``/metrics`` (transport ``dns``, op ``query``,
code: the rcode in the answer's header, by name) from the query's arrival: a clock pair and
an observation per query. An extended rcode (BADVERS) counts under its header bits, NOERROR.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from time import perf_counter
from typing import Any, cast

import dns.rcode

from resolver.config import ConfigError
from resolver.dns.answer import Answerer, Pending
from resolver.dns.config import DnsConfig
from resolver.metrics import Recorder
from resolver.node import Node

BIND_ATTEMPTS = 20  # port 0: tries for a free port that is free for both UDP and TCP
BACKLOG = 1024


class _Serving:
    """What a listener's protocols share: the answerer, the limits, the open connections,
    the tasks resolving queries (cancelled on close) and the series answers are counted in."""

    def __init__(self, answerer: Answerer, config: DnsConfig, recorder: Recorder) -> None:
        self.answerer = answerer
        self.config = config
        # One per header rcode, ready: an answer's is its fourth byte's low four bits.
        self.by_rcode = [recorder.series("query", rcode) for rcode in range(16)]
        self.loop = asyncio.get_running_loop()
        self.tasks: set[asyncio.Task[None]] = set()
        self.connections: set[_TcpConnection] = set()
        self.udp_pending = 0
        self.closing = False

    def spawn(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def answered(self, out: bytes, start: float) -> None:
        """Count the answer ``out`` to a query that arrived at ``start`` (perf_counter)."""
        self.by_rcode[out[3] & 15].observe(perf_counter() - start)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, serving: _Serving) -> None:
        self.serving = serving
        self.reply = serving.answerer.reply
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's own UDP transport is no DatagramTransport subclass (3.11): cast
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        start = perf_counter()
        out = self.reply(data, False)
        if out is None:
            return
        transport = self.transport
        assert transport is not None
        serving = self.serving
        if isinstance(out, bytes):
            transport.sendto(out, addr)
            serving.answered(out, start)
            return
        if serving.udp_pending >= serving.config.udp_pending:
            refused = serving.answerer.busy(out)
            transport.sendto(refused, addr)
            serving.answered(refused, start)
            return
        serving.udp_pending += 1
        serving.spawn(self._finish(out, addr, start))

    async def _finish(self, pending: Pending, addr: Any, start: float) -> None:
        serving = self.serving
        try:
            out = await serving.answerer.finish(pending)
        finally:
            serving.udp_pending -= 1
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.sendto(out, addr)
            serving.answered(out, start)

    def error_received(self, exc: Exception) -> None:
        """An ICMP error about an earlier answer (the client went away): nothing to do."""


class _TcpConnection(asyncio.Protocol):
    def __init__(self, serving: _Serving) -> None:
        self.serving = serving
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.resolving = 0  # queries of this connection awaiting the resolver
        self.last = 0.0  # when the last query arrived (loop time)
        self.write_paused = False
        self.read_paused = False
        self.eof = False
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        serving = self.serving
        if serving.closing or len(serving.connections) >= serving.config.tcp_connections:
            transport.close()
            return
        self.transport = transport
        serving.connections.add(self)
        self.last = serving.loop.time()
        self.timer = serving.loop.call_at(self.last + serving.config.tcp_idle, self._idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self.serving.connections.discard(self)
        self.transport = None
        if self.timer is not None:
            self.timer.cancel()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._drain()

    def eof_received(self) -> bool:
        """The peer sent all its queries: answer those still resolving, then close."""
        self.eof = True
        self._drain()
        return True

    def pause_writing(self) -> None:
        # Called from within transport.write, in _drain's loop too: only note it there; the
        # loop stops at the next query and pauses reading.
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._drain()

    def _drain(self) -> None:
        """Answer the complete queries in the buffer while the limits allow, then read on or
        pause reading (or close, after the peer's EOF and the last answer)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        serving = self.serving
        buffer = self.buffer
        pipeline = serving.config.tcp_pipeline
        at = 0
        while not self.write_paused and self.resolving < pipeline and len(buffer) - at >= 2:
            end = at + 2 + ((buffer[at] << 8) | buffer[at + 1])
            if len(buffer) < end:
                break
            wire = bytes(buffer[at + 2 : end])
            at = end
            self.last = serving.loop.time()
            start = perf_counter()
            out = serving.answerer.reply(wire, True)
            if out is None:
                continue
            if isinstance(out, bytes):
                transport.write(len(out).to_bytes(2, "big") + out)
                serving.answered(out, start)
                continue
            self.resolving += 1
            serving.spawn(self._finish(out, start))
        if at:
            del buffer[:at]
        if self.eof and not self.resolving and not self.write_paused:
            transport.close()  # after what is written is sent
            return
        pause = self.write_paused or self.resolving >= pipeline
        if pause != self.read_paused:
            self.read_paused = pause
            if pause:
                transport.pause_reading()
            else:
                transport.resume_reading()

    async def _finish(self, pending: Pending, start: float) -> None:
        try:
            out = await self.serving.answerer.finish(pending)
        finally:
            self.resolving -= 1
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(len(out).to_bytes(2, "big") + out)
            self.serving.answered(out, start)
            self._drain()

    def _idle(self) -> None:
        transport = self.transport
        if transport is None:
            return
        serving = self.serving
        due = self.last + serving.config.tcp_idle
        if not self.resolving and serving.loop.time() >= due:
            transport.close()
            return
        if self.resolving:  # answers still to come: the wait for the next query starts after
            due = serving.loop.time() + serving.config.tcp_idle
        self.timer = serving.loop.call_at(due, self._idle)


class DnsListener:
    """A running DNS listener: UDP and TCP on one address (:attr:`host`, :attr:`port`)."""

    def __init__(
        self,
        serving: _Serving,
        udp: asyncio.DatagramTransport,
        tcp: asyncio.Server,
        host: str,
        port: int,
    ) -> None:
        self._serving = serving
        self._udp = udp
        self._tcp = tcp
        self.host = host
        self.port = port

    @property
    def answerer(self) -> Answerer:
        return self._serving.answerer

    @property
    def addresses(self) -> list[str]:
        """Where it listens, as ``udp://HOST:PORT`` and ``tcp://HOST:PORT``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return [f"udp://{host}:{self.port}", f"tcp://{host}:{self.port}"]

    async def close(self) -> None:
        """Stop listening, close every connection and cancel the queries still resolving."""
        serving = self._serving
        serving.closing = True
        self._udp.close()
        self._tcp.close()
        for connection in list(serving.connections):
            if connection.transport is not None:
                connection.transport.abort()
        tasks = list(serving.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._tcp.wait_closed()


async def start_dns(node: Node, config: DnsConfig) -> DnsListener:
    """Listen for DNS queries over UDP and TCP at ``config``'s address, answering them from
    ``node``'s resolver. Raises :class:`ConfigError` when the address cannot be used."""
    loop = asyncio.get_running_loop()
    answerer = Answerer(node.resolver, config.zone, config.udp_payload)
    serving = _Serving(answerer, config, node.telemetry.transport("dns", _rcode_name))
    udp_sock, tcp_sock = await _bind(config)
    try:
        udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(serving), sock=udp_sock)
    except BaseException:
        udp_sock.close()
        tcp_sock.close()
        raise
    try:
        tcp = await loop.create_server(lambda: _TcpConnection(serving), sock=tcp_sock)
    except BaseException:
        udp.close()
        tcp_sock.close()
        raise
    host, port = udp_sock.getsockname()[:2]
    return DnsListener(serving, udp, tcp, host, port)


def _rcode_name(rcode: int) -> str:
    """An rcode as its ``code`` label: its name (``NXDOMAIN``), or its number if it has none."""
    return dns.rcode.to_text(dns.rcode.Rcode.make(rcode))


async def _bind(config: DnsConfig) -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket bound to the same address and port (with port 0, a free port
    for both), the TCP one listening."""
    where = f"{config.host}:{config.port}"
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(
            config.host, config.port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        raise ConfigError(f"cannot listen for DNS on {where}: {exc.strerror or exc}") from None
    family, _, _, _, address = infos[0]
    for _attempt in range(BIND_ATTEMPTS if config.port == 0 else 1):
        udp = socket.socket(family, socket.SOCK_DGRAM)
        tcp = socket.socket(family, socket.SOCK_STREAM)
        try:
            if config.reuse_port:
                udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            udp.bind(address)
            tcp.bind(udp.getsockname())
            tcp.listen(BACKLOG)
        except OSError as exc:
            udp.close()
            tcp.close()
            if config.port == 0 and exc.errno == errno.EADDRINUSE:
                continue  # the UDP port's TCP twin is taken: another port
            raise ConfigError(f"cannot listen for DNS on {where}: {exc.strerror or exc}") from None
        return udp, tcp
    raise ConfigError(f"cannot listen for DNS on {where}: no port free for both UDP and TCP")
