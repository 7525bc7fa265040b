"""The native listener (resolver/native/listener.py) over real UDP and TCP sockets, against
the captured vectors in tests/vectors/handle-native.

The test node holds the records the vectors show (88.118.8/ITEM-000042, the prefix handle
0.NA/88.118.8 with its HS_SITE, HS_SECKEY and HS_PUBKEY, VEC-LONG, VEC-ADMIN-1) with an RSA
key, as the reference server had; each captured request is sent as captured, and idnode's
reply, decoded by the codec, must equal the captured reply field by field. Aside: the
expiration (now + 12 h), value timestamps, the node's own HS_SIGNATURE value in each record
(idnode signs every record it stores), and so the message length and where a UDP reply is
split — the split itself must follow the reference's rule. Certified replies must verify with
the key of the node's site record. Where idnode deliberately answers otherwise (two requests on
one connection, one malformed datagram), the test says so. Administration (09*) is
tests/test_native_admin.py's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from registry.model.identifiers import parse
from registry.model.site import site_from_bytes, site_to_bytes
from registry.model.values import HS_SECKEY, PERM_SECRET, Value
from resolver.config import load
from resolver.native import Framer, Message, Reassembler, decode, encode
from resolver.native import client as native_client
from resolver.native.codes import CT, ENV_TC, PO, RD, ResponseCode
from resolver.native.hot import EXPIRATION, MAX_SHAPES
from resolver.native.listener import NativeListener, start_native
from resolver.native.messages import (
    Challenge,
    ErrorResponse,
    ResolutionRequest,
    ResolutionResponse,
    SiteInfoResponse,
)
from resolver.native.settings import NativeLimits, parse_address
from resolver.native.udp import PAYLOAD_SIZE, receive, split_frame
from resolver.node import Node
from resolver.siteinfo import site_json
from sync.toplevel.records import Site
from sync.toplevel.records import site_json as published_site_json
from tests.conftest import init_node
from tests.procs import CLI, ROOT, clean_env
from tests.test_native_vectors import (
    DIVERGES,
    MALFORMED,
    Captured,
    expected_message,
    messages,
    tcp_chunks,
)

VECTOR_HANDLES = {
    # handle: (vector file, position of the reply holding its values)
    "88.118.8/ITEM-000042": "01-resolve-all-udp",
    "88.118.8/VEC-LONG": "07-resolve-long-tcp",
    "88.118.8/VEC-ADMIN-1": "11-resolve-vlist-udp",
}
PREFIX = "0.NA/88.118.8"
GOOD_HANDLE = "88.118.8/ITEM-000042"
SECRET = b"secret"
WAIT = 10.0  # seconds any one reply may take on a busy machine


def captured_values(name: str) -> tuple[Value, ...]:
    reply = next(c for c in messages(name) if c.direction == "server->client")
    body = expected_message(reply).body
    assert isinstance(body, ResolutionResponse)
    return body.values


def prefix_values() -> list[Value]:
    """0.NA/88.118.8 as the reference stored it: HS_SITE 1, HS_ADMIN 100, HS_SECKEY 300
    (admin read/write only), HS_PUBKEY 301, in that order."""
    public = {v.index: v for v in captured_values("04-resolve-prefix-tcp")}
    seckey = Value(300, HS_SECKEY, SECRET, permissions=PERM_SECRET)
    return [public[1], public[100], seckey, public[301]]


async def vector_node(data: Path, **config: str) -> Node:
    """The test node (tests/conftest.py) holding the vectors' records."""
    await init_node(data, **config)
    node = await Node.open(load(data))
    records = [(parse(h), list(captured_values(f))) for h, f in VECTOR_HANDLES.items()]
    records.append((parse(PREFIX), prefix_values()))
    await node.registry.import_records(records)
    return node


@dataclass
class Native:
    node: Node
    listener: NativeListener
    host: str
    port: int

    @property
    def site(self) -> bytes:
        return self.listener.service.site


@pytest.fixture
async def native(tmp_path: Path) -> AsyncIterator[Native]:
    node = await vector_node(tmp_path / "node", signing_alg="RS256")
    listener = await start_native(node, "127.0.0.1", 0)
    host, port = listener.address
    try:
        yield Native(node, listener, host, port)
    finally:
        await listener.close()
        await node.close()


