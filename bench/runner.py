"""Orchestration: registries, servers and generators as separate processes pinned to
separate cores, every scenario repeated on a fresh server, every figure kept.

An HTTP scenario runs in two phases, each repeat on a fresh server (and Redis), primed
when it measures a cache: first closed-loop runs for the maximum, then open-loop runs at
fixed fractions of the median maximum; peak RSS and the ``/metrics`` counters of the
measured runs are kept. The ceiling goes first, and every repeat of another scenario's
maximum is paired with a ceiling run made just before it (a fresh ceiling, the same
generator and placement): its ratio is taken to that neighbour, so a machine whose speed
drifts over a long run (a shared VM) moves both sides of every ratio alike.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import dataset, pgstore, procfs, redisserver, steadiness, workload, wrk
from bench.procs import PYTHON, ProcError, Served, free_port, run_measured, start_server
from bench.scenarios import Scenario

Result = dict[str, Any]


@dataclass
class Settings:
    sizes: list[int]
    scenarios: list[Scenario]
    out: Path
    repeats: int = 3
    duration: float = 5.0
    warmup: float = 1.0
    loads: tuple[float, ...] = (0.5, 0.8, 0.95)
    connections: int = 64
    open_connections: int = 64
    generator: str = "auto"  # auto (wrk when installed), wrk, own
    import_records: int = 100_000
    data_root: Path = dataset.DEFAULT_ROOT
    progress: bool = True
    mode: str = "full"
    command: str = ""

    def primary_generator(self) -> str:
        if self.generator == "auto":
            return "wrk" if wrk.available() else "own"
        if self.generator == "wrk" and not wrk.available():
            raise ProcError("--generator wrk: wrk is not installed")
        return self.generator


@dataclass
class Placement:
    """Which cores serve and which generate load (and host Redis)."""

    server: list[int]
    generator: list[int]
    redis: list[int]
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "generator": self.generator,
            "redis": self.redis,
            "note": self.note,
        }


def placement(workers: int) -> Placement:
    """Server first, generator on the next core; on a machine short of cores the generator
    shares one with the server, and the note says so."""
    cores = procfs.usable_cores()
    server = cores[:workers] if len(cores) >= workers else cores
    rest = [c for c in cores if c not in server]
    if rest:
        gen, note = rest[:1], ""
    else:
        gen = server[-1:]
        note = f"only {len(cores)} core(s): the generator shares core {gen[0]} with the server"
    return Placement(server, gen, gen, note)


@dataclass
class Instance:
    """One scenario at one registry size: its runs and what the server said about itself."""

    scenario: str
    size: int | None
    workers: int
    placement: Placement
    runs: list[Result] = field(default_factory=list)
    peak_rss_mb: list[list[float]] = field(default_factory=list)  # per repeat, per worker
    metrics: list[dict[str, float]] = field(default_factory=list)
    primes: list[Result] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> Result:
        return {
            "scenario": self.scenario,
            "size": self.size,
            "workers": self.workers,
            "placement": self.placement.as_dict(),
            "runs": self.runs,
            "peak_rss_mb": self.peak_rss_mb,
            "metrics": self.metrics,
            "primes": self.primes,
            "error": self.error,
        }


def fetch_metrics(served: Served) -> dict[str, float]:
    url = f"http://{served.host}:{served.port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition(" ")
            out[name.removeprefix("idnode_cache_")] = float(value)
    return out


def measured_metrics(
    before: dict[str, float], after: dict[str, float], sc: Scenario
) -> dict[str, float]:
    """Counters over the measured runs only (priming excluded). With several workers each
    answers /metrics for itself alone, so only one worker's totals can be shown."""
    if sc.workers > 1:
        return after
    return {k: v - before.get(k, 0.0) if k.endswith("_total") else v for k, v in after.items()}


