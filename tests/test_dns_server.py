"""The DNS listener (resolver/dns/listener.py) and its answers (resolver/dns/answer.py),
against a real node: queries over real UDP and TCP sockets on port 0, with dnspython's stub
resolver and query functions and with raw packets; the adapter fuzzed with hypothesis."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import dns.asyncquery
import dns.asyncresolver
import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsigkeyring
import pytest
import yarl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.model.identifiers import handle_key
from resolver.config import ConfigError, load
from resolver.core import Answer, Query
from resolver.dns.answer import Answerer, Pending
from resolver.dns.config import DnsConfig
from resolver.dns.listener import DnsListener, start_dns
from resolver.dns.names import NameMap, zone_name
from resolver.dns.records import EPCIS, ZoneConfig
from resolver.node import Node
from sync.agent import SyncAgent
from tests.conftest import ENT8_ADMIN, Server, basic, identity, init_node, served_app
from tests.procs import cli
from tests.syncprocs import (
    app_create,
    init_secondary,
    node_serving,
    toplevel_init,
    toplevel_serving,
)
from tests.test_sync_e2e import Tamperer

ZONE = "id.example."
NAMES = NameMap(zone_name(ZONE))
URI, NAPTR, TXT = dns.rdatatype.URI, dns.rdatatype.NAPTR, dns.rdatatype.TXT
DEADLINE = 10.0


def name_of(handle: str) -> dns.name.Name:
    return NAMES.to_name(handle)


def value(index: int, vtype: str, data: str, ttl: int = 86400, **extra: Any) -> dict[str, Any]:
    return {"index": index, "type": vtype, "data": {"format": "string", "value": data}} | {
        "ttl": ttl,
        **extra,
    }


ITEM = "88.118.8/ITEM-1"
ITEM_VALUES = [
    value(1, "URL", "https://example.org/items/1", 600),
    value(2, "URL.EPCIS", "https://epcis.example.org/q", 900),
    value(3, "EMAIL", "ops@example.org", 300),
    value(4, "SECRET", "not for DNS", 60, permissions="1100"),  # not publicly readable
]


async def put(server: Server, handle: str, values: list[dict[str, Any]]) -> None:
    url = yarl.URL(server.url + "/api/handles/" + quote(handle, safe="/"), encoded=True)
    async with server.session.put(url, json={"values": values}, headers=ENT8_ADMIN) as r:
        assert r.status in (200, 201), await r.text()


def query(
    name: dns.name.Name | str, rdtype: int, *, edns: int = -1, payload: int = 1232
) -> dns.message.Message:
    return dns.message.make_query(name, rdtype, use_edns=edns, payload=payload)


class UdpClient(asyncio.DatagramProtocol):
    """A raw UDP client: sends bytes, receives datagrams in order."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.put_nowait(data)

    def send(self, wire: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(wire)

    async def recv(self) -> bytes:
        return await asyncio.wait_for(self.received.get(), DEADLINE)


@contextlib.asynccontextmanager
async def udp_client(port: int) -> AsyncIterator[UdpClient]:
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(
        UdpClient, remote_addr=("127.0.0.1", port)
    )
    try:
        yield client
    finally:
        transport.close()


async def read_framed(reader: asyncio.StreamReader) -> bytes:
    size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), DEADLINE), "big")
    return await asyncio.wait_for(reader.readexactly(size), DEADLINE)


def framed(wire: bytes) -> bytes:
    return len(wire).to_bytes(2, "big") + wire


@dataclasses.dataclass
class Dns:
    server: Server
    listener: DnsListener

    @property
    def port(self) -> int:
        return self.listener.port

    async def udp(self, q: dns.message.Message) -> dns.message.Message:
        return await dns.asyncquery.udp(q, "127.0.0.1", timeout=DEADLINE, port=self.port)

    async def tcp(self, q: dns.message.Message) -> dns.message.Message:
        return await dns.asyncquery.tcp(q, "127.0.0.1", timeout=DEADLINE, port=self.port)

    async def udp_raw(self, wire: bytes) -> bytes:
        async with udp_client(self.port) as client:
            client.send(wire)
            return await client.recv()

    def stub(self) -> dns.asyncresolver.Resolver:
        """dnspython's stub resolver, asking only this listener (EDNS, 1232 bytes)."""
        stub = dns.asyncresolver.Resolver(configure=False)
        stub.nameservers = ["127.0.0.1"]
        stub.port = self.port
        stub.use_edns(0, 0, 1232)
        stub.lifetime = DEADLINE
        return stub