# --- a UDP and a TCP peer ----------------------------------------------------------------------


class UdpPeer(asyncio.DatagramProtocol):
    """A client socket that collects every datagram it receives."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.put_nowait(data)

    def send(self, datagrams: list[bytes]) -> None:
        assert self.transport is not None
        for d in datagrams:
            self.transport.sendto(d)

    async def reply(self) -> tuple[Message, list[bytes]]:
        """The next whole message received, and its datagrams."""
        reassembler = Reassembler()
        got: list[bytes] = []
        async with asyncio.timeout(WAIT):
            while True:
                data = await self.received.get()
                got.append(data)
                msg = receive(data, "server", time.monotonic(), reassembler)
                if msg is not None:
                    return msg, got


@pytest.fixture
async def udp(native: Native) -> AsyncIterator[UdpPeer]:
    loop = asyncio.get_running_loop()
    transport, peer = await loop.create_datagram_endpoint(
        UdpPeer, remote_addr=(native.host, native.port)
    )
    try:
        yield peer
    finally:
        transport.close()


async def tcp_exchange(
    native: Native, chunks: list[bytes], *, eof: bool = True
) -> tuple[list[bytes], bool]:
    """Write ``chunks`` on a new connection (then half-close); the frames received until the
    server closes, and whether it did."""
    reader, writer = await asyncio.open_connection(native.host, native.port)
    try:
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
        if eof:
            writer.write_eof()
        framer = Framer()
        frames: list[bytes] = []
        async with asyncio.timeout(WAIT):
            while data := await reader.read(65536):
                framer.feed(data)
                while (frame := framer.next_frame()) is not None:
                    frames.append(frame)
        framer.feed_eof()
        assert framer.next_frame() is None  # nothing left over: whole frames only
        return frames, True
    finally:
        writer.close()


# --- comparing replies -------------------------------------------------------------------------


def client_values(values: tuple[Value, ...]) -> list[Value]:
    """Values as a client wrote them: the node's HS_SIGNATURE dropped, timestamps aside."""
    return [replace(v, timestamp=0) for v in values if v.type != "HS_SIGNATURE"]


def assert_same_reply(got: Message, want: Message, *, session: bool = True) -> None:
    """Field by field, except the expiration, value timestamps, the node's signature value,
    the length and (for a split reply) the TC flag; ``session=False``: a challenge's session
    id is the server's choice."""
    g, w = got.envelope, want.envelope
    assert (g.major, g.minor, g.suggested_major, g.suggested_minor) == (
        w.major,
        w.minor,
        w.suggested_major,
        w.suggested_minor,
    )
    assert g.request_id == w.request_id
    assert g.flags & ~ENV_TC == w.flags & ~ENV_TC
    if session:
        assert g.session_id == w.session_id
    assert replace(got.header, expiration=0) == replace(want.header, expiration=0)
    assert abs(got.header.expiration - (time.time() + EXPIRATION)) < 60
    assert got.digest == want.digest
    if isinstance(want.body, ResolutionResponse):
        assert isinstance(got.body, ResolutionResponse)
        assert got.body.handle == want.body.handle
        assert client_values(got.body.values) == client_values(want.body.values)
    elif isinstance(want.body, Challenge):
        assert isinstance(got.body, Challenge)
        assert len(got.body.nonce) == len(want.body.nonce) == 16
    elif not isinstance(want.body, SiteInfoResponse):  # the site record is the node's own
        assert got.body == want.body
    if want.credential is None:
        assert got.credential is None
    else:
        assert got.credential is not None
        assert replace(got.credential, signature=b"") == replace(want.credential, signature=b"")
        assert len(got.credential.signature) == len(want.credential.signature)


