"""From raw runs to figures: median and spread per scenario, ratios to the ceiling, the
generator check, and warnings about anything that makes a figure doubtful (a saturated
generator, a server that was not the bottleneck, errors, an unsustained rate, other load on
the machine)."""

from __future__ import annotations

import math
from typing import Any

from bench import steadiness
from bench.scenarios import is_import
from bench.stats import spread

Result = dict[str, Any]

GENERATOR_BUSY = 0.90  # of its core: above this the generator may limit the run
SERVER_IDLE = 0.85  # of its cores: below this in a closed-loop run, something else limits
FOREIGN_NOISE = 0.15  # cores used by other processes during a run
SUSTAINED = 0.97  # achieved / scheduled rate below this: the rate was not sustained


def closed_runs(inst: Result) -> list[Result]:
    """The maximum's runs of the scenario itself (not the generator check's or the paired
    ceiling runs)."""
    return [
        r
        for r in inst["runs"]
        if r.get("load") is None and not r.get("check") and not r.get("reference")
    ]


def paired_ratios(inst: Result) -> list[float]:
    """Each repeat's maximum divided by the ceiling run made just before it."""
    refs = {r["repeat"]: r["rps"] for r in inst["runs"] if r.get("reference")}
    return [r["rps"] / refs[r["repeat"]] for r in closed_runs(inst) if refs.get(r["repeat"])]


def foreign_cpu(run: Result) -> float:
    """Cores' busy time not spent by the server, the generator or Redis."""
    cpu = run.get("cpu")
    if not cpu or not cpu.get("cores_busy"):
        return math.nan
    ours: float = cpu["generator"] + sum(cpu["watched"].values())
    busy: float = sum(cpu["cores_busy"].values())
    return max(0.0, busy - ours)


def _cpu(run: Result, who: str) -> float:
    cpu = run.get("cpu") or {}
    if who == "generator":
        return float(cpu.get("generator", math.nan))
    return float((cpu.get("watched") or {}).get(who, math.nan))


def ceiling_rps(instances: list[Result]) -> float:
    for inst in instances:
        if inst["scenario"] == "ceiling" and not inst["error"]:
            return float(spread([r["rps"] for r in closed_runs(inst)])["median"])
    return math.nan


def summarise(results: Result) -> list[Result]:
    instances: list[Result] = results["instances"]
    ceiling = ceiling_rps(instances)
    out = []
    for inst in instances:
        s: Result = {"scenario": inst["scenario"], "size": inst["size"], "workers": inst["workers"]}
        s["error"] = inst["error"]
        closed = closed_runs(inst)
        if is_import(inst["scenario"]):
            s["rps"] = spread([r["rps"] for r in closed])
            s["wall_seconds"] = spread([r["wall_seconds"] for r in closed])
            s["records"] = closed[0]["records"] if closed else 0
            out.append(s)
            continue
        s["rps"] = spread([r["rps"] for r in closed])
        pairs = paired_ratios(inst)
        if pairs:  # drift-proof: each repeat against its own neighbouring ceiling run
            s["ratio_spread"] = spread(pairs)
            s["ratio"] = s["ratio_spread"]["median"]
            s["reference_rps"] = spread([r["rps"] for r in inst["runs"] if r.get("reference")])
        else:  # the ceiling itself, or results from before paired runs
            s["ratio"] = s["rps"]["median"] / ceiling if ceiling > 0 else math.nan
        s["server_cpu"] = spread([_cpu(r, "server") for r in closed])
        s["generator_cpu"] = spread([_cpu(r, "generator") for r in closed])
        s["foreign_cpu"] = spread([foreign_cpu(r) for r in inst["runs"]])
        s["errors"] = sum(int(r.get("errors", 0)) for r in inst["runs"])
        rss = [max(per_repeat) for per_repeat in inst["peak_rss_mb"] if per_repeat]
        s["peak_rss_mb"] = max(rss) if rss else math.nan
        s["placement"] = inst["placement"]
        loads = sorted({r["load"] for r in inst["runs"] if r.get("load") is not None})
        s["open"] = {}
        for load in loads:
            runs = [r for r in inst["runs"] if r.get("load") == load]
            point = {
                "target": spread([r["target_rate"] for r in runs]),
                "achieved": spread([r["rps"] for r in runs]),
                "timeouts": sum(int(r.get("timeouts", 0)) for r in runs),
                "lag_p99": spread([r["send_lag_ms"].get("p99", math.nan) for r in runs]),
            }
            for p in ("p50", "p90", "p99", "p99.9", "max"):
                point[p] = spread([r["latency_ms"].get(p, math.nan) for r in runs])
            for kind in sorted({k for r in runs for k in r.get("by_kind", {})}):
                point[f"{kind}_p99"] = spread(
                    [r["by_kind"][kind].get("p99", math.nan) for r in runs if kind in r["by_kind"]]
                )
            s["open"][f"{load:g}"] = point
        if inst["metrics"]:
            last = inst["metrics"][-1]
            s["metrics"] = last
        out.append(s)
    return out


