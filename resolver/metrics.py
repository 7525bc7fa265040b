"""The node's own figures in the Prometheus text format, written here (no client library).

A :class:`Histogram` is one label set's latency distribution: a count per bucket (not yet
cumulative) and a sum, so an observation costs one ``bisect`` and two additions; buckets are
made cumulative, and the ``_count`` and the matching ``_total`` counter derived, only when
``/metrics`` is read. Label text is escaped and joined once, when a series is first used.

Transports record each request with one call, :meth:`Recorder.observe` (transport, operation
and responseCode label it; DNS labels its answers by rcode instead); the hottest series, a
successful resolution, is kept ready as :attr:`Recorder.resolved` so that the cached path
pays no lookup for it. What the node's other
parts count (cache tiers, the sync link) is read from them at exposition time
(:func:`exposition`).
"""

from __future__ import annotations

import sys
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from resolver import __version__

if TYPE_CHECKING:
    from registry.store.base import ReplicaStatus
    from resolver.health import Readiness
    from resolver.node import Node

# Upper bounds (seconds) of the latency buckets: a cached answer takes tens of microseconds
# in its handler, a store read or a forwarded query milliseconds, a timeout seconds.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
REQUEST_DURATION = "idnode_request_duration_seconds"
REQUESTS = "idnode_requests_total"
STORE_DURATION = "idnode_store_duration_seconds"


def label_text(names: Sequence[str], values: Sequence[str]) -> str:
    """``name="value",...`` with the values escaped as the text format wants."""
    return ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return repr(value) if isinstance(value, float) else str(value)


