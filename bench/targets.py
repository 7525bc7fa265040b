"""The speed idnode must reach, judged against a run's figures. A target that is
missed says by how much; one this machine cannot measure says why (never a silent pass).
The targets are never lowered to fit a result: a miss means profiling the hot path."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

Result = dict[str, Any]


@dataclass
class Target:
    id: str
    title: str
    goal: str
    measured: float
    text: str  # the measured figure, readable
    status: str  # PASS, MISS or N/A
    note: str = ""

    def as_dict(self) -> Result:
        d = asdict(self)
        d["measured"] = None if math.isnan(self.measured) else self.measured
        return d


def _find(summaries: list[Result], scenario: str, size: int | None = None) -> Result | None:
    found = [
        s
        for s in summaries
        if s["scenario"] == scenario and not s["error"] and (size is None or s["size"] == size)
    ]
    if not found:
        return None
    return max(found, key=lambda s: s["size"] or 0)  # the largest registry by default


def _judge(
    tid: str,
    title: str,
    measured: float,
    threshold: float,
    *,
    at_least: bool,
    fmt: str,
    note: str = "",
) -> Target:
    goal = ("≥ " if at_least else "≤ ") + fmt.format(threshold)
    if math.isnan(measured):
        return Target(tid, title, goal, measured, "—", "N/A", note or "not measured in this run")
    text = _apart(fmt, measured, threshold)
    ok = measured >= threshold if at_least else measured <= threshold
    if ok:
        return Target(tid, title, goal, measured, text, "PASS", note)
    if at_least:
        miss = f"{(threshold - measured) / threshold:.0%} short of the target"
    else:
        miss = f"{measured / threshold:.1f}x the limit"
    return Target(tid, title, goal, measured, text, "MISS", f"{miss}; {note}" if note else miss)


def _apart(fmt: str, measured: float, threshold: float) -> str:
    """``measured`` in ``fmt``, with more decimals while it would read as the threshold
    itself (0.795 against 80% is "79.5%", not an "80%" marked MISS)."""
    text = fmt.format(measured)
    digits = re.search(r"\.(\d)", fmt)
    if digits is None or measured == threshold:
        return text
    for places in range(int(digits.group(1)) + 1, int(digits.group(1)) + 4):
        if text != fmt.format(threshold):
            break
        finer = fmt[: digits.start(1)] + str(places) + fmt[digits.end(1) :]
        text = finer.format(measured)
    return text


def _p99(summary: Result | None, load: str) -> float:
    if summary is None:
        return math.nan
    return float(summary["open"].get(load, {}).get("p99", {}).get("median", math.nan))


def _at(summary: Result | None) -> str:
    return f"at {summary['size']:,} identifiers" if summary and summary["size"] else ""


def _size_note(size: int | None, wanted: int) -> str:
    if size is None or size >= wanted:
        return ""
    return f"largest registry measured: {size:,} (the target is at {wanted:,})"


def evaluate(summaries: list[Result], settings: Result) -> list[Target]:
    nan = math.nan
    out = []

    hot = _find(summaries, "hot")
    out.append(
        _judge(
            "hot",
            "HTTP hot resolution, share of the ceiling",
            hot["ratio"] if hot else nan,
            0.80,
            at_least=True,
            fmt="{:.0%}",
            note=_at(hot),
        )
    )
    p99 = _p99(hot, "0.8")
    ceiling_p99 = _p99(_find(summaries, "ceiling"), "0.8")
    # The ceiling's own p99 at the same load shows what the machine allows at all.
    context = "" if math.isnan(ceiling_p99) else f"the ceiling's own: {ceiling_p99:.1f} ms"
    out.append(
        _judge(
            "hot_p99",
            "HTTP hot p99 at 80% of maximum load (open loop)",
            p99,
            5.0,
            at_least=False,
            fmt="{:.1f} ms",
            note="; ".join(n for n in (_at(hot), context) if n),
        )
    )
    warm = _find(summaries, "warm")
    out.append(
        _judge(
            "warm",
            "HTTP warm (Redis only), share of the ceiling",
            warm["ratio"] if warm else nan,
            0.40,
            at_least=True,
            fmt="{:.0%}",
            note=_at(warm),
        )
    )
    cold = _find(summaries, "cold")
    out.append(
        _judge(
            "cold",
            "HTTP cold (store only) at 10 M identifiers, share of the ceiling",
            cold["ratio"] if cold else nan,
            0.25,
            at_least=True,
            fmt="{:.0%}",
            note=_size_note(cold["size"], 10_000_000) if cold else "",
        )
    )
    colds = sorted(
        (s for s in summaries if s["scenario"] == "cold" and not s["error"]),
        key=lambda s: s["size"],
    )
    if len(colds) >= 2:
        small, large = colds[0], colds[-1]
        # Each side as a share of its own paired ceiling runs: the sizes are measured minutes
        # apart, and the machine's speed may have moved meanwhile.
        scaling = large["ratio"] / small["ratio"]
        note = f"cold at {large['size']:,} vs {small['size']:,}"
        if large["size"] < 10_000_000:
            note += " (the target compares 10 M with 10 k)"
    else:
        scaling, note = nan, "needs cold runs at two registry sizes"
    out.append(
        _judge(
            "scaling",
            "Resolution throughput at 10 M vs at 10 k identifiers",
            scaling,
            0.90,
            at_least=True,
            fmt="{:.0%}",
            note=note,
        )
    )
    imp = _find(summaries, "import")
    out.append(
        _judge(
            "import",
            "Bulk import into the embedded store",
            imp["rps"]["median"] if imp else nan,
            20_000,
            at_least=True,
            fmt="{:,.0f} records/s",
        )
    )
    two = _find(summaries, "workers-2")
    one = _find(summaries, "hot", two["size"]) if two else None
    if two and one:
        ratio = two["ratio"] / one["ratio"]  # paired with ceiling runs, as for scaling
        shared = two["placement"]["note"]
        t = _judge(
            "workers",
            "Two workers vs one (generator on its own core)",
            ratio,
            1.7,
            at_least=True,
            fmt="{:.2f}x",
            note=shared,
        )
        if shared and t.status == "MISS":
            # The target presumes a core for the generator; this machine has none to spare.
            t.status = "N/A"
            t.note = f"{shared}, so the target cannot be judged here (measured {t.text})"
        out.append(t)
    else:
        out.append(_judge("workers", "Two workers vs one", nan, 1.7, at_least=True, fmt="{:.2f}x"))
    out.append(_rss(summaries))
    out += _postgresql(summaries)
    out += _datagram(summaries, hot)
    return out


def _postgresql(summaries: list[Result]) -> list[Target]:
    """The PostgreSQL store beside SQLite (issue 16): hot as fast (it never reads the
    store), cold at least half as fast at the same size, import at the embedded target."""
    nan = math.nan
    out = []
    for tid, name, base, goal, title in (
        ("hot_pg", "hot-pg", "hot", 0.90, "HTTP hot on PostgreSQL vs on SQLite"),
        ("cold_pg", "cold-pg", "cold", 0.50, "HTTP cold on PostgreSQL vs on SQLite"),
    ):
        pg = _find(summaries, name)
        lite = _find(summaries, base, pg["size"]) if pg else None
        ratio = pg["ratio"] / lite["ratio"] if pg and lite else nan
        note = f"at {pg['size']:,} identifiers" if pg and lite else f"needs {name} and {base}"
        out.append(_judge(tid, title, ratio, goal, at_least=True, fmt="{:.0%}", note=note))
    imp = _find(summaries, "import-pg")
    out.append(
        _judge(
            "import_pg",
            "Bulk import into PostgreSQL",
            imp["rps"]["median"] if imp else nan,
            20_000,
            at_least=True,
            fmt="{:,.0f} records/s",
        )
    )
    return out


# Issues 14 and 15: each as a share of its own bare server, measured in the same run.
DATAGRAM_TARGETS = (
    ("native-udp", "Native UDP hot resolution, share of its ceiling", 0.85),
    ("native-tcp", "Native TCP hot resolution, share of its ceiling", 0.85),
    ("dns-udp", "DNS UDP hot resolution, share of the dnspython baseline", 0.70),
)


def _datagram(summaries: list[Result], hot: Result | None) -> list[Target]:
    """The native and DNS targets, each note with the ceiling's own rate and the ratio to
    the HTTP hot figure when the run has one (at the same registry size if measured)."""
    out = []
    for name, title, goal in DATAGRAM_TARGETS:
        s = _find(summaries, name)
        notes = []
        if s is not None:
            notes.append(f"{s['rps']['median']:,.0f} req/s")
            ref = s.get("reference_rps")
            if ref:
                notes.append(f"its ceiling {ref['median']:,.0f} req/s")
            http = _find(summaries, "hot", s["size"]) or hot
            if http is not None and http["rps"]["median"] > 0:
                notes.append(f"{s['rps']['median'] / http['rps']['median']:.2f}x HTTP hot")
        out.append(
            _judge(
                name.replace("-", "_"),
                title,
                s["ratio"] if s else math.nan,
                goal,
                at_least=True,
                fmt="{:.0%}",
                note="; ".join(notes),
            )
        )
    return out


def _rss(summaries: list[Result]) -> Target:
    """Worker memory must not grow with the registry. Peak RSS at the largest registry is
    compared with the next size measured below it (10x smaller by default): memory that
    grew with the data would show there. Below ~100 k identifiers the registry is smaller
    than SQLite's fixed page caches (2 MiB per connection), so a first step up is expected
    and is shown in the note, not judged."""
    worst, note = math.nan, "needs a scenario at two registry sizes"
    for name in ("cold", "hot"):
        runs = sorted(
            (s for s in summaries if s["scenario"] == name and not s["error"]),
            key=lambda s: s["size"],
        )
        if len(runs) >= 2 and runs[-2]["peak_rss_mb"] > 0:
            growth = runs[-1]["peak_rss_mb"] / runs[-2]["peak_rss_mb"]
            if math.isnan(worst) or growth > worst:
                worst = growth
                curve = ", ".join(f"{s['peak_rss_mb']:.0f} at {s['size']:,}" for s in runs)
                note = f"{name}, MiB per worker: {curve}"
    return _judge(
        "rss",
        "Worker peak RSS, largest registry vs the next size down",
        worst,
        1.10,
        at_least=False,
        fmt="{:.2f}x",
        note=note,
    )