def assert_split_like_the_reference(datagrams: list[bytes]) -> None:
    """One datagram for a message that fits; else 492-byte fragments with TC, numbered from 0,
    each naming the whole message's length."""
    first = decode(datagrams[0]) if len(datagrams) == 1 else None
    if first is not None:
        assert len(datagrams[0]) <= 512
        return
    total = int.from_bytes(datagrams[0][16:20], "big")
    assert len(datagrams) == -(-total // PAYLOAD_SIZE) > 1
    for i, d in enumerate(datagrams):
        assert d[2] & ENV_TC
        assert int.from_bytes(d[12:16], "big") == i
        assert int.from_bytes(d[16:20], "big") == total
        assert d[:12] == datagrams[0][:12]
        assert len(d) - 20 == (PAYLOAD_SIZE if i < len(datagrams) - 1 else total - PAYLOAD_SIZE * i)


def verify_certified(native: Native, reply: Message) -> None:
    assert reply.header.op_flags & CT
    assert native_client.verified(reply, native_client.server_key(native.site))


# --- the vectors ---------------------------------------------------------------------------------

# The exchanges idnode answers as the reference did (the file's requests, in order).
ANSWERED = sorted(
    name
    for name in (p.stem for p in Path(__file__).parent.joinpath("vectors/handle-native").glob("*"))
    if name[:2] in {"01", "02", "03", "04", "05", "06", "07", "10", "11"}
    or name
    in {
        "08-malformed-tcp-split-writes",
        "08-malformed-udp-length-exceeds-datagram",
        "08-malformed-udp-no-credential-length",
        "08-malformed-udp-protocol-version-1.0",
        "08-malformed-udp-protocol-version-3.0",
    }
)


def pairs(name: str) -> list[tuple[Captured, Captured]]:
    msgs = messages(name)
    out = []
    for i, c in enumerate(msgs):
        if c.direction == "client->server":
            reply = next(r for r in msgs[i + 1 :] if r.direction == "server->client")
            out.append((c, reply))
    return out


@pytest.mark.parametrize("name", ANSWERED)
async def test_vector_requests_get_the_captured_replies(
    name: str, native: Native, udp: UdpPeer
) -> None:
    for request, reply in pairs(name):
        want = expected_message(reply)
        if request.transport == "udp":
            udp.send(request.wire)
            got, datagrams = await udp.reply()
            assert_split_like_the_reference(datagrams)
        else:
            frames, closed = await tcp_exchange(native, tcp_chunks(request))
            assert closed and len(frames) == 1
            got = decode(frames[0])
        challenge = want.header.response_code == ResponseCode.AUTHENTICATION_NEEDED
        assert_same_reply(got, want, session=not challenge)
        if challenge:
            assert got.envelope.session_id > 0  # names the pending challenge
        if isinstance(want.body, SiteInfoResponse):
            assert got.body == SiteInfoResponse(native.site)
        if want.credential is not None:
            verify_certified(native, got)


@pytest.mark.parametrize(
    ("name", "handle", "sizes"),
    [
        ("07-resolve-long-udp", "88.118.8/VEC-LONG", [512, 512, 432]),
        ("01-resolve-all-udp", GOOD_HANDLE, [236]),
    ],
)
async def test_the_reply_splits_as_the_reference_when_sizes_match(
    native: Native, udp: UdpPeer, name: str, handle: str, sizes: list[int]
) -> None:
    """With idnode's own signature value (HS_SIGNATURE, which makes idnode's replies longer
    than the reference's unsigned records) left out of the record, the reply is the captured
    size and split the same: 07-resolve-long's 1396 bytes in three datagrams, 01's 216 in one,
    twice (the second from the hot path)."""
    ((request, reply),) = pairs(name)
    signer, native.node.registry.signer = native.node.registry.signer, None
    try:
        await native.node.registry.import_records([(parse(handle), list(captured_values(name)))])
    finally:
        native.node.registry.signer = signer
    for _ in range(2):
        udp.send(request.wire)
        got, datagrams = await udp.reply()
        assert [len(d) for d in datagrams] == [len(w) for w in reply.wire] == sizes
        assert [d[:16] for d in datagrams] == [w[:16] for w in reply.wire]
        assert_same_reply(got, expected_message(reply))
    assert native.listener.service.hot.hits == 1


REFUSED = sorted(
    (n for n, cls in MALFORMED.items() if cls is not None),
    key=lambda n: (n in DIVERGES, n),
)


@pytest.mark.parametrize("name", REFUSED)
async def test_malformed_requests_get_the_reference_refusal(
    name: str, native: Native, udp: UdpPeer, caplog: pytest.LogCaptureFixture
) -> None:
    """Replies built without a parsed request (request id -1, 2.3, op 0): byte for byte as
    captured but for the expiration. Over TCP the server then closes."""
    caplog.set_level(logging.DEBUG, "idnode.native")
    ((request, reply),) = pairs(name)
    if request.transport == "udp":
        udp.send(request.wire)
        got, _ = await udp.reply()
    else:
        frames, closed = await tcp_exchange(native, tcp_chunks(request))
        assert closed and len(frames) == 1
        got = decode(frames[0])
    want = expected_message(reply)
    if name in DIVERGES:
        # The reference reads a 300-byte handle out of 28 bytes and its zero-filled buffer
        # (rc 100); idnode refuses to read bytes that are not there.
        assert want.header.response_code == ResponseCode.HANDLE_NOT_FOUND
        assert got.header.response_code == ResponseCode.ERROR
        assert got.envelope.request_id == -1
        return
    assert_same_reply(got, want)
    assert not any(r.exc_info for r in caplog.records)  # the peer's fault: no traceback
    assert any("refused" in r.getMessage() for r in caplog.records)


async def test_admin_op_on_udp_is_refused_as_the_reference_does(
    native: Native, udp: UdpPeer
) -> None:
    ((request, reply),) = pairs("08-malformed-udp-admin-opcode-on-udp")
    udp.send(request.wire)
    got, _ = await udp.reply()
    assert_same_reply(got, expected_message(reply))
    assert got.header.op_code == 101


async def test_an_incomplete_fragment_set_is_never_answered(native: Native, udp: UdpPeer) -> None:
    """08-malformed-udp-truncated-flag-missing-packets (a 60-byte first fragment of a 1000-byte
    message: dropped at once), and the first of 07b's two fragments (held until the second
    comes): neither is answered; the next request's reply is the first datagram back."""
    (fragment,) = messages("08-malformed-udp-truncated-flag-missing-packets")
    ((split, split_reply),) = pairs("07b-multipacket-request-udp")
    udp.send(fragment.wire + split.wire[:1])
    request, _ = pairs("02b-resolve-index-2-udp")[0]  # filtered: answered by a task
    udp.send(request.wire)
    got, _ = await udp.reply()
    assert got.envelope.request_id == request.envelope["request_id"]
    assert udp.received.empty()
    protocol = native.listener.udp_protocol
    assert protocol is not None and len(protocol.reassembler) == 1
    udp.send(split.wire[1:])
    got, _ = await udp.reply()
    assert_same_reply(got, expected_message(split_reply))
    assert len(protocol.reassembler) == 0


async def test_two_requests_on_one_connection_are_both_answered_in_order(native: Native) -> None:
    """The reference answers the first and closes; idnode answers every request of a
    connection (its clients close after one reply, so they see the same)."""
    (first, reply), second = pairs("08-malformed-tcp-two-requests-one-connection")
    frames, closed = await tcp_exchange(native, [first.wire[0] + second[0].wire[0]])
    assert closed and len(frames) == 2
    assert_same_reply(decode(frames[0]), expected_message(reply))
    assert decode(frames[1]).envelope.request_id == second[0].envelope["request_id"]
    assert decode(frames[1]).header.response_code == ResponseCode.SUCCESS


# --- behaviour beyond the vectors ------------------------------------------------------------


async def test_restricted_values_are_withheld_with_po_and_challenged_without(
    native: Native,
) -> None:
    """PO set: HS_SECKEY is silently left out (04). PO clear: rc 402 with RD, a SHA-256 digest
    of the request and a nonce, under a new session id each time (04c; the reference counts
    them up, idnode draws them at random so that nobody can answer another's challenge)."""
    resolve = native_client.request(ResolutionRequest(PREFIX), public_only=True)
    got = await native_client.exchange_tcp(native.host, native.port, resolve)
    assert isinstance(got.body, ResolutionResponse)
    assert 300 not in {v.index for v in got.body.values}
    assert not any(SECRET in v.data for v in got.body.values)
    sessions = []
    for _ in range(2):
        ask = native_client.request(ResolutionRequest(PREFIX), public_only=False)
        got = await native_client.exchange_tcp(native.host, native.port, ask)
        assert got.header.response_code == ResponseCode.AUTHENTICATION_NEEDED
        assert got.header.op_flags & RD and got.digest is not None
        assert isinstance(got.body, Challenge) and SECRET not in got.body.nonce
        sessions.append(got.envelope.session_id)
    assert 0 < sessions[0] != sessions[1] > 0
    # A filter that matches only public values needs no authentication, PO clear or not.
    ask = native_client.request(ResolutionRequest(PREFIX, (100,)), public_only=False)
    got = await native_client.exchange_tcp(native.host, native.port, ask)
    assert isinstance(got.body, ResolutionResponse)
    assert [v.index for v in got.body.values] == [100]


async def test_the_fast_path_answers_as_the_core_does(native: Native, udp: UdpPeer) -> None:
    """An unfiltered resolution is answered from the cache entry's encoded values once the
    entry is cached; the bytes decode to what the core's path sent for a cold cache."""
    request, _ = pairs("10-resolve-lowercase-udp")[0]
    frame = request.wire[0]
    native.node.cache.local.discard("88.118.8/ITEM-000042".upper())
    assert native.listener.service.hot.frame(frame) is None  # not cached: the core answers
    udp.send([frame])
    cold, _ = await udp.reply()
    assert native.listener.service.hot.frame(frame) is not None
    udp.send([frame])
    warm, _ = await udp.reply()
    assert replace(warm, header=replace(warm.header, expiration=0)) == replace(
        cold, header=replace(cold.header, expiration=0)
    )
    assert isinstance(warm.body, ResolutionResponse)
    assert warm.body.handle == "88.118.8/item-000042"  # echoed as sent


async def test_the_prefix_record_is_answered_from_its_public_rendering(native: Native) -> None:
    """A record with a restricted value: the fast path sends its public values only."""
    msg = native_client.request(ResolutionRequest(PREFIX))
    frame = encode(msg)
    await native_client.exchange_tcp(native.host, native.port, msg)  # now cached
    quick = native.listener.service.hot.frame(frame)
    assert quick is not None
    body = decode(quick).body
    assert isinstance(body, ResolutionResponse)
    assert [v.index for v in client_values(body.values)] == [1, 100, 301]
    # Without PO the client asks for the secret too: only the core may answer that.
    msg.header.op_flags &= ~PO
    assert native.listener.service.hot.frame(encode(msg)) is None


async def test_a_write_is_seen_at_once_by_the_next_hot_request(
    native: Native, udp: UdpPeer
) -> None:
    """The kept reply of a request shape is only used while the core's cache returns the
    entry it was built from: a write makes the next identical request see the new values."""
    request, _ = pairs("01-resolve-all-udp")[0]
    for _ in range(2):  # the second is answered from the kept reply
        udp.send(request.wire)
        before, _ = await udp.reply()
    assert len(native.listener.service.hot) >= 1
    new = Value(3, "EMAIL", b"ops@example.org")
    await native.node.registry.put_values(parse(GOOD_HANDLE), [new])
    udp.send(request.wire)
    after, _ = await udp.reply()
    assert isinstance(before.body, ResolutionResponse)
    assert isinstance(after.body, ResolutionResponse)
    assert [v.index for v in client_values(before.body.values)] == [100, 1, 2]
    assert sorted(v.index for v in client_values(after.body.values)) == [1, 2, 3, 100]


async def test_the_hot_path_answers_repeated_requests_and_counts_them(
    native: Native, udp: UdpPeer
) -> None:
    """The first request of a shape goes to the core, which leaves its reply's shape with
    the hot path; every later one (other request ids, over UDP and TCP) is a hit; another
    shape of a cached record is built without the core; /metrics says so."""
    hot = native.listener.service.hot
    msg = native_client.request(ResolutionRequest(GOOD_HANDLE))
    native.node.cache.local.discard(GOOD_HANDLE)
    for i in range(5):
        msg.envelope.request_id = 1000 + i
        udp.send([encode(msg)])
        got, _ = await udp.reply()
        assert got.envelope.request_id == 1000 + i
        assert got.header.response_code == ResponseCode.SUCCESS
    assert (hot.passed, hot.built, hot.hits) == (1, 0, 4)
    frames, _ = await tcp_exchange(native, [encode(msg), encode(msg)])
    assert [decode(f).header.response_code for f in frames] == [ResponseCode.SUCCESS] * 2
    assert (hot.passed, hot.built, hot.hits) == (1, 0, 6)  # the same shape, cut for TCP
    msg.envelope.session_id = 7  # another shape of a cached record: built at once
    for _ in range(2):
        udp.send([encode(msg)])
        got, _ = await udp.reply()
        assert got.envelope.session_id == 7
    assert (hot.passed, hot.built, hot.hits) == (1, 1, 7)
    lines = await native.listener._hot_lines()
    assert 'idnode_native_hot_total{outcome="hit"} 7' in lines
    assert 'idnode_native_hot_total{outcome="built"} 1' in lines
    assert 'idnode_native_hot_total{outcome="core"} 1' in lines


async def test_kept_replies_are_bounded(native: Native) -> None:
    """Requests varying a field of their shape (here the session id) each build a reply;
    the number kept stays under the bound, and every reply is still right."""
    hot = native.listener.service.hot
    hot.max_shapes = 50  # the default's behaviour, at a size a test can exceed
    msg = native_client.request(ResolutionRequest(GOOD_HANDLE))
    await native_client.exchange_tcp(native.host, native.port, msg)  # cached now
    for session in range(hot.max_shapes + 10):
        msg.envelope.session_id = session
        reply = hot.frame(encode(msg))
        assert reply is not None
        assert decode(reply).envelope.session_id == session
        assert len(hot) <= hot.max_shapes
    assert native.node.config.cache_entries <= MAX_SHAPES  # every cached record can be kept


async def test_site_info_is_the_record_published_as_hs_site(native: Native) -> None:
    """The same bytes the top-level publishes for the node (sync/toplevel/records.py), given
    the registration's URL and the native port."""
    reply = await native_client.site_info(native.host, native.port)
    assert reply.body == SiteInfoResponse(native.site)
    config = native.node.config
    jwk = native.node.keyring.key(0).public_jwk()
    published = published_site_json(
        Site(config.base_url, "127.0.0.1", native.port, native.port), jwk, config.name
    )
    assert native.site == site_to_bytes(published)
    assert site_json(config.base_url, "127.0.0.1", config.name, jwk, native.port) == published
    interfaces = site_from_bytes(native.site)["servers"][0]["interfaces"]
    assert [(i["protocol"], i["port"], i["admin"]) for i in interfaces][1:] == [
        ("TCP", native.port, True),
        ("UDP", native.port, False),
    ]


async def test_certified_replies_verify_with_the_site_key_over_both_transports(
    native: Native,
) -> None:
    site = (await native_client.site_info(native.host, native.port, certify=True)).body
    assert isinstance(site, SiteInfoResponse)
    for tcp in (False, True):
        for handle in ("88.118.8/ITEM-000042", "88.118.8/NOPE"):
            reply = await native_client.resolve(
                native.host, native.port, handle, certify=True, tcp=tcp
            )
            jwk = native_client.server_key(site.site)
            assert native_client.verified(reply, jwk)
            assert reply.credential is not None
            assert reply.credential.hash_algorithm == "SHA-256"  # RSA, as the reference
            # A signature over other bytes does not verify.
            assert not native_client.verified(replace(reply, signed=reply.signed + b"x"), jwk)


async def test_certified_replies_with_an_ed25519_key(tmp_path: Path) -> None:
    node = await vector_node(tmp_path / "node")  # EdDSA, idnode's default
    listener = await start_native(node, "127.0.0.1", 0)
    try:
        host, port = listener.address
        reply = await native_client.resolve(host, port, "88.118.8/ITEM-000042", certify=True)
        assert reply.credential is not None and reply.credential.hash_algorithm == "EdDSA"
        assert native_client.verified(reply, native_client.server_key(listener.service.site))
    finally:
        await listener.close()
        await node.close()


async def test_certified_requests_beyond_the_signing_queue_are_answered_busy(
    tmp_path: Path,
) -> None:
    node = await vector_node(tmp_path / "node", signing_alg="RS256")
    listener = await start_native(node, "127.0.0.1", 0, NativeLimits(max_signing_queue=0))
    try:
        host, port = listener.address
        reply = await native_client.resolve(host, port, "88.118.8/ITEM-000042", certify=True)
        assert reply.header.response_code == ResponseCode.SERVER_TOO_BUSY
        assert reply.credential is None and not reply.header.op_flags & CT
        plain = await native_client.resolve(host, port, "88.118.8/ITEM-000042")
        assert plain.header.response_code == ResponseCode.SUCCESS
    finally:
        await listener.close()
        await node.close()


async def test_a_foreign_prefix_is_not_this_nodes(native: Native) -> None:
    """Without a top-level to forward to (03b): rc 301 with the reference's text."""
    reply = await native_client.resolve(native.host, native.port, "99.999/X")
    assert reply.header.response_code == ResponseCode.SERVER_NOT_RESP
    assert reply.body == ErrorResponse("That prefix doesn't live here")


async def test_the_client_falls_back_to_tcp_when_udp_brings_no_whole_reply(
    native: Native,
) -> None:
    """Datagrams after the first are lost: the client gets the reply over TCP."""
    protocol = native.listener.udp_protocol
    assert protocol is not None
    sent: list[bytes] = []
    send = protocol._send

    def first_only(frame: bytes, addr: Any) -> None:
        sent.append(frame)
        assert protocol.transport is not None
        protocol.transport.sendto(split_frame(frame)[0], addr)  # the first fragment only

    protocol._send = first_only  # type: ignore[method-assign]
    try:
        reply = await native_client.resolve(native.host, native.port, "88.118.8/VEC-LONG")
    finally:
        protocol._send = send  # type: ignore[method-assign]
    assert len(sent) == 1 and len(sent[0]) > 512
    assert isinstance(reply.body, ResolutionResponse)
    assert len(client_values(reply.body.values)) == 3


def test_native_addresses() -> None:
    assert parse_address("127.0.0.1:2641") == ("127.0.0.1", 2641)
    assert parse_address("[::1]:5000") == ("::1", 5000)
    assert parse_address(":2641") == ("0.0.0.0", 2641)
    assert parse_address("example.org") == ("example.org", 2641)
    with pytest.raises(ValueError):
        parse_address("host:port")
    with pytest.raises(ValueError):
        NativeLimits(idle_timeout=0)


def test_vector_files_are_all_exercised() -> None:
    names = {p.stem for p in Path(__file__).parent.joinpath("vectors/handle-native").glob("[0-9]*")}
    special = {
        "08-malformed-udp-admin-opcode-on-udp",
        "08-malformed-udp-truncated-flag-missing-packets",
        "08-malformed-tcp-two-requests-one-connection",
    }
    # The admin exchanges (09*) are tests/test_native_admin.py's, each by name.
    admin = {n for n in names if n.startswith("09")}
    assert len(admin) == 5
    assert set(ANSWERED) | set(REFUSED) | admin | special == names


async def idnode(*args: str) -> tuple[int, str, str]:
    """Run ``idnode ARGS`` without blocking the event loop the listener runs on."""
    proc = await asyncio.create_subprocess_exec(
        *CLI, *args, cwd=ROOT, env=clean_env(), stdout=PIPE, stderr=PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_idnode_resolve_native(native: Native) -> None:
    where = f"{native.host}:{native.port}"
    code, out, err = await idnode("resolve", "--native", where, "88.118.8/item-000042")
    assert code == 0, err
    got = json.loads(out)
    assert got["handle"] == "88.118.8/item-000042"
    assert [v["index"] for v in got["values"] if v["type"] != "HS_SIGNATURE"] == [100, 1, 2]
    code, out, err = await idnode(
        "resolve", "--native", where, "--tcp", "--certify", "--type", "URL", GOOD_HANDLE
    )
    assert code == 0, err
    got = json.loads(out)
    assert got["certified"] is True
    assert [v["type"] for v in got["values"]] == ["URL"]
    code, out, err = await idnode("resolve", "--native", where, "88.118.8/NOPE")
    assert (code, out) == (2, "")
    assert err == "idnode: 88.118.8/NOPE: refused (responseCode 100)\n"