@pytest.fixture
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Nothing the node logs while the test runs is an error or carries a traceback."""
    caplog.set_level(logging.INFO)
    yield
    records = caplog.get_records("setup") + caplog.get_records("call")
    bad = [
        r
        for r in records
        if r.name.startswith("idnode") and (r.levelno >= logging.ERROR or r.exc_info)
    ]
    assert not bad, [r.getMessage() for r in bad]


@contextlib.asynccontextmanager
async def listening(
    node: Node, address: str = "127.0.0.1:0", **limits: Any
) -> AsyncIterator[DnsListener]:
    listener = await start_dns(node, DnsConfig.from_text(address, ZONE, **limits))
    try:
        yield listener
    finally:
        await listener.close()


@pytest.fixture
async def dns_server(server: Server, no_errors_logged: None) -> AsyncIterator[Dns]:
    await put(server, ITEM, ITEM_VALUES)
    async with listening(server.node) as listener:
        yield Dns(server, listener)


def rrset(response: dns.message.Message, rdtype: int) -> dns.rrset.RRset:
    (found,) = [r for r in response.answer if r.rdtype == rdtype]
    return found


def txt_values(found: dns.rrset.RRset) -> dict[int, tuple[str, bytes]]:
    """index -> (type, data) of TXT records ``<index> <type> <data>``."""
    out = {}
    for rdata in found:
        index, vtype, data = b"".join(rdata.strings).split(b" ", 2)
        out[int(index)] = (vtype.decode(), data)
    return out


def assert_negative_soa(response: dns.message.Message) -> None:
    (soa,) = response.authority
    assert soa.rdtype == dns.rdatatype.SOA and soa.name == zone_name(ZONE)
    assert soa.ttl == 300  # the SOA minimum: how long the client may cache the absence


# ------------------------------------------------------------------ records


async def test_every_record_type_over_udp_and_tcp(dns_server: Dns) -> None:
    name = name_of(ITEM)
    for ask in (dns_server.udp, dns_server.tcp):
        got = await ask(query(name, URI, edns=0))
        assert got.rcode() == dns.rcode.NOERROR and got.flags & dns.flags.AA
        uri = rrset(got, URI)
        assert uri.ttl == 600 and uri.name == name
        assert sorted((r.priority, r.target) for r in uri) == [
            (1, b"https://example.org/items/1"),
            (2, b"https://epcis.example.org/q"),
        ]

        got = await ask(query(name, NAPTR, edns=0))
        naptr = rrset(got, NAPTR)
        assert sorted((r.preference, r.flags, r.service, r.regexp) for r in naptr) == [
            (1, b"u", b"hdl:0.TYPE/URL", b"!^.*$!https://example.org/items/1!"),
            (2, b"u", EPCIS.encode(), b"!^.*$!https://epcis.example.org/q!"),
        ]

        got = await ask(query(name, TXT, edns=0))
        txt = txt_values(rrset(got, TXT))
        assert txt[1] == ("URL", b"https://example.org/items/1")
        assert txt[2] == ("URL.EPCIS", b"https://epcis.example.org/q")
        assert txt[3] == ("EMAIL", b"ops@example.org")
        assert 4 not in txt  # not publicly readable: never in DNS
        assert [t for t, _ in txt.values()].count("HS_SIGNATURE") == 1  # the node's signature
        assert rrset(got, TXT).ttl == 300  # the smallest of the values' TTLs

        got = await ask(query(name, dns.rdatatype.ANY, edns=0))
        assert {r.rdtype for r in got.answer} == {URI, NAPTR, TXT}


async def test_the_zone_apex_answers_soa_and_ns(dns_server: Dns) -> None:
    apex = zone_name(ZONE)
    got = await dns_server.udp(query(apex, dns.rdatatype.SOA))
    (soa,) = rrset(got, dns.rdatatype.SOA)
    assert got.flags & dns.flags.AA and got.rcode() == dns.rcode.NOERROR
    assert (str(soa.mname), str(soa.rname), soa.minimum) == (
        "ns.id.example.",
        "hostmaster.id.example.",
        300,
    )
    got = await dns_server.udp(query(apex, dns.rdatatype.NS))
    assert [str(r.target) for r in rrset(got, dns.rdatatype.NS)] == ["ns.id.example."]
    got = await dns_server.tcp(query(apex, dns.rdatatype.ANY))
    assert {r.rdtype for r in got.answer} == {dns.rdatatype.SOA, dns.rdatatype.NS}
    got = await dns_server.udp(query(apex, dns.rdatatype.A))
    assert got.rcode() == dns.rcode.NOERROR and not got.answer
    assert_negative_soa(got)


async def test_the_stub_resolver_resolves_identifiers(dns_server: Dns) -> None:
    stub = dns_server.stub()
    answer = await stub.resolve(name_of(ITEM), "URI")
    assert sorted(r.target for r in answer) == [
        b"https://epcis.example.org/q",
        b"https://example.org/items/1",
    ]
    with pytest.raises(dns.resolver.NXDOMAIN):
        await stub.resolve(name_of("88.118.8/NOPE"), "URI")
    with pytest.raises(dns.resolver.NoAnswer):
        await stub.resolve(name_of(ITEM), "A")


# ------------------------------------------------------------------ negative answers


async def test_nxdomain_carries_the_soa(dns_server: Dns) -> None:
    for name in (
        name_of("88.118.8/NOPE"),  # no such identifier
        dns.name.from_text("a.b._.8.118.88.id.example."),  # no handle is written so
    ):
        got = await dns_server.udp(query(name, URI))
        assert got.rcode() == dns.rcode.NXDOMAIN and got.flags & dns.flags.AA, name
        assert not got.answer
        assert_negative_soa(got)


async def test_nodata_for_a_missing_type_and_names_others_lie_under(dns_server: Dns) -> None:
    for name, rdtype in (
        (name_of(ITEM), dns.rdatatype.A),  # the identifier exists, no A record
        (name_of(ITEM), dns.rdatatype.MX),
        (name_of("88.118.8/"), URI),  # empty suffix: every suffix lies under it
        (name_of("0.NA/88.118.8.77"), URI),  # a prefix handle: its identifiers lie under
        (dns.name.from_text("__" + "0" * 61 + "._.8.118.88.id.example."), URI),  # a tail
    ):
        got = await dns_server.udp(query(name, rdtype))
        assert got.rcode() == dns.rcode.NOERROR and not got.answer, (name, got)
        assert got.flags & dns.flags.AA
        assert_negative_soa(got)


async def test_refused_outside_the_zone_and_for_prefixes_served_elsewhere(
    dns_server: Dns,
) -> None:
    for name in (
        dns.name.from_text("example.org."),
        dns.name.from_text("id.example.org."),
        name_of("88.200.1/X"),  # no node serves it here: not registered, nothing forwards
    ):
        got = await dns_server.udp(query(name, URI, edns=0))
        assert got.rcode() == dns.rcode.REFUSED, name
        assert not got.flags & dns.flags.AA and not got.answer and not got.authority


# ------------------------------------------------------------------ sizes


async def test_truncated_over_udp_then_whole_over_tcp(dns_server: Dns) -> None:
    big = "88.118.8/BIG"
    await put(dns_server.server, big, [value(i, "NOTE", chr(64 + i) * 400) for i in range(1, 5)])
    name = name_of(big)
    for edns in (-1, 0):
        got = await dns_server.udp(query(name, TXT, edns=edns))
        assert got.flags & dns.flags.TC and not got.answer
    whole = await dns_server.tcp(query(name, TXT, edns=0))
    assert not whole.flags & dns.flags.TC
    txt = txt_values(rrset(whole, TXT))
    assert {i: txt[i][1] for i in range(1, 5)} == {
        i: chr(64 + i).encode() * 400 for i in range(1, 5)
    }
    # The stub resolver does the same by itself: TC over UDP, then TCP.
    answer = await dns_server.stub().resolve(name, "TXT")
    assert len(answer) == len(whole.answer[0])


async def test_the_edns_payload_size_is_honoured(dns_server: Dns) -> None:
    medium = "88.118.8/MEDIUM"
    await put(dns_server.server, medium, [value(1, "NOTE", "m" * 150)])
    name = name_of(medium)
    size = len(await dns_server.udp_raw(query(name, TXT, edns=0, payload=1232).to_wire()))
    assert 512 < size <= 1232  # with the node's signature

    async def udp(edns: int, payload: int = 1232) -> bytes:
        return await dns_server.udp_raw(query(name, TXT, edns=edns, payload=payload).to_wire())

    def truncated(wire: bytes) -> bool:
        return bool(dns.message.from_wire(wire).flags & dns.flags.TC)

    no_edns = await udp(-1)
    assert truncated(no_edns) and len(no_edns) <= 512
    assert truncated(await udp(0, size - 1)) and truncated(await udp(0, 512))
    assert not truncated(await udp(0, size))
    full = dns.message.from_wire(await udp(0, 4096))
    assert not full.flags & dns.flags.TC and full.payload == 1232  # what the node offers


async def test_the_udp_limit_is_the_configured_payload(dns_server: Dns) -> None:
    large = "88.118.8/LARGE"
    await put(dns_server.server, large, [value(1, "NOTE", "l" * 1500)])
    wire = query(name_of(large), TXT, edns=0, payload=4096).to_wire()
    got = dns.message.from_wire(await dns_server.udp_raw(wire))
    assert got.flags & dns.flags.TC  # over the default 1232, whatever the client offers
    async with (
        listening(dns_server.server.node, udp_payload=4096) as roomy,
        udp_client(roomy.port) as client,
    ):
        client.send(wire)
        answer = await client.recv()
    got = dns.message.from_wire(answer)
    assert not got.flags & dns.flags.TC and 1232 < len(answer) <= 4096
    assert txt_values(rrset(got, TXT))[1] == ("NOTE", b"l" * 1500)


# ------------------------------------------------------------------ names


async def test_0x20_case_is_echoed_in_question_and_answer(dns_server: Dns) -> None:
    lower = name_of(ITEM)
    for text in ("ItEm-1._.8.118.88.Id.ExAmPlE.", "ITEM-1._.8.118.88.ID.EXAMPLE.", str(lower)):
        sent = dns.name.from_text(text)
        for ask in (dns_server.udp, dns_server.tcp, dns_server.udp):  # the second UDP: memo
            got = await ask(query(sent, URI))
            assert got.question[0].name.labels == sent.labels  # bytes, case included
            assert rrset(got, URI).name.labels == sent.labels


@pytest.mark.parametrize(
    "handle",
    [
        "88.118.8/gb/t 1234",  # '/' and a space: encoded
        "88.118.8/Ünïcødé-ß",  # non-ASCII, case kept
        "88.118.8/MiXeD-CaSe",  # ASCII case folds
        "88.118.8/" + "long-suffix-" * 8,  # over 63 bytes: continued in '__' labels
        "88.118.8/a.b_c;d?e#f",
        "88.118.8/-leading-hyphen",
    ],
)
async def test_unusual_suffixes_round_trip_through_the_server(dns_server: Dns, handle: str) -> None:
    await put(dns_server.server, handle, [value(1, "NOTE", f"for {handle}")])
    name = name_of(handle)
    got = await dns_server.tcp(query(name, TXT, edns=0))
    assert got.rcode() == dns.rcode.NOERROR, handle
    found = rrset(got, TXT)
    assert txt_values(found)[1] == ("NOTE", f"for {handle}".encode())
    assert NAMES.to_handle(found.name) == handle_key(handle)
    # The name in any ASCII case is the same identifier.
    swapped = dns.name.Name([label.swapcase() for label in name.labels])
    got = await dns_server.udp(query(swapped, TXT, edns=0))
    assert got.rcode() == dns.rcode.NOERROR and txt_values(rrset(got, TXT))[1][0] == "NOTE"


# ------------------------------------------------------------------ caching and statistics


async def test_a_write_is_seen_at_once_despite_rendered_answers(dns_server: Dns) -> None:
    name = name_of(ITEM)
    for _ in range(3):  # rendered once, then the rendering sent again
        got = await dns_server.udp(query(name, URI))
        assert b"https://example.org/items/1" in [r.target for r in rrset(got, URI)]
    await put(dns_server.server, ITEM, [value(1, "URL", "https://example.org/moved", 600)])
    # Resolved over HTTP first: the in-process tier's new entry is what DNS finds next.
    async with dns_server.server.session.get(dns_server.server.api(ITEM)) as r:
        assert r.status == 200
    for _ in range(2):
        got = await dns_server.udp(query(name, URI))
        assert [r.target for r in rrset(got, URI)] == [b"https://example.org/moved"]


async def test_expiring_values_count_their_ttl_down(dns_server: Dns) -> None:
    expires = int(time.time()) + 3000
    handle = "88.118.8/EXPIRING"
    await put(
        dns_server.server, handle, [value(1, "URL", "https://e.example/", expires, ttlType=1)]
    )
    now = [time.time()]
    answerer = Answerer(
        dns_server.server.node.resolver, ZoneConfig.from_text(ZONE), clock=lambda: now[0]
    )
    wire = query(name_of(handle), URI).to_wire()
    ttls = []
    for _ in range(2):
        got = dns.message.from_wire(await answerer.answer(wire) or b"")
        ttls.append(rrset(got, URI).ttl)
        now[0] += 100
    assert 2800 < ttls[0] <= 3000 and ttls[1] == ttls[0] - 100


async def test_resolutions_are_counted_in_the_statistics(dns_server: Dns) -> None:
    node = dns_server.server.node

    async def counted() -> int:
        totals = await node.store.stats_totals()
        stored = totals.get("88.118.8", {}).get("resolutions", 0)
        return stored + node.resolver.hits.get("88.118.8", 0)

    before = await counted()
    for rdtype in (URI, TXT, URI):  # cold, then the in-process tier
        await dns_server.udp(query(name_of(ITEM), rdtype))
    await dns_server.tcp(query(name_of(ITEM), NAPTR))
    await dns_server.udp(query(name_of("88.118.8/NOPE"), URI))  # asked for, as over HTTP
    await dns_server.udp(query(zone_name(ZONE), dns.rdatatype.SOA))  # no identifier
    await until(counted, lambda n: n == before + 5, "5 resolutions counted")


# ------------------------------------------------------------------ bad packets


async def test_bad_packets_are_dropped_or_formerr_without_disturbing_others(
    dns_server: Dns,
) -> None:
    good = query(name_of(ITEM), URI)
    async with udp_client(dns_server.port) as client:

        async def answered(wire: bytes) -> dns.message.Message:
            """The answer to ``wire``: after what was sent before, so a reply to that would
            have come first."""
            client.send(wire)
            return dns.message.from_wire(await client.recv())

        for dropped in (b"", b"\x12", bytes(11), good.to_wire()[:11], response_to(good)):
            client.send(dropped)
            got = await answered(good.to_wire())
            assert got.id == good.id and got.rcode() == dns.rcode.NOERROR

        header = b"\xbe\xef\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"  # 1 question, none sent
        for bad in (header, header + b"\x03abc", header + b"\xff" * 40, good.to_wire() + b"x"):
            client.send(bad)
            reply = await client.recv()
            assert reply[:2] == bad[:2] and reply[2] & 0x80, bad
            assert dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR

        two = query(name_of(ITEM), URI)
        two.question.append(query(name_of(ITEM), TXT).question[0])
        assert (await answered(two.to_wire())).rcode() == dns.rcode.FORMERR

        for opcode in (dns.opcode.IQUERY, dns.opcode.STATUS, dns.opcode.NOTIFY):
            q = query(name_of(ITEM), URI)
            q.set_opcode(opcode)
            assert (await answered(q.to_wire())).rcode() == dns.rcode.NOTIMP, opcode

        future = query(name_of(ITEM), URI, edns=1)
        assert (await answered(future.to_wire())).rcode() == dns.rcode.BADVERS

        chaos = dns.message.make_query("version.bind.", "TXT", rdclass=dns.rdataclass.CH)
        assert (await answered(chaos.to_wire())).rcode() == dns.rcode.REFUSED

        signed = query(name_of(ITEM), URI)
        signed.use_tsig(dns.tsigkeyring.from_text({"key.": "c2VjcmV0c2VjcmV0c2VjcmV0"}))
        client.send(signed.to_wire())
        reply = await client.recv()
        assert reply[:2] == signed.to_wire()[:2]
        assert reply[3] & 0xF == dns.rcode.NOTAUTH

        # Another client was answered throughout; this one still is.
        got = await answered(good.to_wire())
        assert got.rcode() == dns.rcode.NOERROR and rrset(got, URI)


def response_to(q: dns.message.Message) -> bytes:
    """A response to ``q``: what a reflection attack would send a server."""
    return dns.message.make_response(q).to_wire()


async def test_zone_transfers_are_refused(dns_server: Dns) -> None:
    for rdtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
        got = await dns_server.tcp(query(zone_name(ZONE), rdtype))
        assert got.rcode() == dns.rcode.REFUSED


async def test_bad_messages_over_tcp_leave_the_connection_usable(dns_server: Dns) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", dns_server.port)
    try:
        good = query(name_of(ITEM), URI).to_wire()
        writer.write(framed(b"\x00") + framed(b"\xab\xcd" + bytes(10) + b"\xff") + framed(good))
        formerr = await read_framed(reader)  # the runt got no answer; the next one did
        assert formerr[:2] == b"\xab\xcd" and formerr[3] & 0xF == dns.rcode.FORMERR
        got = dns.message.from_wire(await read_framed(reader))
        assert got.rcode() == dns.rcode.NOERROR and rrset(got, URI)
    finally:
        writer.close()


# ------------------------------------------------------------------ TCP (RFC 7766)


class Gate:
    """Holds the resolver's awaited path (what the in-process tier cannot answer) until
    opened, counting the queries held."""

    def __init__(self, node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
        self.opened = asyncio.Event()
        self.held = 0
        resolve = node.resolver.resolve

        async def gated(q: Query) -> Answer:
            self.held += 1
            await self.opened.wait()
            return await resolve(q)

        monkeypatch.setattr(node.resolver, "resolve", gated)

    async def holding(self, n: int) -> None:
        async def count() -> int:
            return self.held

        await until(count, lambda held: held == n, f"{n} queries held")


async def cold(server: Server, n: int) -> list[bytes]:
    """Queries (ids 1000, 1001, ...) of ``n`` new identifiers: none is in the in-process
    tier yet."""
    out = []
    for i in range(n):
        handle = f"88.118.8/COLD-{i}"
        await put(server, handle, [value(1, "URL", f"https://example.org/cold/{i}")])
        q = query(name_of(handle), URI)
        q.id = 1000 + i
        out.append(q.to_wire())
    return out


def hot_query() -> bytes:
    """A query (id 1) of ITEM, which the in-process tier holds once it was asked for."""
    q = query(name_of(ITEM), URI)
    q.id = 1
    return q.to_wire()


async def test_pipelined_queries_are_answered_as_each_is_ready(
    dns_server: Dns, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = await cold(dns_server.server, 2)
    await dns_server.udp(query(name_of(ITEM), URI))  # ITEM is now in the in-process tier
    hot = hot_query()
    gate = Gate(dns_server.server.node, monkeypatch)
    reader, writer = await asyncio.open_connection("127.0.0.1", dns_server.port)
    try:
        writer.write(b"".join(framed(w) for w in [*slow, hot]))
        first = await read_framed(reader)
        assert first[:2] == hot[:2]  # answered before the two it followed
        await gate.holding(2)
        gate.opened.set()
        rest = {(await read_framed(reader))[:2] for _ in slow}
        assert rest == {w[:2] for w in slow}
    finally:
        writer.close()


async def test_a_peer_that_does_not_read_is_not_read_from(dns_server: Dns) -> None:
    """Answers pile up unread: the server stops reading the connection's queries, and
    answers each exactly once when the peer reads again."""
    huge = "88.118.8/HUGE"  # 32 kB answers: a few hundred fill any socket buffer
    await put(dns_server.server, huge, [value(i, "NOTE", "h" * 8000) for i in range(1, 5)])
    await dns_server.tcp(query(name_of(huge), TXT))  # in the in-process tier: answered at once
    count = 400
    queries = []
    for i in range(count):
        q = query(name_of(huge), TXT)
        q.id = i
        queries.append(framed(q.to_wire()))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # answers back up soon
    sock.connect(("127.0.0.1", dns_server.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        writer.write(b"".join(queries))

        async def paused() -> bool:
            return any(c.read_paused for c in dns_server.listener._serving.connections)

        await until(paused, bool, "reading paused")
        ids = [int.from_bytes((await read_framed(reader))[:2], "big") for _ in range(count)]
        assert sorted(ids) == list(range(count))
        writer.write(framed(hot_query()))
        assert (await read_framed(reader))[:2] == hot_query()[:2]  # nothing else came first
    finally:
        writer.close()


async def test_a_connection_resolves_at_most_tcp_pipeline_queries_at_once(
    dns_server: Dns, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = await cold(dns_server.server, 3)
    await dns_server.udp(query(name_of(ITEM), URI))
    hot = hot_query()
    gate = Gate(dns_server.server.node, monkeypatch)
    async with listening(dns_server.server.node, tcp_pipeline=2) as listener:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        try:
            writer.write(b"".join(framed(w) for w in [*slow, hot]))
            await gate.holding(2)  # the third waits unread, and the hot one behind it
            gate.opened.set()
            ids = [(await read_framed(reader))[:2] for _ in range(4)]
            # The hot one was read when two had finished (one of them let the third in).
            assert ids.index(hot[:2]) == 2 and set(ids) == {w[:2] for w in [*slow, hot]}
            assert gate.held == 3
        finally:
            writer.close()


async def test_too_many_udp_queries_resolving_are_refused(
    dns_server: Dns, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = await cold(dns_server.server, 3)
    gate = Gate(dns_server.server.node, monkeypatch)
    async with (
        listening(dns_server.server.node, udp_pending=1) as listener,
        udp_client(listener.port) as client,
    ):
        client.send(slow[0])
        await gate.holding(1)
        for wire in slow[1:]:
            client.send(wire)
            busy = dns.message.from_wire(await client.recv())
            assert busy.id == dns.message.from_wire(wire).id
            assert busy.rcode() == dns.rcode.REFUSED
        gate.opened.set()
        got = dns.message.from_wire(await client.recv())
        assert got.id == dns.message.from_wire(slow[0]).id and rrset(got, URI)


async def test_idle_connections_are_closed(dns_server: Dns) -> None:
    async with listening(dns_server.server.node, tcp_idle=0.3) as listener:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        try:
            start = time.monotonic()
            writer.write(framed(query(name_of(ITEM), URI).to_wire()))
            await read_framed(reader)
            assert await asyncio.wait_for(reader.read(), DEADLINE) == b""  # closed by the server
            assert time.monotonic() - start >= 0.3
        finally:
            writer.close()


async def test_connections_over_the_cap_are_closed(dns_server: Dns) -> None:
    wire = framed(query(name_of(ITEM), URI).to_wire())
    async with listening(dns_server.server.node, tcp_connections=2) as listener:
        opened = []
        try:
            for _ in range(2):
                reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
                opened.append(writer)
                writer.write(wire)
                assert await read_framed(reader)
            reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
            opened.append(writer)
            assert await asyncio.wait_for(reader.read(), DEADLINE) == b""
            opened.pop(0).close()  # one fewer: a new connection is served again

            async def served() -> bool:
                r, w = await asyncio.open_connection("127.0.0.1", listener.port)
                try:
                    w.write(wire)
                    return bool(await asyncio.wait_for(r.read(2), DEADLINE))
                finally:
                    w.close()

            await until(served, bool, "a connection served after another closed")
        finally:
            for writer in opened:
                writer.close()


async def test_udp_and_tcp_share_the_port_and_a_taken_one_is_a_config_error(
    dns_server: Dns,
) -> None:
    assert dns_server.listener.addresses == [
        f"udp://127.0.0.1:{dns_server.port}",
        f"tcp://127.0.0.1:{dns_server.port}",
    ]
    with pytest.raises(ConfigError, match=r"cannot listen for DNS on 127\.0\.0\.1:"):
        await start_dns(dns_server.server.node, DnsConfig.from_text(f"127.0.0.1:{dns_server.port}"))


def test_config_from_text() -> None:
    config = DnsConfig.from_text(
        "[::1]:5353", "ID.Example", ns="ns1.example.org", admin="dns.admin@example.org", serial=7
    )
    assert (config.host, config.port) == ("::1", 5353)
    assert str(config.zone.zone) == "ID.Example." and config.zone.serial == 7
    assert str(config.zone.admin) == "dns\\.admin.example.org."
    for bad in ({"udp_payload": 511}, {"tcp_idle": 0}, {"tcp_connections": 0}):
        with pytest.raises(ConfigError):
            DnsConfig.from_text("127.0.0.1:53", **bad)
    with pytest.raises(ConfigError):
        DnsConfig.from_text("no-port")


# ------------------------------------------------------------------ fuzzing


BASES = [
    query(name_of(ITEM), URI).to_wire(),
    query(name_of(ITEM), TXT, edns=0).to_wire(),
    query(name_of("88.118.8/gb/t 1234"), dns.rdatatype.ANY, edns=0, payload=512).to_wire(),
    query(name_of("88.118.8/" + "x" * 120), NAPTR).to_wire(),
    query(zone_name(ZONE), dns.rdatatype.SOA, edns=0).to_wire(),
    query("example.org.", dns.rdatatype.A).to_wire(),
]


LABELS = st.binary(min_size=1, max_size=63) | st.from_regex(rb"\A[_a-z0-9-]{1,63}\Z")
TYPES = st.sampled_from([URI, TXT, NAPTR, dns.rdatatype.ANY, dns.rdatatype.SOA, dns.rdatatype.NS])


@st.composite
def names(draw: st.DrawFn) -> dns.name.Name:
    """Names of identifiers (some of them existing), other names in the zone, or not."""
    kind = draw(st.sampled_from(["handle", "zone", "any"]))
    if kind == "handle":
        suffix = draw(st.sampled_from(["ITEM-1", "gb/t 1234"]) | st.text(max_size=40))
        with contextlib.suppress(Exception):
            return name_of(f"88.118.8/{suffix}")
    labels = draw(st.lists(LABELS, max_size=5))
    tail = zone_name(ZONE).labels if kind == "zone" else (b"",)
    with contextlib.suppress(dns.name.NameTooLong):
        return dns.name.Name([*labels, *tail])
    return zone_name(ZONE)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """Well-formed messages with any header, questions, class, type and EDNS."""
    message = dns.message.Message(id=draw(st.integers(0, 0xFFFF)))
    message.flags = draw(st.integers(0, 0xFFFF) | st.just(dns.flags.RD))
    for _ in range(draw(st.sampled_from([1, 1, 1, 0, 2]))):
        rdclass = draw(
            st.sampled_from([dns.rdataclass.IN, dns.rdataclass.ANY]) | st.integers(0, 0xFFFF)
        )
        rdtype = draw(TYPES | st.integers(0, 0xFFFF))
        message.question.append(dns.rrset.RRset(draw(names()), rdclass, rdtype))
    edns = draw(st.sampled_from([-1, 0, 0, 1]))
    if edns >= 0:
        options = draw(st.lists(st.binary(max_size=40), max_size=2))
        message.use_edns(
            edns,
            draw(st.integers(0, 0xFFFF)),
            draw(st.integers(0, 0xFFFF)),
            options=[dns.edns.GenericOption(draw(st.integers(0, 0xFFFF)), o) for o in options],
        )
    return message.to_wire()


@st.composite
def packets(draw: st.DrawFn) -> bytes:
    """Random bytes, well-formed messages, or a valid query with some bytes changed, cut,
    inserted or its header replaced."""
    kind = draw(st.sampled_from(["random", "message", "mutated"]))
    if kind == "random":
        return draw(st.binary(max_size=600))
    if kind == "message":
        return draw(messages())
    wire = bytearray(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["set", "cut", "insert", "header"]))
        at = draw(st.integers(0, max(0, len(wire) - 1)))
        if op == "set" and wire:
            wire[at] = draw(st.integers(0, 255))
        elif op == "cut":
            del wire[at : at + draw(st.integers(1, 16))]
        elif op == "insert":
            wire[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            wire[2:12] = draw(st.binary(min_size=10, max_size=10))
    return bytes(wire)


def check_reply(wire: bytes, out: bytes | None, tcp: bool) -> None:
    """What any reply must be: nothing only for what is dropped; else a response to the
    query, parsable, within the UDP limit."""
    if out is None:
        assert len(wire) < 12 or wire[2] & 0x80
        return
    assert out[:2] == wire[:2] and out[2] & 0x80
    dns.message.from_wire(out)
    if not tcp:
        assert len(out) <= 1232
        with contextlib.suppress(Exception):
            if dns.message.from_wire(wire).edns < 0:
                assert len(out) <= 512


async def test_fuzzed_packets_never_break_the_answerer_nor_the_server(dns_server: Dns) -> None:
    answerer = dns_server.listener.answerer
    pending: list[tuple[bytes, Pending]] = []
    seen: list[bytes] = []

    @settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
    @given(packets(), st.booleans())
    def replies(wire: bytes, tcp: bool) -> None:
        if len(seen) < 600:
            seen.append(wire)
        out = answerer.reply(wire, tcp)
        if isinstance(out, Pending):
            pending.append((wire, out))
        else:
            check_reply(wire, out, tcp)

    replies()
    for wire, waiting in pending:
        check_reply(wire, await answerer.finish(waiting), waiting.tcp)

    # The same packets at the real server, over UDP and TCP: it answers a good query after
    # each batch (small enough for the sockets' buffers: UDP may drop what overflows them).
    good = query(name_of(ITEM), URI)
    good.id = 0x4242
    wire = good.to_wire()

    def is_good(reply: bytes) -> bool:
        return reply[:2] == wire[:2] and reply[3] & 0xF == 0

    async with udp_client(dns_server.port) as client:
        for at in range(0, len(seen), 50):
            for fuzzed in seen[at : at + 50]:
                client.send(fuzzed)
            client.send(wire)
            while not is_good(reply := await client.recv()):
                pass  # the answers to the fuzz, until the good one's
            assert rrset(dns.message.from_wire(reply), URI)
    reader, writer = await asyncio.open_connection("127.0.0.1", dns_server.port)
    try:
        writer.write(b"".join(framed(w) for w in seen) + framed(wire))
        while not is_good(reply := await read_framed(reader)):
            pass
        assert rrset(dns.message.from_wire(reply), URI)
    finally:
        writer.close()


# ------------------------------------------------------------------ other nodes' prefixes


async def until(probe: Callable[[], Awaitable[Any]], done: Callable[[Any], bool], what: str) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30.0
    while True:
        got = await probe()
        if done(got):
            return got
        assert loop.time() < deadline, f"{what}: not within 30 s; last: {got!r}"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def agent_of(node: Node) -> AsyncIterator[None]:
    """The node's sync agent, which sets up cross-node resolution from its registration."""
    agent = SyncAgent(node)
    await agent.start()
    try:
        yield
    finally:
        await agent.stop()


