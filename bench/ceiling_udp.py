"""The ceilings of the native and DNS scenarios: bare asyncio (uvloop) servers that answer
every request with a fixed answer, driven by the same generator (:mod:`bench.udpgen`).

- ``--protocol native``: UDP and TCP on one port; every resolution request gets one fixed,
  captured reply (``--answer FILE``: the reply as a TCP frame — the bench takes idnode's own
  answer to its probe key; by default the reply captured from the reference server in
  tests/vectors/handle-native/01-resolve-all-udp.json) with the request's id and a fresh
  expiration patched in; over UDP it is split into datagrams as idnode splits it. Nothing
  is decoded: what is left is the per-datagram cost of one Python process, the wall
  idnode's native listener stands against.
- ``--protocol dns``: UDP; every query is parsed with dnspython, answered by
  ``make_response`` plus one fixed URI record, and written back with ``to_wire`` — the
  baseline of a dnspython-based DNS server.

    python -m bench.ceiling_udp --protocol native [--listen 127.0.0.1:0] [--answer FILE]

prints ``ceiling listening on hdl-udp://HOST:PORT`` (and ``hdl-tcp://``, or ``dns-udp://``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import sys
import time
from pathlib import Path
from typing import Any, cast

from resolver.native.envelope import ENVELOPE_SIZE
from resolver.native.udp import split_frame
from resolver.server import run_loop, run_until_signalled

ROOT = Path(__file__).resolve().parents[1]
VECTOR = ROOT / "tests" / "vectors" / "handle-native" / "01-resolve-all-udp.json"
U32 = struct.Struct("!I")
ID_AT = 8  # the envelope's request id
EXPIRATION_AT = ENVELOPE_SIZE + 16  # the header's expiration
LENGTH_AT = 16  # the envelope's message length
EXPIRATION = 43_200


def captured_answer(path: Path = VECTOR) -> bytes:
    """The server's reply of a captured vector file."""
    spec = json.loads(path.read_text("utf-8"))
    for m in spec["messages"]:
        if m["direction"] == "server->client":
            return bytes.fromhex(m["hex"])
    raise ValueError(f"{path}: no server->client message")


class Answer:
    """The fixed reply — one frame for TCP, the same split as idnode's into datagrams for
    UDP — with a patchable id; its expiration is renewed once a second."""

    def __init__(self, frame: bytes) -> None:
        self.frame = bytearray(frame)
        self.grams = [bytearray(g) for g in split_frame(frame)]
        self.second = 0

    def _renew(self) -> None:
        now = int(time.time())
        if now != self.second:
            self.second = now
            U32.pack_into(self.frame, EXPIRATION_AT, now + EXPIRATION)
            U32.pack_into(self.grams[0], EXPIRATION_AT, now + EXPIRATION)

    def frame_to(self, request: bytes) -> bytes:
        self._renew()
        self.frame[ID_AT : ID_AT + 4] = request[ID_AT : ID_AT + 4]
        return bytes(self.frame)

    def datagrams_to(self, request: bytes) -> list[bytes]:
        self._renew()
        rid = request[ID_AT : ID_AT + 4]
        out = []
        for g in self.grams:
            g[ID_AT : ID_AT + 4] = rid
            out.append(bytes(g))
        return out


class NativeUdp(asyncio.DatagramProtocol):
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(data) >= ENVELOPE_SIZE and self.transport is not None:
            for gram in self.answer.datagrams_to(data):
                self.transport.sendto(gram, addr)


class NativeTcp(asyncio.Protocol):
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while len(buf) >= ENVELOPE_SIZE and self.transport is not None:
            end = ENVELOPE_SIZE + U32.unpack_from(buf, LENGTH_AT)[0]
            if len(buf) < end:
                return
            self.transport.write(self.answer.frame_to(bytes(buf[:ENVELOPE_SIZE])))
            del buf[:end]


class DnsUdp(asyncio.DatagramProtocol):
    """Parse, answer one fixed URI record, write: a dnspython server's least work."""

    def __init__(self) -> None:
        import dns.rdataclass
        import dns.rdatatype
        import dns.rrset

        self.rdata = dns.rrset.from_text(
            "x.", 300, "IN", "URI", '1 0 "https://example.org/items/000042"'
        )[0]
        self.rdtype = dns.rdatatype.URI
        self.rdclass = dns.rdataclass.IN
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        import dns.exception
        import dns.message

        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return
        if not query.question or self.transport is None:
            return
        response = dns.message.make_response(query)
        name = query.question[0].name
        rrset = response.find_rrset(response.answer, name, self.rdclass, self.rdtype, create=True)
        rrset.update_ttl(300)
        rrset.add(self.rdata)
        self.transport.sendto(response.to_wire(), addr)


async def serve(protocol: str, host: str, port: int, reply: bytes) -> None:
    loop = asyncio.get_running_loop()
    closers: list[Any] = []

    async def start() -> list[str]:
        if protocol == "dns":
            t, _ = await loop.create_datagram_endpoint(DnsUdp, local_addr=(host, port))
            closers.append(t)
            bound = t.get_extra_info("sockname")
            return [f"ceiling listening on dns-udp://{bound[0]}:{bound[1]}"]
        answer = Answer(reply)
        # With port 0 another process may hold the TCP side of the port UDP was given: try a
        # few ports, as the native listener does.
        for attempt in range(8):
            udp, _ = await loop.create_datagram_endpoint(
                lambda: NativeUdp(answer), local_addr=(host, port)
            )
            bound = udp.get_extra_info("sockname")
            try:
                tcp = await loop.create_server(lambda: NativeTcp(answer), bound[0], bound[1])
            except OSError:
                udp.close()
                if port != 0 or attempt == 7:
                    raise
                continue
            break
        closers.extend((udp, tcp))
        return [
            f"ceiling listening on hdl-udp://{bound[0]}:{bound[1]}",
            f"ceiling listening on hdl-tcp://{bound[0]}:{bound[1]}",
        ]

    async def close() -> None:
        for c in closers:
            c.close()

    await run_until_signalled(start, close)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.ceiling_udp",
        description="Answer every native request with a fixed captured reply (UDP and TCP), "
        "or every DNS query with a fixed URI record through dnspython (UDP): the ceilings.",
    )
    p.add_argument("--protocol", choices=("native", "dns"), required=True, help="what to serve")
    p.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0 picks a free one)")
    p.add_argument(
        "--answer",
        type=Path,
        help="native: a file of the reply as one TCP frame (default: vector 01's reply)",
    )
    args = p.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    reply = args.answer.read_bytes() if args.answer else captured_answer()
    run_loop(serve(args.protocol, host, int(port), reply))
    return 0


if __name__ == "__main__":
    sys.exit(main())
