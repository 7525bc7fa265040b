"""The load generator of the native Handle protocol (UDP, TCP) and DNS (UDP) scenarios.

Closed loop: ``--outstanding`` requests are kept in flight — spread over ``--sockets`` UDP
sockets, or one per TCP connection (``--outstanding`` connections) — and each answer sends
the next. Requests are precomputed wire messages (native: resolver.native's codec; DNS:
dnspython), one per handle; only the request id is patched per send, and answers are
matched by it, so nothing is decoded on the hot path beyond the id and the response code
(a native reply split over several datagrams counts when all its bytes have come).
A request unanswered after ``--timeout`` s is counted as a timeout and replaced, so a lost
datagram cannot shrink the window.

    python -m bench.udpgen --protocol native-udp --port 2641 --handles FILE --duration 5

prints one JSON object shaped like :mod:`bench.loadgen`'s (``rps``, ``completed``,
``errors``, ``latency_ms``, ``cpu``), plus ``answers`` (success codes) and ``timeouts``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import struct
import sys
import time
from pathlib import Path
from typing import Any, cast

from bench.loadgen import Window, cpu_report
from bench.stats import latency_summary
from resolver.native.codes import ENV_TC  # in the envelope's flags byte (offset 2)
from resolver.native.envelope import ENVELOPE_SIZE

PROTOCOLS = ("native-udp", "native-tcp", "dns-udp")
NATIVE_ID = struct.Struct("!I")  # the envelope's request id, at offset 8
NATIVE_ID_AT = 8
NATIVE_CODE_AT = ENVELOPE_SIZE + 4  # the header's response code
NATIVE_LENGTH_AT = 16  # the envelope's message length
DNS_ID = struct.Struct("!H")
SWEEP = 0.05  # seconds between timeout sweeps
PRIME_LIMIT = 120.0  # seconds a priming pass may take


def native_requests(handles: list[str]) -> list[bytes]:
    """One encoded resolution request per handle, as the reference client sends it."""
    from resolver.native.client import request
    from resolver.native.messages import ResolutionRequest
    from resolver.native.writers import encode

    return [encode(request(ResolutionRequest(h))) for h in handles]


def dns_requests(handles: list[str], zone: str, rdtype: str) -> list[bytes]:
    """One DNS query per handle for its name in ``zone``."""
    import dns.message
    import dns.name

    from resolver.dns.names import NameMap

    names = NameMap(dns.name.from_text(zone))
    return [dns.message.make_query(names.to_name(h), rdtype).to_wire() for h in handles]


class Generator:
    """State shared by every socket of one run."""

    def __init__(self, requests: list[bytes], native: bool, timeout: float) -> None:
        self.requests = [bytearray(r) for r in requests]
        self.native = native
        self.timeout = timeout
        self.next_index = 0
        self.next_id = 1
        self.measuring = False
        self.done = False
        self.latencies: list[float] = []
        self.completed = 0
        self.answers = 0
        self.errors = 0
        self.timeouts = 0
        self.stale = 0  # replies to requests already given up on, or duplicates

    def make(self) -> tuple[int, bytes]:
        """The next request of the pool with a fresh id."""
        rid = self.next_id
        self.next_id = rid + 1 if rid < (0x7FFFFFFF if self.native else 0xFFFF) else 1
        buf = self.requests[self.next_index % len(self.requests)]
        self.next_index += 1
        if self.native:
            NATIVE_ID.pack_into(buf, NATIVE_ID_AT, rid)
        else:
            DNS_ID.pack_into(buf, 0, rid)
        return rid, bytes(buf)

    def answered(self, data: bytes, t0: float) -> None:
        if not self.measuring:
            return
        self.completed += 1
        self.latencies.append(time.perf_counter() - t0)
        if self.native:
            ok = data[NATIVE_CODE_AT : NATIVE_CODE_AT + 4] == b"\0\0\0\1"
        else:
            ok = len(data) >= 12 and data[3] & 0x0F == 0 and data[6:8] != b"\0\0"
        if ok:
            self.answers += 1
        else:
            self.errors += 1


class UdpSocket(asyncio.DatagramProtocol):
    """One UDP socket with its share of the outstanding requests."""

    def __init__(self, gen: Generator, window: int) -> None:
        self.gen = gen
        self.window = window
        self.inflight: dict[int, float] = {}
        # Split native replies still arriving: bytes seen and fragment 0, by request id.
        self.partial: dict[int, tuple[int, bytes]] = {}
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        for _ in range(self.window):
            self.send()

    def send(self) -> None:
        if self.gen.done or self.transport is None:
            return
        rid, data = self.gen.make()
        self.inflight[rid] = time.perf_counter()
        self.transport.sendto(data)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        gen = self.gen
        if gen.native:
            if len(data) < ENVELOPE_SIZE:
                gen.stale += 1
                return
            rid = NATIVE_ID.unpack_from(data, NATIVE_ID_AT)[0]
            if data[2] & ENV_TC and rid in self.inflight:
                # One fragment of a split reply: the reply is whole when all its bytes came.
                seen, first = self.partial.get(rid, (0, b""))
                seen += len(data) - ENVELOPE_SIZE
                if data[12:16] == b"\0\0\0\0":  # fragment 0 holds the header
                    first = data
                if seen < NATIVE_ID.unpack_from(data, NATIVE_LENGTH_AT)[0]:
                    self.partial[rid] = (seen, first)
                    return
                self.partial.pop(rid, None)
                data = first
        else:
            rid = DNS_ID.unpack_from(data, 0)[0] if len(data) >= 2 else -1
        t0 = self.inflight.pop(rid, None)
        if t0 is None:
            gen.stale += 1  # a late or duplicated reply
            return
        gen.answered(data, t0)
        self.send()

    def error_received(self, exc: Exception) -> None:
        if self.gen.measuring:
            self.gen.errors += 1

    def sweep(self, now: float) -> None:
        """Give up on requests older than the timeout and send replacements."""
        late = [rid for rid, t0 in self.inflight.items() if now - t0 > self.gen.timeout]
        for rid in late:
            del self.inflight[rid]
            self.partial.pop(rid, None)
            if self.gen.measuring:
                self.gen.timeouts += 1
            self.send()


class TcpConn(asyncio.Protocol):
    """One native TCP connection with one request in flight (as the reference client)."""

    def __init__(self, gen: Generator) -> None:
        self.gen = gen
        self.buf = bytearray()
        self.rid = -1
        self.t0 = 0.0
        self.transport: asyncio.Transport | None = None
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.gen.done and self.gen.measuring:
            self.gen.errors += 1
        if not self.lost.done():
            self.lost.set_result(None)

    def send(self) -> None:
        if self.gen.done or self.transport is None:
            return
        self.rid, data = self.gen.make()
        self.t0 = time.perf_counter()
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while len(buf) >= ENVELOPE_SIZE:
            end = ENVELOPE_SIZE + NATIVE_ID.unpack_from(buf, NATIVE_LENGTH_AT)[0]
            if len(buf) < end:
                return
            frame = bytes(buf[:end])
            del buf[:end]
            if NATIVE_ID.unpack_from(frame, NATIVE_ID_AT)[0] != self.rid:
                self.gen.stale += 1
                continue
            self.rid = -1
            self.gen.answered(frame, self.t0)
            self.send()

    def sweep(self, now: float) -> None:
        if self.rid >= 0 and now - self.t0 > self.gen.timeout and self.transport is not None:
            # A TCP reply cannot be lost, only late: a stuck server. Count it and go on
            # waiting (a replacement on the same connection would be out of order).
            if self.gen.measuring:
                self.gen.timeouts += 1
            self.t0 = now


async def closed_loop(
    gen: Generator, args: argparse.Namespace, watch: dict[str, list[int]]
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    peers: list[UdpSocket] | list[TcpConn]
    closers: list[asyncio.BaseTransport] = []
    if args.protocol == "native-tcp":
        tcp: list[TcpConn] = []
        for _ in range(args.outstanding):
            ct, cp = await loop.create_connection(lambda: TcpConn(gen), args.host, args.port)
            closers.append(ct)
            tcp.append(cp)
        peers = tcp
    else:
        udp: list[UdpSocket] = []
        share, extra = divmod(args.outstanding, args.sockets)
        for i in range(args.sockets):
            window = share + (i < extra)
            ut, q = await loop.create_datagram_endpoint(
                lambda w=window: UdpSocket(gen, w),  # type: ignore[misc]
                remote_addr=(args.host, args.port),
            )
            closers.append(ut)
            udp.append(q)
        peers = udp

    async def wait(seconds: float, until: int | None = None) -> None:
        end = time.perf_counter() + seconds
        while (left := end - time.perf_counter()) > 0:
            if until is not None and gen.completed + gen.timeouts >= until:
                return
            await asyncio.sleep(min(SWEEP, left))  # the sweep's clock, not synchronisation
            now = time.perf_counter()
            for peer in peers:
                peer.sweep(now)

    if args.prime:
        # Every key asked for once (or given up on), so the caches are full; then stop.
        gen.measuring = True
        start = Window.now(watch)
        await wait(PRIME_LIMIT, until=len(gen.requests))
        gen.done = True
        end = Window.now(watch)
        for t in closers:
            t.close()
        if gen.completed + gen.timeouts < len(gen.requests):
            raise SystemExit(f"priming did not finish within {PRIME_LIMIT:.0f} s")
        return {
            "mode": "prime",
            "rps": gen.completed / (end.t - start.t),
            "cpu": cpu_report(start, end),
        }

    await wait(args.warmup)
    gen.measuring = True
    start = Window.now(watch)
    await wait(args.duration)
    gen.measuring = False
    end = Window.now(watch)
    gen.done = True
    for t in closers:
        t.close()
    return {
        "mode": "closed",
        "rps": gen.completed / (end.t - start.t),
        "cpu": cpu_report(start, end),
    }


async def run(args: argparse.Namespace, gen: Generator) -> dict[str, Any]:
    watch = {}
    for item in args.watch or ():
        name, _, pids = item.partition("=")
        watch[name] = [int(p) for p in pids.split(",") if p]
    result = await closed_loop(gen, args, watch)
    result.update(
        {
            "generator": "udpgen",
            "protocol": args.protocol,
            "connections": args.outstanding,
            "sockets": args.sockets if args.protocol != "native-tcp" else args.outstanding,
            "duration": args.duration,
            "completed": gen.completed,
            "answers": gen.answers,
            "errors": gen.errors + gen.timeouts,
            "timeouts": gen.timeouts,
            "stale": gen.stale,
            "latency_ms": latency_summary(gen.latencies),
        }
    )
    return result


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.udpgen",
        description="Closed-loop load generator of native Handle resolution (UDP or TCP) and "
        "DNS (UDP): N outstanding requests, answers matched by request id.",
    )
    p.add_argument("--protocol", choices=PROTOCOLS, required=True, help="what to send")
    p.add_argument("--host", default="127.0.0.1", help="server address (default 127.0.0.1)")
    p.add_argument("--port", type=int, required=True, help="server port")
    p.add_argument("--handles", required=True, help="file of handles to resolve, one a line")
    p.add_argument("--zone", default="id.bench.", help="DNS zone of the names (dns-udp)")
    p.add_argument("--rdtype", default="URI", help="DNS record type asked for (default URI)")
    p.add_argument(
        "--outstanding",
        type=int,
        default=64,
        help="requests in flight (native-tcp: one per connection; default 64)",
    )
    p.add_argument("--sockets", type=int, default=4, help="UDP sockets (default 4)")
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds before a request is late")
    p.add_argument(
        "--prime",
        action="store_true",
        help="ask for every handle once, then stop (fills the server's caches first)",
    )
    p.add_argument("--cores", help="pin this process to these cores, e.g. 1")
    p.add_argument(
        "--watch",
        action="append",
        metavar="NAME=PID[,PID...]",
        help="also report these processes' CPU use over the measured window (repeatable)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(c) for c in args.cores.split(",")})
    handles = [h for h in Path(args.handles).read_text("utf-8").split() if h]
    if args.protocol == "dns-udp":
        gen = Generator(dns_requests(handles, args.zone, args.rdtype), False, args.timeout)
    else:
        gen = Generator(native_requests(handles), True, args.timeout)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is optional off Linux
        result = asyncio.run(run(args, gen))
    else:
        result = uvloop.run(run(args, gen))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