@pytest.fixture
async def tamperer() -> AsyncIterator[tuple[Tamperer, str]]:
    from aiohttp import web

    proxy = Tamperer("")
    app = web.Application()
    app.router.add_get("/{tail:.*}", proxy.handle)
    async with served_app(app) as url:
        yield proxy, url


async def test_other_nodes_identifiers_are_forwarded_or_refused(
    tmp_path: Path, tamperer: tuple[Tamperer, str], no_errors_logged: None
) -> None:
    proxy, proxy_url = tamperer
    top_data, a_data, b_data = tmp_path / "top", tmp_path / "a", tmp_path / "b"
    toplevel_init(top_data)
    app_a, app_b = app_create(top_data, "88.118"), app_create(top_data, "88.200")
    await init_node(a_data)
    await init_secondary(b_data, "88.200", {"88.200": "b-secret"})
    b_admin = {"Authorization": basic(identity("88.200"), "b-secret")}
    async with (
        toplevel_serving(top_data) as top,
        node_serving(b_data) as b,
        aiohttp.ClientSession() as s,
    ):
        for n in (1, 2):
            body = {"values": [value(1, "URL", f"https://example.org/items/{n}", 600)]}
            async with s.put(b.api(f"88.200/ITEM-{n}"), json=body, headers=b_admin) as r:
                assert r.status == 201, await r.text()
        # B is published behind a proxy that changes ITEM-2's answers on the way.
        proxy.upstream = b.url
        for data, app, url in ((b_data, app_b, proxy_url), (a_data, app_a, "http://127.0.0.1:9")):
            done = cli(
                "sync", "register", "--data", data, "--toplevel", top.url,
                "--app-id", app, "--public-url", url,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr

        config = load(a_data)
        for recursion in (True, False):
            node = await Node.open(dataclasses.replace(config, recursion=recursion))
            try:
                async with agent_of(node), listening(node) as listener:
                    await through_a(listener, recursion)
            finally:
                await node.close()


async def through_a(listener: DnsListener, recursion: bool) -> None:
    """What node A answers for B's identifiers: forwarded (verified or not), or REFUSED."""

    async def answered(handle: str) -> dns.message.Message:
        q = query(name_of(handle), URI, edns=0)
        return await dns.asyncquery.udp(q, "127.0.0.1", timeout=DEADLINE, port=listener.port)

    got = await answered("88.200/ITEM-1")
    if not recursion:  # A refers HTTP clients to B's prefix record; DNS clients cannot follow
        assert got.rcode() == dns.rcode.REFUSED and not got.answer
        return
    assert got.rcode() == dns.rcode.NOERROR, got
    assert not got.flags & dns.flags.AA and got.flags & dns.flags.RA
    assert [r.target for r in rrset(got, URI)] == [b"https://example.org/items/1"]
    assert not got.options  # verified: no extended error
    tampered = await answered("88.200/ITEM-2")
    assert tampered.rcode() == dns.rcode.NOERROR
    (ede,) = tampered.options
    assert isinstance(ede, dns.edns.EDEOption) and "not verified" in (ede.text or "")