def generator_check(results: Result) -> Result:
    """Evidence that the load generators were not the bottleneck."""
    inst = next((i for i in results["instances"] if i["scenario"] == "ceiling"), None)
    if inst is None or inst["error"]:
        return {"verdict": "not measured (no ceiling run)"}
    primary = closed_runs(inst)
    own = [r for r in inst["runs"] if r.get("check")] or [
        r for r in primary if r.get("generator") == "own"
    ]
    out: Result = {
        "primary": primary[0]["generator"] if primary else "?",
        "primary_rps": spread([r["rps"] for r in primary]),
        "primary_cpu": spread([_cpu(r, "generator") for r in primary]),
        "server_cpu": spread([_cpu(r, "server") for r in primary]),
        "own_rps": spread([r["rps"] for r in own]),
        "own_cpu": spread([_cpu(r, "generator") for r in own]),
    }
    # At 100% of its core the generator would send this much: its headroom over the server.
    capacity = [r["rps"] / _cpu(r, "generator") for r in own if _cpu(r, "generator") > 0]
    out["own_capacity_rps"] = spread(capacity)
    top = max(
        (r for r in inst["runs"] if r.get("load") is not None),
        key=lambda r: r["load"],
        default=None,
    )
    if top is not None:
        out["own_open_loop"] = {
            "load": top["load"],
            "target_rate": top["target_rate"],
            "achieved": top["rps"],
            "send_lag_p99_ms": top["send_lag_ms"].get("p99", math.nan),
            "cpu": _cpu(top, "generator"),
        }
    out["own_vs_primary"] = out["own_rps"]["median"] / out["primary_rps"]["median"]
    # The verdict rests on CPU, which is steady: the server's core saturated while the
    # generator's was not. Rates alone vary run to run with the machine's speed.
    if out["own_cpu"]["max"] < GENERATOR_BUSY and out["server_cpu"]["min"] >= SERVER_IDLE:
        capacity_x = out["own_capacity_rps"]["median"] / out["primary_rps"]["median"]
        out["verdict"] = (
            f"not the bottleneck: the server's core was {out['server_cpu']['median']:.0%} "
            f"busy while the project's generator used {out['own_cpu']['median']:.0%} of its "
            f"own (it could send ~{out['own_capacity_rps']['median']:,.0f} req/s, "
            f"{capacity_x:.1f}x the ceiling)"
        )
    else:
        out["verdict"] = "DOUBTFUL: the generator may limit the runs (see the figures)"
    return out


def _per_request_us(runs: list[Result], who: str) -> Result:
    return spread([_cpu(r, who) * 1e6 / r["rps"] for r in runs if r["rps"] > 0])


def datagram_check(results: Result) -> list[Result]:
    """Per native/DNS scenario: CPU per request of idnode, of its ceiling and of the
    generator driving the ceiling, and the rate the generator could send at 100% of its
    core — which must exceed the ceiling's for the ceiling to be the server's limit."""
    out = []
    for inst in results["instances"]:
        refs = [r for r in inst["runs"] if r.get("reference") and r.get("protocol")]
        if inst["error"] or not refs:
            continue
        closed = closed_runs(inst)
        out.append(
            {
                "scenario": inst["scenario"],
                "server_us": _per_request_us(closed, "server"),
                "ceiling_us": _per_request_us(refs, "server"),
                "generator_us": _per_request_us(refs, "generator"),
                "generator_capacity_rps": spread(
                    [r["rps"] / _cpu(r, "generator") for r in refs if _cpu(r, "generator") > 0]
                ),
                "ceiling_rps": spread([r["rps"] for r in refs]),
            }
        )
    return out