class Runner:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.primary = settings.primary_generator()
        self.work = Path()
        self.datasets: dict[int, dataset.Dataset] = {}
        self.body = Path()
        self.bar: Any = None
        self._ceiling_requests: tuple[Path, Path] | None = None
        self.pg: dict[int, str] = {}  # registry size → its PostgreSQL copy

    # ------------------------------------------------------------------ plan

    def instances(self) -> list[tuple[Scenario, int | None]]:
        return [(sc, size) for sc in self.s.scenarios for size in sc.sizes_of(self.s.sizes)]

    def runs_per_repeat(self, sc: Scenario) -> int:
        if sc.kind == "import":
            return 1
        if sc.kind == "datagram":
            return 3  # its own ceiling, priming, the maximum
        # The ceiling's generator check (with wrk), or another scenario's paired ceiling run.
        extra = int(self.primary == "wrk") if sc.kind == "ceiling" else 1
        return (2 if sc.prime else 0) + 1 + extra + len(self.s.loads)

    def planned_runs(self) -> int:
        return sum(self.runs_per_repeat(sc) * self.s.repeats for sc, _ in self.instances())

    # ------------------------------------------------------------------ run

    def run(self) -> Result:
        started = time.time()
        results: Result = {
            "schema": 1,
            "mode": self.s.mode,
            "command": self.s.command,
            "started": _iso(started),
            "machine": procfs.machine(),
            "settings": self._settings_dict(),
        }
        sizes_needed = sorted({size for _, size in self.instances() if size is not None})
        with tempfile.TemporaryDirectory(prefix="idnode-bench-") as tmp:
            self.work = Path(tmp)
            self._note(f"registries: {', '.join(f'{n:,}' for n in sizes_needed) or 'none'}")
            values = dataset.fingerprint(self.work) if sizes_needed else []
            for n in sizes_needed:
                self.datasets[n] = dataset.ensure(
                    n, values, self.s.data_root, progress=self.s.progress, note=self._note
                )
            for n in sorted(
                {size for sc, size in self.instances() if sc.store == "postgresql" and size}
            ):
                self.pg[n] = pgstore.ensure(
                    self.datasets[n], progress=self.s.progress, note=self._note
                )
            results["datasets"] = {
                str(n): {
                    "path": str(d.path),
                    "reused": d.reused,
                    "import_rate": d.import_rate,
                    "build_seconds": d.build_seconds,
                    "disk_mb": round(d.disk_mb, 1),
                }
                for n, d in sorted(self.datasets.items())
            }
            place = placement(1)
            probe_s = 0.5 if self.s.mode == "smoke" else 3.0
            self._note("probing how steady the cores are")
            results["steadiness"] = [
                p
                for core in sorted({*place.server, *place.generator})
                if (p := steadiness.probe(core, probe_s)) is not None
            ]
            self.body = self.work / "body.json"
            self.body.write_bytes(self._probe_body())
            results["answer_bytes"] = self.body.stat().st_size
            instances = []
            from tqdm import tqdm

            with tqdm(
                total=self.planned_runs(),
                unit="run",
                disable=not self.s.progress,
                dynamic_ncols=True,
            ) as self.bar:
                for sc, size in self.instances():
                    if sc.kind == "import":
                        instances.append(self._import(sc).as_dict())
                    elif sc.kind == "datagram":
                        instances.append(self._datagram(sc, size).as_dict())
                    else:
                        instances.append(self._http(sc, size).as_dict())
        results["instances"] = instances
        results["finished"] = _iso(time.time())
        results["loadavg_at_end"] = procfs.machine()["loadavg_at_start"]
        return results

    def _settings_dict(self) -> Result:
        return {
            "sizes": self.s.sizes,
            "scenarios": [sc.name for sc in self.s.scenarios],
            "repeats": self.s.repeats,
            "duration": self.s.duration,
            "warmup": self.s.warmup,
            "loads": list(self.s.loads),
            "connections": self.s.connections,
            "open_connections": self.s.open_connections,
            "generator": self.primary,
            "import_records": self.s.import_records,
            "placement": placement(1).as_dict(),
        }

    def _note(self, text: str) -> None:
        if not self.s.progress:
            return
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def _step(self, desc: str, result: Result | None = None) -> None:
        if self.bar is None:
            return
        if result is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"{result.get('rps', 0):,.0f} req/s", refresh=False)
        self.bar.set_description(desc)

    # ------------------------------------------------------------------ servers

    def _probe_body(self) -> bytes:
        """A real resolution answer, which the ceiling then serves byte for byte."""
        size = min(self.datasets) if self.datasets else None
        if size is None:
            return b'{"responseCode":1,"handle":"88.118.1/SN0000000000","values":[]}'
        handle = dataset.identifier(workload.probe_key(size))
        with self._idnode(size, workers=1, cores=placement(1).server) as served:
            url = f"http://{served.host}:{served.port}/api/handles/{handle}"
            with urllib.request.urlopen(url, timeout=10) as resp:
                body: bytes = resp.read()
        if b'"responseCode":1' not in body:
            raise ProcError(f"probe of {handle} failed: {body[:200]!r}")
        return body

    @contextlib.contextmanager
    def _idnode(
        self,
        size: int,
        *,
        workers: int,
        cores: list[int],
        env: dict[str, str] | None = None,
        flags: tuple[str, ...] = (),
    ) -> Iterator[Served]:
        port = free_port() if workers > 1 else 0  # workers share a fixed port
        cmd = dataset.idnode("serve", "--data", str(self.datasets[size].path))
        cmd += ["--http", f"127.0.0.1:{port}", "--workers", str(workers), *flags]
        served = start_server(
            "idnode serve",
            cmd,
            cores=cores,
            env={"IDNODE_LOG_LEVEL": "warning", **(env or {})},
            listeners=workers,
        )
        try:
            yield served
        finally:
            served.stop()

    @contextlib.contextmanager
    def _serving(
        self, sc: Scenario, size: int | None, place: Placement
    ) -> Iterator[tuple[Served, dict[str, list[int]]]]:
        with contextlib.ExitStack() as stack:
            watch: dict[str, list[int]] = {}
            if sc.kind == "ceiling" or size is None:
                cmd = [PYTHON, "-m", "bench.ceiling", "--body", str(self.body)]
                served = start_server("ceiling", cmd, cores=place.server)
                stack.callback(served.stop)
            else:
                flags: tuple[str, ...] = ()
                if sc.redis == "up":
                    if not redisserver.available():
                        raise ProcError("redis-server is not installed: no warm scenario")
                    url, pid = stack.enter_context(redisserver.running(place.redis))
                    flags, watch["redis"] = ("--redis", url), [pid]
                elif sc.redis == "down":
                    # A port nobody listens on: every connection attempt is refused.
                    flags = ("--redis", f"redis://127.0.0.1:{free_port()}/0")
                env = dict(sc.env)
                if sc.store == "postgresql":
                    env["IDNODE_STORE"] = self.pg[size]
                served = stack.enter_context(
                    self._idnode(size, workers=sc.workers, cores=place.server, env=env, flags=flags)
                )
            watch["server"] = served.pids()
            yield served, watch

    # ------------------------------------------------------------------ HTTP

    def _workload(self, sc: Scenario, size: int | None) -> tuple[Path, Path]:
        base = size if size is not None else min(self.datasets, default=10_000)
        if sc.write_fraction > 0:
            w = workload.mixed(base, sc.write_fraction)
        else:
            w = workload.reads(base, sc.keys)
        stem = self.work / f"{sc.name}-{size}"
        return w.write_json(stem.with_suffix(".json")), w.write_raw(stem.with_suffix(".raw"))

    def _http(self, sc: Scenario, size: int | None) -> Instance:
        """Phase 1, per repeat: the maximum (closed loop). Phase 2, per repeat: fixed rates
        at fractions of the *median* maximum (open loop) — one lucky or unlucky maximum
        must not set the rates. Every repeat of either phase runs on a fresh server."""
        place = placement(sc.workers)
        inst = Instance(sc.name, size, sc.workers, place)
        label = sc.name + (f" {_short(size)}" if size else "")
        try:
            req_json, req_raw = self._workload(sc, size)
            for r in range(self.s.repeats):
                if sc.kind != "ceiling":
                    self._step(f"{label} r{r + 1} ceiling")
                    ref = self._reference()
                    inst.runs.append({"repeat": r, "load": None, "reference": True, **ref})
                    self._step(f"{label} r{r + 1}", ref)
                with self._fresh(sc, size, place, inst, req_json, f"{label} r{r + 1}") as (
                    served,
                    watch,
                ):
                    self._step(f"{label} r{r + 1} max")
                    warm = not sc.prime  # a primed server needs no other warm-up
                    top = self._closed(served, watch, place, req_json, req_raw, self.primary, warm)
                    inst.runs.append({"repeat": r, "load": None, **top})
                    self._step(f"{label} r{r + 1}", top)
                    if sc.kind == "ceiling" and self.primary == "wrk":
                        # The generator check: can the project's own generator drive the
                        # ceiling as hard as wrk does (then it outruns any idnode scenario)?
                        own = self._closed(served, watch, place, req_json, req_raw, "own", True)
                        inst.runs.append({"repeat": r, "load": None, "check": True, **own})
                        self._step(f"{label} r{r + 1}", own)
            top_rps = statistics.median(
                r["rps"] for r in inst.runs if not (r.get("check") or r.get("reference"))
            )
            if top_rps <= 0:  # a fixed rate of 0 would be no measurement at all
                raise ValueError("the closed-loop runs completed no request")
            for r in range(self.s.repeats):
                with self._fresh(sc, size, place, inst, req_json, f"{label} r{r + 1}") as (
                    served,
                    watch,
                ):
                    for load in self.s.loads:
                        self._step(f"{label} r{r + 1} {load:.0%}")
                        fixed = self._open(served, watch, place, req_json, load * top_rps)
                        inst.runs.append({"repeat": r, "load": load, **fixed})
                        self._step(f"{label} r{r + 1}", fixed)
        except (ProcError, OSError, ValueError, subprocess.SubprocessError) as exc:
            inst.error = str(exc)
            self._note(f"{label}: FAILED: {exc}")
        return inst

    def _reference(self) -> Result:
        """One closed-loop run of a fresh ceiling with the ceiling scenario's own requests
        (all GETs: the mixed scenario's PUTs would only get 405 from it)."""
        ceiling = next(sc for sc in self.s.scenarios if sc.kind == "ceiling")
        place = placement(1)
        if self._ceiling_requests is None:
            self._ceiling_requests = self._workload(ceiling, None)
        req_json, req_raw = self._ceiling_requests
        with self._serving(ceiling, None, place) as (served, watch):
            return self._closed(served, watch, place, req_json, req_raw, self.primary, True)

    @contextlib.contextmanager
    def _fresh(
        self,
        sc: Scenario,
        size: int | None,
        place: Placement,
        inst: Instance,
        req_json: Path,
        label: str,
    ) -> Iterator[tuple[Served, dict[str, list[int]]]]:
        """A new server, primed when the scenario measures a cache; its peak RSS and its
        counters over the measured runs are added to ``inst`` when done."""
        with self._serving(sc, size, place) as (served, watch):
            if sc.prime:
                self._step(f"{label} priming")
                primed = self._loadgen(
                    served, watch, place, req_json, connections=self.s.connections, prime=sc.prime
                )
                inst.primes.append(primed)
                self._step(label, primed)
            before = fetch_metrics(served) if sc.kind == "http" else {}
            yield served, watch
            inst.peak_rss_mb.append(served.peak_rss_mb())
            if sc.kind == "http":
                inst.metrics.append(measured_metrics(before, fetch_metrics(served), sc))

    def _loadgen(
        self,
        served: Served,
        watch: dict[str, list[int]],
        place: Placement,
        req_json: Path,
        *,
        connections: int,
        rate: float | None = None,
        prime: int = 0,
    ) -> Result:
        cmd = [PYTHON, "-m", "bench.loadgen", "--host", served.host, "--port", str(served.port)]
        cmd += ["--requests", str(req_json), "--connections", str(connections)]
        cmd += ["--duration", str(self.s.duration), "--warmup", str(self.s.warmup)]
        if rate is not None:
            cmd += ["--rate", f"{rate:.1f}"]
        if prime:
            cmd += ["--prime", str(prime)]
        for name, pids in watch.items():
            cmd += ["--watch", f"{name}={','.join(map(str, pids))}"]
        timeout = self.s.warmup + self.s.duration + 120
        done = run_measured(cmd, cores=place.generator, timeout=timeout)
        if done.returncode != 0:
            raise ProcError(f"load generator failed: {done.stderr.strip()[-2000:]}")
        result: Result = json.loads(done.stdout)
        return result

    def _closed(
        self,
        served: Served,
        watch: dict[str, list[int]],
        place: Placement,
        req_json: Path,
        req_raw: Path,
        generator: str,
        warm_up: bool,
    ) -> Result:
        if generator == "own":  # its warm-up is part of the run
            return self._loadgen(served, watch, place, req_json, connections=self.s.connections)
        url = f"http://{served.host}:{served.port}"
        kwargs: dict[str, Any] = {
            "connections": self.s.connections,
            "cores": place.generator,
            "watch": watch,
        }
        if warm_up and self.s.warmup > 0:  # wrk has no warm-up of its own: a short run
            wrk.closed_loop(url, req_raw, self.work, duration=self.s.warmup, **kwargs)
        return wrk.closed_loop(url, req_raw, self.work, duration=self.s.duration, **kwargs)

    def _open(
        self,
        served: Served,
        watch: dict[str, list[int]],
        place: Placement,
        req_json: Path,
        rate: float,
    ) -> Result:
        return self._loadgen(
            served, watch, place, req_json, connections=self.s.open_connections, rate=rate
        )

    # ------------------------------------------------------------------ native, DNS

    def _datagram(self, sc: Scenario, size: int | None) -> Instance:
        """Per repeat: a closed-loop run against a fresh bare server of the protocol (the
        ceiling, kept as the repeat's reference run), then one against a fresh idnode whose
        caches a pass over the keys has filled. Same generator, same placement."""
        place = placement(1)
        inst = Instance(sc.name, size, 1, place)
        label = sc.name + (f" {_short(size)}" if size else "")
        try:
            if size is None:
                raise ProcError("needs a registry")
            handles = self.work / f"{sc.name}-{size}.handles"
            keys = workload.key_sample(size, workload.HOT_KEYS)
            handles.write_text("".join(dataset.identifier(i) + "\n" for i in keys), "utf-8")
            for r in range(self.s.repeats):
                self._step(f"{label} r{r + 1} ceiling")
                with self._udp_ceiling(sc, size, place) as (port, watch):
                    ref = self._udpgen(sc, port, watch, place, handles)
                inst.runs.append({"repeat": r, "load": None, "reference": True, **ref})
                self._step(f"{label} r{r + 1}", ref)
                with self._idnode_datagram(sc, size, place) as (served, port):
                    watch = {"server": served.pids()}
                    self._step(f"{label} r{r + 1} priming")
                    primed = self._udpgen(sc, port, watch, place, handles, prime=True)
                    inst.primes.append(primed)
                    self._step(f"{label} r{r + 1} max", primed)
                    top = self._udpgen(sc, port, watch, place, handles)
                    inst.runs.append({"repeat": r, "load": None, **top})
                    self._step(f"{label} r{r + 1}", top)
                    inst.peak_rss_mb.append(served.peak_rss_mb())
        except (ProcError, OSError, ValueError, subprocess.SubprocessError) as exc:
            inst.error = str(exc)
            self._note(f"{label}: FAILED: {exc}")
        return inst

    @contextlib.contextmanager
    def _idnode_datagram(
        self, sc: Scenario, size: int, place: Placement
    ) -> Iterator[tuple[Served, int]]:
        port = free_datagram_port()
        flags: tuple[str, ...]
        if sc.protocol == "dns-udp":
            flags = ("--dns", f"127.0.0.1:{port}", "--dns-zone", DNS_ZONE)
        else:
            flags = ("--native", f"127.0.0.1:{port}")
        with self._idnode(size, workers=1, cores=place.server, flags=flags) as served:
            yield served, port

    @contextlib.contextmanager
    def _udp_ceiling(
        self, sc: Scenario, size: int, place: Placement
    ) -> Iterator[tuple[int, dict[str, list[int]]]]:
        cmd = [PYTHON, "-m", "bench.ceiling_udp", "--listen", "127.0.0.1:0"]
        if sc.protocol == "dns-udp":
            cmd += ["--protocol", "dns"]
        else:
            cmd += ["--protocol", "native", "--answer", str(self._native_answer(size))]
        served = start_server("native/DNS ceiling", cmd, cores=place.server)
        try:
            yield served.port, {"server": served.pids()}
        finally:
            served.stop()

    def _native_answer(self, size: int) -> Path:
        """idnode's own native reply to the probe key (a TCP frame), which the native
        ceiling then sends, its id and expiration patched, to every request (over UDP split
        into datagrams as idnode splits it)."""
        path = self.work / f"native-answer-{size}.bin"
        if path.exists():
            return path
        handle = dataset.identifier(workload.probe_key(size))
        from resolver.native.client import request
        from resolver.native.envelope import ENVELOPE_SIZE
        from resolver.native.messages import ResolutionRequest
        from resolver.native.writers import encode

        msg = encode(request(ResolutionRequest(handle)))
        probe = self._idnode_datagram(_NATIVE_PROBE, size, placement(1))
        with probe as (_, port), socket.create_connection(("127.0.0.1", port), 10) as sock:
            sock.sendall(msg)
            reply = _read_exactly(sock, ENVELOPE_SIZE)
            reply += _read_exactly(sock, int.from_bytes(reply[16:20]))
        if reply[24:28] != b"\0\0\0\1":  # the header's response code: success
            raise ProcError(f"native probe of {handle} failed: {reply[:64].hex()}")
        path.write_bytes(reply)
        return path

    def _udpgen(
        self,
        sc: Scenario,
        port: int,
        watch: dict[str, list[int]],
        place: Placement,
        handles: Path,
        *,
        prime: bool = False,
    ) -> Result:
        cmd = [PYTHON, "-m", "bench.udpgen", "--protocol", sc.protocol, "--port", str(port)]
        cmd += ["--handles", str(handles), "--zone", DNS_ZONE]
        cmd += ["--outstanding", str(self.s.connections)]
        cmd += ["--duration", str(self.s.duration), "--warmup", str(self.s.warmup)]
        if prime:
            cmd.append("--prime")
        for name, pids in watch.items():
            cmd += ["--watch", f"{name}={','.join(map(str, pids))}"]
        done = run_measured(
            cmd, cores=place.generator, timeout=self.s.warmup + self.s.duration + 180
        )
        if done.returncode != 0:
            raise ProcError(f"udpgen failed: {done.stderr.strip()[-2000:]}")
        result: Result = json.loads(done.stdout)
        return result

    # ------------------------------------------------------------------ import

    def _import(self, sc: Scenario) -> Instance:
        inst = Instance(sc.name, None, 1, Placement([], [], [], "importer not pinned"))
        n = self.s.import_records
        on_pg = sc.store == "postgresql"
        try:
            source = self.work / "import.jsonl"
            dataset.write_file(source, n)
            for r in range(self.s.repeats):
                self._step(f"import {_short(n)} r{r + 1}")
                target = self.work / f"import-{r}"
                store = pgstore.recreate(f"idnode_bench_import_{r}") if on_pg else None
                dataset.init_node(target, store)
                started = time.perf_counter()
                cmd = dataset.idnode("import", str(source), "--data", str(target), "--quiet")
                done = run_measured(cmd, timeout=120 + n / 1_000)
                wall = time.perf_counter() - started
                if done.returncode != 0:
                    raise ProcError(f"idnode import failed: {done.stderr.strip()}")
                count, rate = dataset.parse_import(done.stdout)
                result = {
                    "repeat": r,
                    "load": None,
                    "records": count,
                    "rps": rate,  # the importer's own figure: records/s, start-up excluded
                    "wall_seconds": wall,
                    "cpu_seconds": done.cpu_seconds,
                }
                inst.runs.append(result)
                self._step(f"import {_short(n)} r{r + 1}", result)
                shutil.rmtree(target, ignore_errors=True)
                if on_pg:
                    pgstore.drop(f"idnode_bench_import_{r}")
        except (ProcError, OSError, subprocess.SubprocessError) as exc:
            inst.error = str(exc)
            self._note(f"import: FAILED: {exc}")
        return inst


DNS_ZONE = "id.bench."
_NATIVE_PROBE = Scenario("probe", "", "", kind="datagram", protocol="native-udp")


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ProcError("native probe: the connection closed early")
        buf += chunk
    return buf


def free_datagram_port() -> int:
    """A port free for UDP and TCP alike (the native listener binds both)."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port: int = udp.getsockname()[1]
            with socket.socket() as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port
    raise ProcError("no port free for both UDP and TCP")


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _short(n: int) -> str:
    for unit, scale in (("M", 1_000_000), ("k", 1_000)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)
