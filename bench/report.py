"""The report: ``results.json`` (every figure, every run), ``summary.md`` (the tables
bench/README.md shows) and PNG charts (throughput per scenario, latency percentiles by load, and
throughput and memory by registry size)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench import steadiness
from bench.analysis import datagram_check, generator_check, summarise, warnings
from bench.scenarios import is_import, sqlite_namesake
from bench.targets import evaluate

Result = dict[str, Any]
CHARTS = ("throughput.png", "latency.png", "scaling.png")


def _size(n: int | None) -> str:
    if not n:
        return "—"
    for unit, scale in (("M", 1_000_000), ("k", 1_000)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n:,}"


def _rng(s: Result, fmt: str = "{:,.0f}") -> str:
    """``median (min-max)``, or the median alone from a single repeat."""
    if not s or s.get("n", 0) == 0 or math.isnan(s["median"]):
        return "—"
    if s["n"] <= 1 or s["min"] == s["max"]:
        return str(fmt.format(s["median"]))
    return f"{fmt.format(s['median'])} ({fmt.format(s['min'])}-{fmt.format(s['max'])})"


def _one(value: float) -> Result:
    return {"median": value, "min": value, "max": value, "n": 1.0}


def _label(s: Result) -> str:
    return str(s["scenario"]) + (f" @{_size(s['size'])}" if s["size"] else "")


def analyse(results: Result) -> Result:
    """Add the derived figures (summaries, targets, generator check, warnings)."""
    summaries = summarise(results)
    results["summary"] = summaries
    results["targets"] = [t.as_dict() for t in evaluate(summaries, results["settings"])]
    results["generator_check"] = generator_check(results)
    results["datagram_check"] = datagram_check(results)
    results["warnings"] = warnings(results, summaries)
    return results


def markdown(results: Result) -> str:
    m = results["machine"]
    st = results["settings"]
    place = st["placement"]
    lines = [
        f"Run {results['started']} ({results['mode']}): `{results['command']}`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}, "
        f"Python {m['python']}; load average at start {' '.join(m['loadavg_at_start'])}.",
        f"Method: server pinned to core(s) {_cores(place['server'])}, load generator "
        f"({st['generator']} for the maximum, the project's own for fixed rates) on "
        f"{_cores(place['generator'])}, Redis on {_cores(place['redis'])}. Each figure: "
        f"median (min-max) of {st['repeats']} repeat(s) on a fresh server, "
        f"{st['duration']:g} s measured after {st['warmup']:g} s warm-up; "
        f"{st['connections']} connections for the maximum (closed loop), "
        f"{st['open_connections']} for fixed rates (open loop; latency from each request's "
        "scheduled send time). Resolution answers are "
        f"{results.get('answer_bytes', 0)} bytes; the ceiling sends the same body. "
        "x ceiling: each repeat's maximum divided by a ceiling run made just before it "
        "(median (min-max) of those ratios), so drift in the machine's speed cancels out.",
        *([steadiness.describe(results["steadiness"])] if results.get("steadiness") else []),
        "",
        "**Targets**",
        "",
        "| target | goal | measured | status |",
        "|---|---|---|---|",
    ]
    for t in results["targets"]:
        status = f"**{t['status']}**" if t["status"] != "PASS" else t["status"]
        note = f" — {t['note']}" if t["note"] else ""
        lines.append(f"| {t['title']} | {t['goal']} | {t['text']} | {status}{note} |")
    lines += [
        "",
        "**Throughput** (closed loop: the maximum)",
        "",
        "| scenario | identifiers | req/s | x ceiling | server CPU | generator CPU "
        "| peak RSS/worker |",
        "|---|---|---|---|---|---|---|",
    ]
    http = [s for s in results["summary"] if not is_import(s["scenario"])]
    for s in http:
        if s["error"]:
            lines.append(f"| {s['scenario']} | {_size(s['size'])} | failed | | | | |")
            continue
        lines.append(
            f"| {s['scenario']} | {_size(s['size'])} | {_rng(s['rps'])} | "
            f"{_rng(s.get('ratio_spread') or _one(s['ratio']), '{:.2f}')} | "
            f"{_rng(s['server_cpu'], '{:.0%}')} | "
            f"{_rng(s['generator_cpu'], '{:.0%}')} | {_mb(s['peak_rss_mb'])} |"
        )
    lines += [
        "",
        "**Latency at fixed rates** (open loop, ms from the scheduled send time)",
        "",
        "| scenario | identifiers | load | req/s served | p50 | p99 | p99.9 | writes p99 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in http:
        for load, p in (s.get("open") or {}).items():
            writes = _rng(p.get("write_p99", {}), "{:.1f}") if "write_p99" in p else ""
            lines.append(
                f"| {s['scenario']} | {_size(s['size'])} | {float(load):.0%} | "
                f"{_rng(p['achieved'])} | {_rng(p['p50'], '{:.1f}')} | "
                f"{_rng(p['p99'], '{:.1f}')} | {_rng(p['p99.9'], '{:.1f}')} | {writes} |"
            )
    for s in results["summary"]:
        if is_import(s["scenario"]) and not s["error"]:
            into = "PostgreSQL database" if s["scenario"].endswith("-pg") else "store"
            lines += [
                "",
                f"**Bulk import** ({s['scenario']}): {_rng(s['rps'])} records/s "
                f"({s['records']:,} records from a JSON Lines file into a fresh {into}, "
                "`idnode import --quiet`, its own figure).",
            ]
    lines += _versus_sqlite(results["summary"])
    if results.get("datasets"):
        built = ", ".join(
            f"{_size(int(n))}: {d['import_rate']:,.0f} records/s, {d['disk_mb']:,.0f} MB"
            for n, d in sorted(results["datasets"].items(), key=lambda kv: int(kv[0]))
        )
        lines += ["", f"Registries (bulk-imported once, reused while unchanged): {built}."]
    g = results["generator_check"]
    lines += ["", f"**Generator check** (against the ceiling): {g['verdict']}."]
    if "own_rps" in g:
        lines[-1] += (
            f" {g['primary']}: {_rng(g['primary_rps'])} req/s at "
            f"{_rng(g['primary_cpu'], '{:.0%}')} of a core; the project's generator: "
            f"{_rng(g['own_rps'])} req/s at {_rng(g['own_cpu'], '{:.0%}')}."
        )
    if results.get("datagram_check"):
        lines += [
            "",
            "**Native and DNS: CPU per request** (µs of a core; the generator's against the "
            "scenario's own ceiling, and the rate it could send with its core to itself)",
            "",
            "| scenario | idnode | ceiling | generator | generator capacity | ceiling req/s |",
            "|---|---|---|---|---|---|",
        ]
        for d in results["datagram_check"]:
            lines.append(
                f"| {d['scenario']} | {_rng(d['server_us'], '{:.1f}')} | "
                f"{_rng(d['ceiling_us'], '{:.1f}')} | {_rng(d['generator_us'], '{:.1f}')} | "
                f"{_rng(d['generator_capacity_rps'])} | {_rng(d['ceiling_rps'])} |"
            )
    if place.get("note"):
        lines += ["", f"Placement: {place['note']}."]
    two = next((s for s in http if s["workers"] > 1 and not s["error"]), None)
    if two is not None:
        lines += [
            "",
            f"Two workers: server on cores {_cores(two['placement']['server'])}, generator on "
            f"{_cores(two['placement']['generator'])}"
            + (f" ({two['placement']['note']})." if two["placement"]["note"] else "."),
        ]
    if results["warnings"]:
        lines += ["", "**Warnings**", ""] + [f"- {w}" for w in results["warnings"]]
    return "\n".join(lines) + "\n"


def _versus_sqlite(summaries: list[Result]) -> list[str]:
    """PostgreSQL scenarios beside their SQLite namesakes at the same size: each side's
    share of its own paired ceiling runs (drift-proof), records/s for imports."""
    by = {(s["scenario"], s["size"]): s for s in summaries if not s["error"]}
    rows = []
    for (name, size), pg in by.items():
        base = sqlite_namesake(name)
        lite = by.get((base, size)) if base else None
        if lite is None:
            continue
        if is_import(name):
            a, b, unit = pg["rps"]["median"], lite["rps"]["median"], "records/s"
        else:
            a, b, unit = pg.get("ratio", math.nan), lite.get("ratio", math.nan), "x ceiling"
        rows.append(
            f"| {name} | {base} | {_size(size)} | {a:,.2f} | {b:,.2f} | {unit} | {a / b:.0%} |"
        )
    if not rows:
        return []
    return [
        "",
        "**PostgreSQL beside SQLite** (the same registry, copied; same settings)",
        "",
        "| PostgreSQL | SQLite | identifiers | PostgreSQL | SQLite | unit | ratio |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]


def _cores(cores: list[int]) -> str:
    return ",".join(map(str, cores)) if cores else "any"


def _mb(v: float) -> str:
    return "—" if math.isnan(v) else f"{v:.0f} MiB"


def charts(results: Result, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    paths = []
    http = [s for s in results["summary"] if not is_import(s["scenario"]) and not s["error"]]

    # Throughput per scenario, with the min-max spread and the ceiling as a reference line.
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(http) + 1.5))
    labels = [_label(s) for s in http]
    med = [s["rps"]["median"] for s in http]
    err = [
        [s["rps"]["median"] - s["rps"]["min"] for s in http],
        [s["rps"]["max"] - s["rps"]["median"] for s in http],
    ]
    ax.barh(labels, med, xerr=err, color="#4c78a8", capsize=3)
    ceiling = next((s for s in http if s["scenario"] == "ceiling"), None)
    if ceiling is not None:
        ax.axvline(ceiling["rps"]["median"], color="#e45756", linestyle="--", label="ceiling")
        for y, s in enumerate(http):
            ax.text(s["rps"]["max"], y, f"  {s['ratio']:.2f}x", va="center", fontsize=8)
        ax.legend(loc="lower right")
    ax.invert_yaxis()
    ax.set_xlabel("requests/s (closed loop, median; bars: min-max)")
    ax.set_title("idnode throughput per scenario")
    fig.tight_layout()
    paths.append(_save(fig, out / CHARTS[0]))

    # Latency percentiles against offered load.
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, pct in zip(axes, ("p50", "p99"), strict=True):
        for s in http:
            points = sorted((float(k), v) for k, v in (s.get("open") or {}).items())
            if points:
                xs = [x * 100 for x, _ in points]
                ys = [v[pct]["median"] for _, v in points]
                ax.plot(xs, ys, marker="o", label=_label(s))
        ax.set_title(f"{pct} latency (from scheduled send)")
        ax.set_xlabel("load, % of the scenario's maximum")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("ms")
    axes[1].axhline(5.0, color="#e45756", linestyle="--", linewidth=1, label="5 ms target")
    axes[1].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    paths.append(_save(fig, out / CHARTS[1]))

    # Throughput and memory by registry size.
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for name in sorted({s["scenario"] for s in http if s["size"]}):
        runs = sorted((s for s in http if s["scenario"] == name and s["size"]), key=_sz)
        if len(runs) < 2:
            continue  # one size says nothing about scaling
        xs = [s["size"] for s in runs]
        ax1.plot(xs, [s["rps"]["median"] for s in runs], marker="o", label=name)
        ax2.plot(xs, [s["peak_rss_mb"] for s in runs], marker="o", label=name)
    for ax, title in ((ax1, "throughput (req/s)"), (ax2, "peak RSS per worker (MiB)")):
        ax.set_xscale("log")
        ax.set_xlabel("identifiers in the registry")
        ax.set_title(title)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        else:  # e.g. a run at one registry size
            ax.text(0.5, 0.5, "no scenario ran at two sizes", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    paths.append(_save(fig, out / CHARTS[2]))
    plt.close("all")
    return paths


def _sz(s: Result) -> int:
    return int(s["size"])


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=100)
    return path


def write(results: Result, out: Path) -> list[Path]:
    """Analyse ``results`` and write the JSON, the Markdown summary and the charts."""
    out.mkdir(parents=True, exist_ok=True)
    analyse(results)
    results["charts"] = [p.name for p in charts(results, out)]
    text = json.dumps(_finite(results), indent=1, allow_nan=False)
    (out / "results.json").write_text(text + "\n")
    (out / "summary.md").write_text(markdown(results))
    return [out / "results.json", out / "summary.md", *(out / c for c in results["charts"])]


def _finite(obj: Any) -> Any:
    """NaN (a figure that was not measured) as null: strict JSON has no NaN."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj
