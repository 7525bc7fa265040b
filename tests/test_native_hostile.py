"""Hostile input to the native listener over real sockets: random and mutated datagrams and
TCP streams, floods of half-open connections, idle and slow peers. After each, the server must
still answer a good request correctly, and it must never log a traceback or leave a task
failing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resolver.native import Envelope, Framer, Reassembler, decode, encode
from resolver.native import client as native_client
from resolver.native.codes import ResponseCode
from resolver.native.listener import NativeListener, start_native
from resolver.native.messages import Message, ResolutionRequest, ResolutionResponse
from resolver.native.settings import NativeLimits
from resolver.native.udp import receive
from resolver.node import Node
from tests.test_native_codec import hostile, messages
from tests.test_native_server import client_values, vector_node

GOOD = "88.118.8/ITEM-000042"
WAIT = 10.0


class Problems(logging.Handler):
    """Collects log records that carry a traceback or are errors."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.records.append(record)


class Threaded:
    """A node and its native listener on an event loop of their own, for the synchronous
    property tests (hypothesis drives sync functions)."""

    def __init__(self, data: Path, limits: NativeLimits) -> None:
        self.loop = asyncio.new_event_loop()
        self.unhandled: list[dict[str, Any]] = []
        self.loop.set_exception_handler(lambda _loop, ctx: self.unhandled.append(ctx))
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.node: Node = self.run(vector_node(data))
        self.listener: NativeListener = self.run(start_native(self.node, "127.0.0.1", 0, limits))
        self.address = self.listener.address

    def run(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(WAIT * 3)

    def close(self) -> None:
        self.run(self.listener.close())
        self.run(self.node.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)
        self.loop.close()


@pytest.fixture(scope="module")
def threaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Threaded]:
    problems = Problems()
    logger = logging.getLogger("idnode")
    logger.addHandler(problems)
    limits = NativeLimits(max_connections=64, idle_timeout=5.0)
    server = Threaded(tmp_path_factory.mktemp("hostile") / "node", limits)
    try:
        yield server
    finally:
        server.close()
        logger.removeHandler(problems)
    assert not problems.records, [r.getMessage() for r in problems.records]
    assert not server.unhandled, server.unhandled


def good_request() -> Message:
    msg = native_client.request(ResolutionRequest(GOOD))
    msg.envelope.request_id = secrets.randbelow(2**31 - 2) + 1
    return msg


def assert_good_reply(reply: Message, request: Message) -> None:
    assert reply.envelope.request_id == request.envelope.request_id
    assert reply.header.response_code == ResponseCode.SUCCESS
    assert isinstance(reply.body, ResolutionResponse)
    assert [v.index for v in client_values(reply.body.values)] == [100, 1, 2]


def udp_answers_a_good_request(sock: socket.socket) -> None:
    """Send a good request and read until its reply is whole; every datagram the server sent
    meanwhile (answers to the junk before) must be well formed."""
    request = good_request()
    sock.send(encode(request))
    reassembler = Reassembler()
    deadline = time.monotonic() + WAIT
    while True:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        data = sock.recv(65536)
        msg = receive(data, "server", time.monotonic(), reassembler)  # raises if malformed
        if msg is not None and msg.envelope.request_id == request.envelope.request_id:
            assert_good_reply(msg, request)
            return


def small(frames: list[bytes]) -> list[bytes]:
    return [f for f in frames if len(f) < 60_000]


FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(st.lists(hostile | messages().map(encode), min_size=1, max_size=6))
def test_udp_fuzz_then_a_good_request(threaded: Threaded, datagrams: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(threaded.address)
        for d in small(datagrams):
            sock.send(d)
        udp_answers_a_good_request(sock)


def tcp_replies(address: tuple[str, int], chunks: list[bytes]) -> list[Message]:
    """Write ``chunks``, half-close, read until the server closes (within the deadline);
    every frame it sent must decode."""
    with socket.create_connection(address, timeout=WAIT) as sock:
        for chunk in chunks:
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server refused the stream already
        with contextlib.suppress(OSError):  # already closed by the server
            sock.shutdown(socket.SHUT_WR)
        framer = Framer()
        received = bytearray()
        try:
            while data := sock.recv(65536):  # times out (fails) if the server hangs on
                received += data
        except ConnectionResetError:
            pass
        framer.feed(bytes(received))
        out = []
        while (frame := framer.next_frame()) is not None:
            out.append(decode(frame))
        assert framer.buffered == 0
        return out


@FUZZ
@given(st.lists(hostile | messages().map(encode), min_size=1, max_size=5))
def test_tcp_fuzz_then_a_good_request(threaded: Threaded, chunks: list[bytes]) -> None:
    tcp_replies(threaded.address, chunks)
    request = good_request()
    (reply,) = tcp_replies(threaded.address, [encode(request)])
    assert_good_reply(reply, request)


# --- connections -------------------------------------------------------------------------------


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[tuple[Node, NativeListener]]:
    node = await vector_node(tmp_path / "node")
    limits = NativeLimits(max_connections=8, idle_timeout=30.0)
    listener = await start_native(node, "127.0.0.1", 0, limits)
    try:
        yield node, listener
    finally:
        await listener.close()
        await node.close()


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    try:
        return await reader.read(1) == b""
    except ConnectionResetError:
        return True


async def test_a_half_open_flood_beyond_the_cap_leaves_service_normal(
    limited: tuple[Node, NativeListener],
) -> None:
    _, listener = limited
    host, port = listener.address
    flood = []
    for _ in range(40):  # five times the cap, each a few bytes of an envelope
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"\x02\x0b\x02")
        await writer.drain()
        flood.append((reader, writer))
    try:
        request = good_request()
        reply = await native_client.exchange_tcp(host, port, request)
        assert_good_reply(reply, request)
        assert len(listener.connections) <= 8
        # Every flood connection the server no longer holds was closed by it.
        held = {
            c.transport.get_extra_info("peername")[1] for c in listener.connections if c.transport
        }
        evicted = [r for r, w in flood if w.get_extra_info("sockname")[1] not in held]
        assert len(evicted) >= 40 - 8
        async with asyncio.timeout(WAIT):
            assert all(await asyncio.gather(*(closed_by_server(r) for r in evicted)))
    finally:
        for _, writer in flood:
            writer.close()


async def test_an_idle_connection_is_closed_after_the_idle_timeout(tmp_path: Path) -> None:
    node = await vector_node(tmp_path / "node")
    listener = await start_native(node, "127.0.0.1", 0, NativeLimits(idle_timeout=0.3))
    try:
        host, port = listener.address
        reader, writer = await asyncio.open_connection(host, port)
        start = time.monotonic()
        # Half a message, its length promising more: the server waits, then gives up.
        writer.write(encode(good_request())[:30])
        await writer.drain()
        async with asyncio.timeout(WAIT):
            assert await closed_by_server(reader)
        assert time.monotonic() - start >= 0.3
        assert not listener.connections
        writer.close()
        request = good_request()
        assert_good_reply(await native_client.exchange_tcp(host, port, request), request)
    finally:
        await listener.close()
        await node.close()


N_PIPELINED = 8000


async def test_pipelined_requests_are_answered_in_order_when_the_client_reads_late(
    limited: tuple[Node, NativeListener],
) -> None:
    """8,000 requests for a long record (fast and slow paths mixed; ~15 MB of replies) written
    before reading anything: the server stops reading while its replies wait, and answers
    every one, in order."""
    _, listener = limited
    host, port = listener.address
    requests = []
    for i in range(N_PIPELINED):
        msg = native_client.request(ResolutionRequest("88.118.8/VEC-LONG"))
        if i % 7 == 0:  # a filter: answered by the core, not the fast path
            msg.body = ResolutionRequest("88.118.8/VEC-LONG", (1, 2))
        msg.envelope = Envelope(2, 11, 2, 11, request_id=i + 1)
        requests.append(msg)
    reader, writer = await asyncio.open_connection(host, port)

    async def send() -> None:
        writer.write(b"".join(encode(m) for m in requests))
        await writer.drain()
        writer.write_eof()

    sending = asyncio.create_task(send())
    async with asyncio.timeout(WAIT):  # until the server holds replies back
        while not any(c.writing_paused for c in listener.connections):  # noqa: ASYNC110
            await asyncio.sleep(0.01)  # polling the server's state, with a deadline
    framer = Framer()
    ids = []
    async with asyncio.timeout(WAIT * 3):
        while data := await reader.read(65536):
            framer.feed(data)
            while (frame := framer.next_frame()) is not None:
                reply = decode(frame)
                assert reply.header.response_code == ResponseCode.SUCCESS
                ids.append(reply.envelope.request_id)
    await sending
    writer.close()
    assert ids == list(range(1, N_PIPELINED + 1))


async def test_bytes_after_a_broken_frame_are_never_read_as_requests(
    limited: tuple[Node, NativeListener],
) -> None:
    """A lying length (over the limit) is refused and the connection closed: the request
    behind it is not answered, however well formed."""
    _, listener = limited
    host, port = listener.address
    bad = bytearray(encode(good_request()))
    bad[16:20] = (2**31 - 1).to_bytes(4, "big")
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(bytes(bad) + encode(good_request()))
    await writer.drain()
    async with asyncio.timeout(WAIT):
        data = await reader.read()
    writer.close()
    framer = Framer()
    framer.feed(data)
    frame = framer.next_frame()
    assert frame is not None and framer.next_frame() is None
    refusal = decode(frame)
    assert refusal.envelope.request_id == -1
    assert refusal.header.response_code == ResponseCode.ERROR
