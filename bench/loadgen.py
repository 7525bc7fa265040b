"""The project's own HTTP load generator, for machines without ``wrk`` and for every
fixed-rate run (``wrk`` has no open-loop mode).

Raw asyncio (uvloop when installed) HTTP/1.1 keep-alive over many connections: requests are
precomputed bytes, responses are framed by Content-Length alone, nothing else is parsed, so
one core outruns an aiohttp server on another (the bench measures and reports that).

- closed loop: each connection sends its next request as soon as its answer arrives; the
  throughput is the server's maximum.
- open loop: request k is *scheduled* at ``start + k / rate`` whether or not earlier answers
  came back; it goes out on an idle connection (or waits for one) and its latency is
  measured from its scheduled time, so a stalled server cannot hide its stall (no
  coordinated omission). The generator's own lateness is reported as ``send_lag_ms``.

Run as its own process, pinned to its own core(s)::

    python -m bench.loadgen --port 8000 --requests FILE --duration 5 [--rate 9000]

It prints one JSON object: counts by status, throughput, latency percentiles (overall and
per request kind), its own CPU use and that of the ``--watch`` processes over the measured
window. The requests file is JSON: ``{"kinds": [...], "requests": [[kind, text], ...]}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from bench import procfs
from bench.stats import latency_summary

TICK = 0.001  # the open-loop scheduler's timer (event loop timers have 1 ms resolution)
DRAIN = 5.0  # seconds to wait for answers still in flight when the schedule ends
MAX_HEAD = 65536


class Generator:
    """State shared by all connections of one run."""

    def __init__(self, requests: list[tuple[int, bytes]], kinds: list[str]) -> None:
        self.requests = requests
        self.kinds = kinds
        self.next_index = 0
        self.measuring = False
        self.done = False
        self.latencies: list[list[float]] = [[] for _ in kinds]
        self.lags: list[float] = []
        self.statuses: dict[int, int] = {}
        self.transport_errors = 0
        self.completed = 0
        self.last_done = 0.0
        # Priming only: stop after this many requests, and say so.
        self.limit: int | None = None
        self.primed: asyncio.Future[None] | None = None
        # Open loop only.
        self.rate = 0.0
        self.start = 0.0
        self.window: tuple[int, int] = (0, 0)  # request numbers that are measured
        self.total = 0
        self.issued = 0
        self.pending_measured = 0
        self.idle: list[Conn] = []
        self.backlog: deque[int] = deque()
        self.drained: asyncio.Future[None] | None = None

    def take(self) -> tuple[int, int, bytes]:
        n = self.next_index
        self.next_index = n + 1
        kind, data = self.requests[n % len(self.requests)]
        return n, kind, data

    def check_primed(self) -> None:
        primed, limit = self.primed, self.limit
        if primed is None or primed.done() or limit is None:
            return
        if self.completed + self.transport_errors >= limit:
            primed.set_result(None)

    # -- open loop

    def pump(self) -> None:
        """Issue every request whose scheduled time has come."""
        due = min(self.total, int((time.perf_counter() - self.start) * self.rate) + 1)
        while self.issued < due:
            k = self.issued
            self.issued += 1
            if self.idle:
                self.idle.pop().send_scheduled(k)
            else:
                self.backlog.append(k)

    def scheduled_at(self, k: int) -> float:
        return self.start + k / self.rate


class Conn(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    __slots__ = (
        "buf",
        "gen",
        "kind",
        "lost",
        "need",
        "number",
        "open_loop",
        "status",
        "t0",
        "transport",
    )

    def __init__(self, gen: Generator, open_loop: bool) -> None:
        self.gen = gen
        self.open_loop = open_loop
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.need = -1  # bytes of the current answer (head + body) once its head is parsed
        self.status = 0
        self.kind = 0
        self.number = -1  # the request in flight (open loop: its slot in the schedule)
        self.t0 = 0.0  # its scheduled (open loop) or sent (closed loop) time
        self.lost: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.number >= 0 and not self.gen.done:
            self.gen.transport_errors += 1
            self.gen.check_primed()
        if self.lost is not None and not self.lost.done():
            self.lost.set_result(None)

    def send_closed(self) -> None:
        limit = self.gen.limit
        if limit is not None and self.gen.next_index >= limit:
            return  # primed: this connection stays idle
        n, self.kind, data = self.gen.take()
        self.number = n
        self.t0 = time.perf_counter()
        assert self.transport is not None
        self.transport.write(data)

    def send_scheduled(self, k: int) -> None:
        gen = self.gen
        kind, data = gen.requests[k % len(gen.requests)]
        self.kind = kind
        self.number = k
        self.t0 = gen.scheduled_at(k)
        if gen.window[0] <= k < gen.window[1]:
            gen.lags.append(time.perf_counter() - self.t0)
        if self.transport is None:
            gen.transport_errors += 1
            return
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while True:
            if self.need < 0:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD:
                        raise RuntimeError("answer head too large")
                    return
                head = bytes(buf[:end])
                self.status = int(head[9:12])
                self.need = end + 4 + _content_length(head)
            if len(buf) < self.need:
                return
            del buf[: self.need]
            self.need = -1
            self.answered()

    def answered(self) -> None:
        now = time.perf_counter()
        gen = self.gen
        if self.open_loop:
            k = self.number
            if gen.window[0] <= k < gen.window[1]:
                self._record(now)
                gen.pending_measured -= 1
                drained = gen.drained
                if gen.pending_measured == 0 and drained is not None and not drained.done():
                    drained.set_result(None)
            self.number = -1
            if gen.backlog:
                self.send_scheduled(gen.backlog.popleft())
            else:
                gen.idle.append(self)
            gen.pump()  # answers arrive between timer ticks: keep the schedule tight
        else:
            if gen.measuring:
                self._record(now)
            self.number = -1
            if not gen.done:
                self.send_closed()
            gen.check_primed()

    def _record(self, now: float) -> None:
        gen = self.gen
        gen.latencies[self.kind].append(now - self.t0)
        gen.statuses[self.status] = gen.statuses.get(self.status, 0) + 1
        gen.completed += 1
        gen.last_done = now


def _content_length(head: bytes) -> int:
    i = head.find(b"Content-Length:")
    if i < 0:
        i = head.lower().find(b"content-length:")
        if i < 0:
            # Every idnode and ceiling answer has one; chunked bodies are not supported.
            raise RuntimeError("answer without Content-Length")
    j = head.find(b"\r\n", i)
    return int(head[i + 15 : j if j >= 0 else len(head)])


@dataclass
class Window:
    """CPU counters at the start of the measured window."""

    t: float
    own: float
    watched: dict[str, float]
    cores: dict[int, float]

    @staticmethod
    def now(watch: dict[str, list[int]]) -> Window:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return Window(
            time.perf_counter(),
            ru.ru_utime + ru.ru_stime,
            {name: procfs.cpu_seconds(pids) for name, pids in watch.items()},
            procfs.core_busy_seconds(),
        )


def cpu_report(start: Window, end: Window) -> dict[str, Any]:
    seconds = end.t - start.t
    busy = {c: end.cores[c] - start.cores.get(c, 0.0) for c in end.cores}
    return {
        "seconds": seconds,
        "generator": (end.own - start.own) / seconds,
        "watched": {k: (end.watched[k] - start.watched[k]) / seconds for k in end.watched},
        "cores_busy": {str(c): b / seconds for c, b in sorted(busy.items())},
    }


async def _connect(host: str, port: int, gen: Generator, n: int, open_loop: bool) -> list[Conn]:
    loop = asyncio.get_running_loop()
    conns = []
    for _ in range(n):
        _, proto = await loop.create_connection(lambda: Conn(gen, open_loop=open_loop), host, port)
        proto.lost = loop.create_future()
        conns.append(proto)
    return conns


async def _close(conns: list[Conn]) -> None:
    for c in conns:
        if c.transport is not None:
            c.transport.close()
    await asyncio.gather(*(c.lost for c in conns if c.lost is not None))


async def closed_loop(
    gen: Generator, args: argparse.Namespace, watch: dict[str, list[int]]
) -> dict[str, Any]:
    conns = await _connect(args.host, args.port, gen, args.connections, open_loop=False)
    for c in conns:
        c.send_closed()
    await asyncio.sleep(args.warmup)  # load, not synchronisation: the warm-up period
    gen.measuring = True
    start = Window.now(watch)
    await asyncio.sleep(args.duration)
    end = Window.now(watch)
    gen.measuring = False
    gen.done = True
    await _close(conns)
    return {
        "mode": "closed",
        "rps": gen.completed / (end.t - start.t),
        "cpu": cpu_report(start, end),
    }


async def prime(
    gen: Generator, args: argparse.Namespace, watch: dict[str, list[int]]
) -> dict[str, Any]:
    """Send the whole request pool ``args.prime`` times, then stop: every key has been asked
    for, so the caches a scenario measures are filled before anything is measured."""
    gen.limit = len(gen.requests) * args.prime
    gen.primed = asyncio.get_running_loop().create_future()
    gen.measuring = True
    start = Window.now(watch)
    conns = await _connect(args.host, args.port, gen, args.connections, open_loop=False)
    for c in conns:
        c.send_closed()
    await gen.primed
    end = Window.now(watch)
    gen.done = True
    await _close(conns)
    return {
        "mode": "prime",
        "rps": gen.completed / (end.t - start.t),
        "cpu": cpu_report(start, end),
    }


async def open_loop(
    gen: Generator, args: argparse.Namespace, watch: dict[str, list[int]]
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    conns = await _connect(args.host, args.port, gen, args.connections, open_loop=True)
    gen.idle = list(conns)
    gen.rate = args.rate
    first = round(args.warmup * args.rate)
    gen.total = first + round(args.duration * args.rate)
    gen.window = (first, gen.total)
    gen.pending_measured = gen.total - first
    gen.drained = loop.create_future()
    gen.start = time.perf_counter()
    start: Window | None = None
    while gen.issued < gen.total:
        if start is None and gen.issued >= first:
            start = Window.now(watch)
        gen.pump()
        await asyncio.sleep(TICK)  # the schedule's clock, not synchronisation
    schedule_end = gen.scheduled_at(gen.total)
    # Unanswered after DRAIN s: reported as timeouts, with the latency they have reached.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(gen.drained), DRAIN)
    end = Window.now(watch)
    gen.done = True
    now = time.perf_counter()
    # Requests still waiting count with the latency they have reached: a lower bound.
    unanswered = [c for c in conns if gen.window[0] <= c.number < gen.window[1]]
    timeouts = len(unanswered) + sum(1 for k in gen.backlog if k >= gen.window[0])
    for c in unanswered:
        gen.latencies[c.kind].append(now - c.t0)
    for k in gen.backlog:
        if k >= gen.window[0]:
            kind = gen.requests[k % len(gen.requests)][0]
            gen.latencies[kind].append(now - gen.scheduled_at(k))
    await _close(conns)
    window_start = gen.scheduled_at(first)
    last = max(gen.last_done, schedule_end)
    assert start is not None
    return {
        "mode": "open",
        "target_rate": args.rate,
        "rps": gen.completed / (last - window_start),
        "timeouts": timeouts,
        "send_lag_ms": latency_summary(gen.lags),
        "cpu": cpu_report(start, end),
    }


def load_requests(path: str) -> Generator:
    spec = json.loads(Path(path).read_text("utf-8"))
    requests = [(int(k), str(text).encode("latin-1")) for k, text in spec["requests"]]
    return Generator(requests, list(spec["kinds"]))


async def run(args: argparse.Namespace, gen: Generator) -> dict[str, Any]:
    watch = {}
    for item in args.watch or ():
        name, _, pids = item.partition("=")
        watch[name] = [int(p) for p in pids.split(",") if p]
    if args.prime:
        result = await prime(gen, args, watch)
    elif args.rate:
        result = await open_loop(gen, args, watch)
    else:
        result = await closed_loop(gen, args, watch)
    all_latencies = [x for xs in gen.latencies for x in xs]
    non_2xx = sum(n for status, n in gen.statuses.items() if not 200 <= status < 300)
    result.update(
        {
            "generator": "own",
            "connections": args.connections,
            "duration": args.duration,
            "completed": gen.completed,
            "statuses": {str(k): v for k, v in sorted(gen.statuses.items())},
            "errors": non_2xx + gen.transport_errors,
            "transport_errors": gen.transport_errors,
            "latency_ms": latency_summary(all_latencies),
            "by_kind": {
                kind: latency_summary(gen.latencies[i])
                for i, kind in enumerate(gen.kinds)
                if len(gen.kinds) > 1
            },
        }
    )
    return result


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.loadgen",
        description="HTTP/1.1 keep-alive load generator: closed loop (maximum throughput) or, "
        "with --rate, open loop (latency from each request's scheduled send time).",
    )
    p.add_argument("--host", default="127.0.0.1", help="server address (default 127.0.0.1)")
    p.add_argument("--port", type=int, required=True, help="server port")
    p.add_argument("--requests", required=True, help="JSON file of precomputed requests")
    p.add_argument("--connections", type=int, default=64, help="keep-alive connections")
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    p.add_argument("--rate", type=float, help="open loop: requests per second (default: closed)")
    p.add_argument(
        "--prime",
        type=int,
        metavar="PASSES",
        help="send the whole request pool PASSES times, then stop (fills caches first)",
    )
    p.add_argument("--cores", help="pin this process to these cores, e.g. 1 or 1,2")
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
    gen = load_requests(args.requests)
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
