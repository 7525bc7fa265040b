"""``/metrics`` after real traffic: every kind of request counted under its transport,
operation and responseCode, histograms well formed, store latency and cache ratios there, in
the Prometheus text format."""

from __future__ import annotations

import json
import math
import re
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import aiohttp
import dns.asyncquery
import dns.message
import dns.name
import dns.rdatatype
import pytest

from registry.store.base import SharedStore
from resolver import __version__
from resolver.config import load
from resolver.dns.config import DnsConfig
from resolver.dns.listener import start_dns
from resolver.dns.names import NameMap, zone_name
from resolver.metrics import LATENCY_BUCKETS, Histogram
from resolver.native import client as native_client
from resolver.native.listener import start_native
from resolver.node import Node
from resolver.timedstore import TimedStore
from sync import status
from sync.agent import SenderLock, SyncAgent
from tests.conftest import ENT8, ENT8_ADMIN, JSON, basic, init_node
from tests.pgserver import fresh_database
from tests.procs import Served, cli, serving
from tests.test_health import Running, running

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE = re.compile(rf"^({NAME})(?:\{{(.*)\}})? (\S+)$")
ANNOUNCED = re.compile(r"^idnode listening on ([a-z-]+)://(\S+):(\d+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')
Labels = tuple[tuple[str, str], ...]
T = TypeVar("T")


@dataclass
class Exposition:
    types: dict[str, str] = field(default_factory=dict)
    samples: dict[str, dict[Labels, float]] = field(default_factory=lambda: defaultdict(dict))

    def value(self, name: str, **labels: str) -> float:
        return self.samples[name][tuple(sorted(labels.items()))]

    def series(self, name: str) -> dict[Labels, float]:
        return self.samples.get(name, {})


def family_of(name: str, types: dict[str, str]) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        base = name.removesuffix(suffix)
        if base != name and types.get(base) == "histogram":
            return base
    return name


def parse(text: str) -> Exposition:
    """The text format, checked as Prometheus would read it."""
    out = Exposition()
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert name not in out.types, f"{name} typed twice"
            out.types[name] = kind
            continue
        if line.startswith("#"):
            assert line.startswith("# HELP "), line
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample: {line!r}"
        name, raw, value = m.groups()
        labels: list[tuple[str, str]] = []
        rest = raw or ""
        while rest:
            lm = LABEL.match(rest)
            assert lm, f"bad labels in {line!r}"
            labels.append((lm.group(1), lm.group(2)))
            rest = rest[lm.end() :]
        family = family_of(name, out.types)
        assert family in out.types, f"untyped {name}"
        key = tuple(sorted(labels))
        assert key not in out.samples[name], f"duplicate sample {line!r}"
        out.samples[name][key] = float(value)
    return out


def check_histograms(exp: Exposition) -> None:
    """Every histogram series: buckets in order, cumulative, +Inf last and equal to _count."""
    for name, kind in exp.types.items():
        if kind != "histogram":
            continue
        assert name.endswith("_seconds"), name  # base unit in the name
        buckets: dict[Labels, list[tuple[float, float]]] = defaultdict(list)
        for labels, n in exp.series(f"{name}_bucket").items():
            le = dict(labels)["le"]
            rest = tuple((k, v) for k, v in labels if k != "le")
            buckets[rest].append((math.inf if le == "+Inf" else float(le), n))
        assert buckets, f"{name}: no series"
        for rest, points in buckets.items():
            les = [le for le, _ in points]
            counts = [n for _, n in points]
            assert les == sorted(les) and les[-1] == math.inf, (name, rest, les)
            assert les[:-1] == list(LATENCY_BUCKETS), (name, les)
            assert counts == sorted(counts), f"{name}{rest}: not cumulative {counts}"
            assert counts[-1] == exp.series(f"{name}_count")[rest], (name, rest)
            assert exp.series(f"{name}_sum")[rest] >= 0


async def scrape(n: Running) -> Exposition:
    async with n.session.get(f"{n.url}/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        return parse(await r.text())


URL_VALUE = {"values": [{"index": 1, "type": "URL", "data": "https://example.org/m"}]}


async def test_metrics_count_every_kind_of_request(tmp_path: Path) -> None:
    sent: Counter[tuple[str, str]] = Counter()
    async with running(tmp_path / "node") as n:
        s, api = n.session, f"{n.url}/api/handles"

        async def expect(status: int, op: str, code: str, r: aiohttp.ClientResponse) -> None:
            await r.read()  # the whole answer (a listing streams it)
            assert r.status == status
            sent[(op, code)] += 1

        async with s.put(f"{api}/{ENT8}/M1", json=URL_VALUE, headers={**ENT8_ADMIN, **JSON}) as r:
            await expect(201, "write", "1", r)
        async with s.put(f"{api}/{ENT8}/M2", json=URL_VALUE, headers=JSON) as r:
            await expect(401, "write", "402", r)  # no credentials
        wrong = {"Authorization": basic(f"300:0.NA/{ENT8}", "wrong"), **JSON}
        async with s.put(f"{api}/{ENT8}/M2", json=URL_VALUE, headers=wrong) as r:
            await expect(401, "write", "403", r)  # wrong secret
        for _ in range(3):  # a store read, then the in-process tier's hits (the hot path)
            async with s.get(f"{api}/{ENT8}/M1") as r:
                await expect(200, "resolve", "1", r)
        async with s.get(f"{api}/{ENT8}/NOPE") as r:
            await expect(404, "resolve", "100", r)
        async with s.get(f"{api}/{ENT8}/M1?type=EMAIL") as r:
            await expect(200, "resolve", "200", r)  # no values of that type
        async with s.get(f"{n.url}/api/handles?prefix={ENT8}", headers=ENT8_ADMIN) as r:
            await expect(200, "list", "1", r)
        async with s.delete(f"{api}/{ENT8}/M1", headers=ENT8_ADMIN) as r:
            await expect(200, "delete", "1", r)
        async with s.get(f"{n.url}/api/nothing") as r:
            await expect(404, "other", "4", r)

        exp = await scrape(n)
        # A scrape is counted once answered: the second one sees the first.
        again = await scrape(n)

    counted = {
        (dict(labels)["op"], dict(labels)["code"]): v
        for labels, v in exp.series("idnode_requests_total").items()
    }
    assert counted == dict(sent)
    for labels in exp.series("idnode_requests_total"):
        assert dict(labels)["transport"] == "http"
    assert again.value("idnode_requests_total", transport="http", op="metrics", code="1") == 1
    assert exp.types["idnode_requests_total"] == "counter"
    assert exp.types["idnode_request_duration_seconds"] == "histogram"
    for labels, total in exp.series("idnode_requests_total").items():
        assert exp.series("idnode_request_duration_seconds_count")[labels] == total
    check_histograms(exp)

    # The hot path's hits and the store behind the misses.
    assert exp.value("idnode_cache_local_hits_total") >= 2
    local = exp.value("idnode_cache_hit_ratio", tier="local")
    hits, misses = (
        exp.value("idnode_cache_local_hits_total"),
        exp.value("idnode_cache_misses_total"),
    )
    assert local == hits / (hits + misses + exp.value("idnode_cache_coalesced_total") + 0.0)
    assert 0 < local < 1
    store = {
        dict(labels)["op"]: n
        for labels, n in exp.series("idnode_store_duration_seconds_count").items()
    }
    assert store["get"] >= 1 and store["transact"] >= 2, store  # sampled reads; the writes
    assert exp.types["idnode_store_duration_seconds"] == "histogram"

    python = ".".join(map(str, __import__("sys").version_info[:3]))
    assert exp.value("idnode_build_info", version=__version__, python=python) == 1
    assert exp.types["idnode_build_info"] == "gauge"
    assert exp.value("idnode_sync_pending_items") >= 1  # the sync backlog: the write, at least


async def test_native_and_dns_answers_are_counted_under_their_transports(
    tmp_path: Path,
) -> None:
    """Over real sockets: the native listener's answers by op and responseCode, its hot
    path's (UDP and TCP) among them, and the DNS listener's by rcode, cached or not."""
    handle = f"{ENT8}/WIRE"
    zone = "id.example."
    async with running(tmp_path / "node") as n:
        async with n.session.put(
            f"{n.url}/api/handles/{handle}", json=URL_VALUE, headers={**ENT8_ADMIN, **JSON}
        ) as r:
            assert r.status == 201
        native = await start_native(n.node, "127.0.0.1", 0)
        dns_listener = await start_dns(n.node, DnsConfig.from_text("127.0.0.1:0", zone))
        try:
            host, port = native.address
            for tcp in (False, False, True):  # the first resolves, then the hot path answers
                reply = await native_client.resolve(host, port, handle, tcp=tcp)
                assert reply.header.response_code == 1
            assert len(native.service.hot) == 1  # a reply shape kept: answered hot
            missing = await native_client.resolve(host, port, f"{ENT8}/NOPE")
            assert missing.header.response_code == 100
            assert (await native_client.site_info(host, port)).header.response_code == 1

            name = NameMap(zone_name(zone)).to_name(handle)
            dns_port = dns_listener.port
            for ask in (dns.asyncquery.udp, dns.asyncquery.udp, dns.asyncquery.tcp):
                q = dns.message.make_query(name, dns.rdatatype.URI)
                answer = await ask(q, "127.0.0.1", timeout=10, port=dns_port)
                assert answer.rcode() == 0 and answer.answer
            nope = NameMap(zone_name(zone)).to_name(f"{ENT8}/NOPE")
            for ask_name, rcode in ((nope, 3), (dns.name.from_text("example."), 5)):
                q = dns.message.make_query(ask_name, dns.rdatatype.URI)
                answer = await dns.asyncquery.udp(q, "127.0.0.1", timeout=10, port=dns_port)
                assert answer.rcode() == rcode, (ask_name, answer)
        finally:
            await dns_listener.close()
            await native.close()
        exp = await scrape(n)
    check_histograms(exp)

    def count(transport: str, op: str, code: str) -> float:
        return exp.value("idnode_requests_total", transport=transport, op=op, code=code)

    assert count("native", "resolve", "1") == 3
    assert count("native", "resolve", "100") == 1
    assert count("native", "siteinfo", "1") == 1
    assert count("dns", "query", "NOERROR") == 3
    assert count("dns", "query", "NXDOMAIN") == 1
    assert count("dns", "query", "REFUSED") == 1
    native_series = {
        dict(k)["op"] for k in exp.series("idnode_requests_total") if ("transport", "native") in k
    }
    assert native_series == {"resolve", "siteinfo"}  # nothing else answered, nothing else counted


async def announced(served: Served, count: int) -> dict[str, tuple[str, int]]:
    """The ``count`` announce lines after the HTTP one: scheme -> (host, port)."""
    assert served.proc.stdout is not None
    found = {}
    for _ in range(count):
        m = ANNOUNCED.match((await served.proc.stdout.readline()).decode().strip())
        assert m, "an announce line per listener address"
        found[m.group(1)] = (m.group(2), int(m.group(3)))
    return found


async def test_idnode_serve_reports_every_transport_in_one_metrics(tmp_path: Path) -> None:
    """The listeners ``idnode serve --native --dns`` starts count into the node whose
    ``/metrics`` the HTTP listener serves."""
    data = tmp_path / "node"
    await init_node(data)
    handle = f"{ENT8}/SERVED"
    done = cli("put", handle, "--data", data, "--value", "URL=https://example.com/s")
    assert done.returncode == 0, done.stderr
    zone = "id.test."
    extra = ("--native", "127.0.0.1:0", "--dns", "127.0.0.1:0", "--dns-zone", zone)
    async with serving(data, *extra) as served, aiohttp.ClientSession() as session:
        lines = await announced(served, 4)
        reply = await native_client.resolve(*lines["hdl-udp"], handle)
        assert reply.header.response_code == 1
        name = NameMap(zone_name(zone)).to_name(handle)
        dns_host, dns_port = lines["dns-udp"]
        q = dns.message.make_query(name, dns.rdatatype.URI)
        assert (await dns.asyncquery.udp(q, dns_host, port=dns_port, timeout=10)).rcode() == 0
        async with session.get(f"{served.url}/metrics") as r:
            assert r.status == 200
            exp = parse(await r.text())
    count = exp.series("idnode_requests_total")
    assert count[(("code", "1"), ("op", "resolve"), ("transport", "native"))] == 1
    assert count[(("code", "NOERROR"), ("op", "query"), ("transport", "dns"))] == 1


async def test_a_node_on_a_shared_store_times_it_and_still_shares_it(tmp_path: Path) -> None:
    """Timing the store keeps a PostgreSQL store one that hosts share: the node joins the
    other hosts (and reports so), the sync agent takes the store's lease; SQLite is not."""
    with fresh_database() as dsn:
        data = tmp_path / "pg"
        await init_node(data, store=dsn)
        node = await Node.open(load(data, env={}))
        try:
            assert isinstance(node.store, TimedStore) and isinstance(node.store, SharedStore)
            coherent = [line for source in node.metrics for line in await source()]
            assert "idnode_cache_coherent 1" in coherent or "idnode_cache_coherent 0" in coherent
            assert not isinstance(SyncAgent(node).lock, SenderLock)  # the store's lease
            await node.store.count()
            assert 'op="count"' in {h.labels for h in node.telemetry.store.series()}
        finally:
            await node.close()
    await init_node(tmp_path / "sqlite")
    node = await Node.open(load(tmp_path / "sqlite", env={}))
    try:
        assert isinstance(node.store, TimedStore) and not isinstance(node.store, SharedStore)
    finally:
        await node.close()


async def test_metrics_report_the_last_readiness(tmp_path: Path) -> None:
    async with running(tmp_path / "node") as n:
        before = await scrape(n)
        assert "idnode_ready" not in before.types  # nothing checked yet: nothing claimed
        status, _ = await n.ready()
        assert status == 200
        after = await scrape(n)
    assert after.value("idnode_ready") == 1
    for check in ("store", "keys", "sync_backlog"):
        assert after.value("idnode_ready_check", check=check) == 1
    assert after.value("idnode_ready_checked_timestamp_seconds") > 0


def test_a_histogram_counts_an_observation_on_a_bound_in_that_bucket() -> None:
    h = Histogram('op="x"')
    for value in (0.0, LATENCY_BUCKETS[0], LATENCY_BUCKETS[0] * 1.01, 0.001, 99.0):
        h.observe(value)
    cumulative = dict(h.cumulative())
    assert cumulative[LATENCY_BUCKETS[0]] == 2  # 0 and the bound itself: le means <=
    assert cumulative[LATENCY_BUCKETS[1]] == 3
    assert cumulative[0.001] == 4
    assert cumulative[10.0] == 4 and cumulative[math.inf] == 5 == h.count
    assert h.sum == sum((0.0, LATENCY_BUCKETS[0], LATENCY_BUCKETS[0] * 1.01, 0.001, 99.0))


DASHBOARD = Path(__file__).resolve().parents[1] / "docs" / "grafana-dashboard.json"


async def test_the_dashboard_queries_only_metrics_the_node_exposes(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text("utf-8"))
    exprs = [
        t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", []) if "expr" in t
    ]
    used = {name for e in exprs for name in re.findall(r"\bidnode_[a-z_]+", e)}
    assert len(used) >= 10, used
    async with running(tmp_path / "node") as n:
        async with n.session.get(f"{n.url}/api/handles/{ENT8}") as r:
            assert r.status == 200
        assert (await n.ready())[0] == 200
        exp = await scrape(n)
    missing = sorted(name for name in used if not exp.series(name))
    assert not missing, f"the dashboard queries metrics /metrics lacks: {missing}"
    panels = {panel["title"] for panel in dashboard["panels"]}
    for wanted in ("Ready", "Cache hit ratio per tier", "Sync backlog"):
        assert wanted in panels


async def test_sync_figures_are_typed_and_their_files_read_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readers: list[int] = []

    def on_a_thread(load: Callable[[Path], T]) -> Callable[[Path], T]:
        def reading(data_dir: Path) -> T:
            readers.append(threading.get_ident())
            return load(data_dir)

        return reading

    monkeypatch.setattr(status, "load_registration", on_a_thread(status.load_registration))
    monkeypatch.setattr(status, "load_status", on_a_thread(status.load_status))
    async with running(tmp_path / "node") as n:
        async with n.session.put(
            f"{n.url}/api/handles/{ENT8}/T1", json=URL_VALUE, headers={**ENT8_ADMIN, **JSON}
        ) as r:
            assert r.status == 201
        async with n.session.get(f"{n.url}/metrics") as r:
            text = await r.text()
    exp = parse(text)  # every sample under a TYPE line
    for name in ("registrations", "updates", "deletions", "resolutions"):
        metric = f"idnode_sync_stats_{name}"
        assert exp.types[metric] == "gauge"
        assert f"# HELP {metric} " in text
    assert exp.value("idnode_sync_stats_registrations", prefix=ENT8) == 1
    assert exp.types["idnode_sync_pending_items"] == "gauge"
    assert "# HELP idnode_sync_pending_items " in text
    assert len(readers) == 2, readers  # both files, once per scrape
    assert threading.get_ident() not in readers  # not on the event loop's thread