class Histogram:
    """One series of a histogram family: counts per bucket of ``bounds`` (plus one past the
    last, +Inf) and the sum of what was observed."""

    __slots__ = ("bounds", "counts", "labels", "sum")

    def __init__(self, labels: str, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.labels = labels  # the series' label text, escaped
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: the first bound >= value, as a bucket counts what is <= its "le".
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def observe_many(self, value: float, n: int) -> None:
        """``n`` observations of ``value`` (one timed among ``n`` alike: a sample)."""
        self.counts[bisect_left(self.bounds, value)] += n
        self.sum += value * n

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """(le, observations <= le) for every bucket, +Inf last."""
        out, running = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out


class HistogramFamily:
    """A histogram ``name`` with one :class:`Histogram` per combination of ``label_names``."""

    def __init__(self, name: str, help_text: str, label_names: Sequence[str]) -> None:
        self.name = name
        self.help = help_text
        self.label_names = tuple(label_names)
        self._series: dict[tuple[str, ...], Histogram] = {}

    def labels(self, *values: str) -> Histogram:
        """The series of these label values (made on first use)."""
        series = self._series.get(values)
        if series is None:
            series = Histogram(label_text(self.label_names, values))
            self._series[values] = series
        return series

    def series(self) -> list[Histogram]:
        """The series observed at least once (one made ready but never used is left out,
        as a counter that never moved would be)."""
        return [s for s in self._series.values() if s.count]

    def lines(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for s in self.series():
            sep = "," if s.labels else ""
            for bound, n in s.cumulative():
                out.append(f'{self.name}_bucket{{{s.labels}{sep}le="{_number(bound)}"}} {n}')
            out.append(f"{self.name}_sum{{{s.labels}}} {_number(s.sum)}")
            out.append(f"{self.name}_count{{{s.labels}}} {s.count}")
        return out


class Recorder:
    """One transport's requests: :meth:`observe` files each under its operation and
    responseCode (``code_text`` spells a code as its label: DNS names its rcodes)."""

    __slots__ = ("_by", "_code_text", "_family", "resolved", "transport")

    def __init__(
        self, family: HistogramFamily, transport: str, code_text: Callable[[int], str] = str
    ) -> None:
        self.transport = transport
        self._family = family
        self._code_text = code_text
        self._by: dict[tuple[str, int], Histogram] = {}
        self.resolved = self.series("resolve", 1)  # the hot path's series, ready

    def series(self, op: str, code: int) -> Histogram:
        """The series of operation ``op`` answered with responseCode ``code``."""
        series = self._by.get((op, code))
        if series is None:
            series = self._family.labels(self.transport, op, self._code_text(code))
            self._by[(op, code)] = series
        return series

    def observe(self, op: str, code: int, seconds: float) -> None:
        """One request of operation ``op`` (resolve, write, delete, list, ...), answered with
        Handle responseCode ``code`` after ``seconds``."""
        series = self._by.get((op, code))
        if series is None:
            series = self.series(op, code)
        series.observe(seconds)


class Telemetry:
    """The node's request and store figures: what :func:`exposition` reports besides what
    the cache and the sync link count themselves."""

    def __init__(self) -> None:
        self.started = time.time()
        self.requests = HistogramFamily(
            REQUEST_DURATION,
            "Time to answer a request, by transport, operation and Handle responseCode "
            "(DNS: rcode).",
            ("transport", "op", "code"),
        )
        self.store = HistogramFamily(
            STORE_DURATION, "Time a store call took, by store operation.", ("op",)
        )
        self._recorders: dict[str, Recorder] = {}
        self.http = self.transport("http")
        # The last readiness found (by /readyz, `idnode status`) and when: /metrics reports
        # it rather than run the checks, so that a scrape costs no I/O and changes nothing.
        self.readiness: tuple[float, Readiness] | None = None

    def transport(self, name: str, code_text: Callable[[int], str] = str) -> Recorder:
        """The recorder of transport ``name`` (``http``, ``native``, ``dns``): one per
        transport and node, so that its series stay ready (``code_text``: see
        :class:`Recorder`; the first call's holds)."""
        recorder = self._recorders.get(name)
        if recorder is None:
            recorder = self._recorders[name] = Recorder(self.requests, name, code_text)
        return recorder

    def request_lines(self) -> list[str]:
        """The requests counter (from the histogram's counts) and the histogram."""
        out = [
            f"# HELP {REQUESTS} Requests answered, by transport, operation and Handle "
            "responseCode (DNS: rcode).",
            f"# TYPE {REQUESTS} counter",
        ]
        out += [f"{REQUESTS}{{{s.labels}}} {s.count}" for s in self.requests.series()]
        return out + self.requests.lines()


def gauge(name: str, help_text: str, samples: Iterable[tuple[str, float]]) -> list[str]:
    """A gauge's lines: ``samples`` are (label text, value)."""
    out = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    out += [
        f"{name}{{{labels}}} {_number(v)}" if labels else f"{name} {_number(v)}"
        for labels, v in samples
    ]
    return out


def _readiness(at: float, ready: Readiness) -> list[str]:
    checks = [(label_text(("check",), (c.name,)), int(c.ok)) for c in ready.checks]
    return [
        *gauge(
            "idnode_ready",
            "1 when every readiness check passed, as last checked.",
            [("", int(ready.ok))],
        ),
        *gauge(
            "idnode_ready_check", "1 when this readiness check passed, as last checked.", checks
        ),
        *gauge(
            "idnode_ready_checked_timestamp_seconds", "When readiness was last checked.", [("", at)]
        ),
    ]


def build_info() -> list[str]:
    python = ".".join(map(str, sys.version_info[:3]))
    labels = label_text(("version", "python"), (__version__, python))
    return gauge("idnode_build_info", "The running idnode's version, always 1.", [(labels, 1)])


async def exposition(node: Node) -> str:
    """Every figure of ``node``, in the text format."""
    telemetry = node.telemetry
    # The sources first: one may file requests it counted apart (the native hot path's).
    extra = [line for source in node.metrics for line in await source()]
    lines = build_info()
    lines += gauge(
        "idnode_process_start_time_seconds",
        "When this process started (Unix time).",
        [("", telemetry.started)],
    )
    lines += telemetry.request_lines()
    lines += telemetry.store.lines()
    lines += cache_lines(node)
    if telemetry.readiness is not None:
        lines += _readiness(*telemetry.readiness)
    lines += extra  # the sync agent's figures (idnode_sync_*), the native hot path's
    return "\n".join(lines) + "\n"


def cache_lines(node: Node) -> list[str]:
    """The cache's counters, its hit ratio per tier and the in-process tier's size."""
    cache = node.cache
    stats = cache.stats
    lines = []
    for name, value in stats.as_dict().items():
        metric = f"idnode_cache_{name}_total"
        lines += [f"# TYPE {metric} counter", f"{metric} {value}"]
    lookups = stats.local_hits + stats.redis_hits + stats.misses + stats.coalesced
    ratios = [('tier="local"', stats.local_hits / lookups if lookups else 0.0)]
    if cache.redis is not None:  # what the local tier missed goes to Redis, then the store
        reaching = stats.redis_hits + stats.misses
        ratios.append(('tier="redis"', stats.redis_hits / reaching if reaching else 0.0))
    ratios.append(('tier="all"', stats.hit_ratio))
    lines += gauge(
        "idnode_cache_hit_ratio",
        "Hits over the lookups that reached the tier, since the process started.",
        ratios,
    )
    lines += gauge(
        "idnode_cache_local_entries", "Entries in the in-process tier.", [("", len(cache.local))]
    )
    lines += gauge(
        "idnode_cache_local_bytes", "Bytes in the in-process tier.", [("", cache.local.bytes)]
    )
    redis_up = int(cache.redis is not None and not cache.redis.breaker.is_open)
    lines += gauge("idnode_cache_redis_up", "1 while the Redis tier is in use.", [("", redis_up)])
    return lines


def replica_lines(replicas: Sequence[ReplicaStatus]) -> list[str]:
    """Each read replica's state: up, lag (bytes of WAL and seconds; absent while not
    known), reads it answered and reads sent to the primary because it was behind or down."""
    named = [(label_text(("replica",), (r.name,)), r) for r in replicas]
    lines = gauge(
        "idnode_store_replica_up",
        "1 when the read replica answered its last poll as a standby.",
        [(labels, int(r.up)) for labels, r in named],
    )
    lines += gauge(
        "idnode_store_replica_lag_bytes",
        "Write-ahead log the primary has written and the replica not yet replayed.",
        [(labels, r.lag_bytes) for labels, r in named if r.lag_bytes is not None],
    )
    lines += gauge(
        "idnode_store_replica_lag_seconds",
        "How long ago the newest write the replica replayed was committed (0: caught up).",
        [(labels, r.lag_seconds) for labels, r in named if r.lag_seconds is not None],
    )
    for metric, what, field_ in (
        ("idnode_store_replica_reads_total", "Reads the replica answered.", "reads"),
        (
            "idnode_store_replica_skipped_total",
            "Reads sent to the primary because the replica was behind the host or down.",
            "skipped",
        ),
    ):
        lines += [f"# HELP {metric} {what}", f"# TYPE {metric} counter"]
        lines += [f"{metric}{{{labels}}} {getattr(r, field_)}" for labels, r in named]
    return lines