def warnings(results: Result, summaries: list[Result]) -> list[str]:
    notes: list[str] = []
    probes = results.get("steadiness") or []
    if steadiness.unsteady(probes):
        worst = max(probes, key=lambda p: p["slow_share"])
        notes.append(
            f"the machine slowed its cores down by itself: {worst['slow_share']:.1%} of a "
            f"fixed computation's repeats on core {worst['core']} took over "
            f"{steadiness.SLOW:g}x their median (p99 {worst['p99_ms'] / worst['median_ms']:.1f}x)"
            ": fixed-rate latencies at high load measure the machine as much as the server "
            "(compare the ceiling's own)"
        )
    for inst in results["instances"]:
        label = inst["scenario"] + (f" @{inst['size']:,}" if inst["size"] else "")
        if inst["error"]:
            notes.append(f"{label}: failed: {inst['error'].splitlines()[0]}")
            continue
        if is_import(inst["scenario"]):
            continue
        notes += _run_warnings(label, inst)
    for s in summaries:
        label = s["scenario"] + (f" @{s['size']:,}" if s["size"] else "")
        noise = s.get("foreign_cpu", {}).get("median", math.nan)
        if noise > FOREIGN_NOISE:
            notes.append(f"{label}: other processes used ~{noise:.2f} cores meanwhile (noise)")
        m = s.get("metrics") or {}
        if s["scenario"] == "warm" and m and not m.get("redis_hits_total"):
            notes.append(f"{label}: no Redis hits: the run did not measure the Redis tier")
        if s["scenario"] == "warm" and m.get("breaker_opens_total"):
            notes.append(
                f"{label}: Redis calls failed ({m.get('redis_errors_total', 0):.0f} errors, "
                f"breaker opened {m['breaker_opens_total']:.0f}x): part of it was served by "
                "the store"
            )
        if s["scenario"] == "redis-down" and m and m.get("redis_up"):
            notes.append(f"{label}: Redis reported up: the run did not measure an outage")
        if s["scenario"] == "hot" and m and m.get("local_hits_total", 0) < m.get("misses_total", 0):
            notes.append(f"{label}: more misses than local hits: not a hot-tier run")
    return notes


def _run_warnings(label: str, inst: Result) -> list[str]:
    """One line per kind of doubt about an instance's runs, with the worst case."""
    notes = []
    cores = max(1, len(inst["placement"]["server"]))
    busy = [r for r in inst["runs"] if _cpu(r, "generator") > GENERATOR_BUSY]
    if busy:
        worst = max(_cpu(r, "generator") for r in busy)
        notes.append(
            f"{label}: the generator used up to {worst:.0%} of its core in {len(busy)} run(s)"
        )
    failed = [r for r in inst["runs"] if r.get("errors")]
    if failed:
        total = sum(int(r["errors"]) for r in failed)
        notes.append(f"{label}: {total} failed requests in {len(failed)} run(s)")
    closed = closed_runs(inst)
    idle = [r for r in closed if _cpu(r, "server") < SERVER_IDLE * cores]
    if idle and not inst["placement"]["note"]:
        least = min(_cpu(r, "server") for r in idle)
        notes.append(
            f"{label}: at its maximum the server used as little as {least:.2f} of its "
            f"{cores} core(s): something else limited it"
        )
    fixed = [r for r in inst["runs"] if r.get("load") is not None]
    short = [r for r in fixed if r["rps"] < SUSTAINED * r["target_rate"]]
    if short:
        worst = min(short, key=lambda r: r["rps"] / r["target_rate"])
        notes.append(
            f"{label}: {len(short)} of {len(fixed)} fixed-rate runs fell behind their schedule "
            f"(worst: {worst['rps']:,.0f} of {worst['target_rate']:,.0f} req/s at "
            f"{worst['load']:.0%}); their latencies include the backlog"
        )
    timeouts = sum(int(r.get("timeouts", 0)) for r in fixed)
    if timeouts:
        notes.append(f"{label}: {timeouts} requests still unanswered when their runs ended")
    return notes
