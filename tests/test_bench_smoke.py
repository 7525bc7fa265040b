"""The benchmark's smoke mode, so the harness cannot rot: a seconds-long run of the ceiling,
the hot scenario and the bulk import must write the whole report (JSON, Markdown, PNG)
with positive figures. Speed is never asserted here: the full run judges it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.analysis import warnings
from bench.cli import parse_size
from bench.report import _versus_sqlite
from bench.scenarios import SCENARIOS, select
from bench.stats import latency_summary, percentile, spread
from bench.targets import evaluate
from tests.procs import ROOT, clean_env

PNG = b"\x89PNG\r\n\x1a\n"


def test_smoke_run_writes_the_whole_report(tmp_path: Path) -> None:
    out = tmp_path / "report"
    args = ["--smoke", "--no-progress", "--out", str(out), "--data-root", str(tmp_path / "data")]
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"report: {out}/summary.md" in done.stdout
    # One registry size: the scaling chart says so instead of matplotlib warning of it.
    assert "Warning" not in done.stderr, done.stderr[-3000:]

    results = json.loads((out / "results.json").read_text())
    assert results["mode"] == "smoke"
    assert results["answer_bytes"] > 0
    # The machine's own steadiness, probed on the server's and the generator's core.
    place = results["settings"]["placement"]
    cores = sorted({*place["server"], *place["generator"]})
    assert sorted(p["core"] for p in results["steadiness"]) == cores
    assert all(
        p["repeats"] > 0 and p["p99_ms"] >= p["median_ms"] > 0 for p in results["steadiness"]
    )
    by_name = {inst["scenario"]: inst for inst in results["instances"]}
    assert set(by_name) == {"ceiling", "hot", "import"}
    for inst in results["instances"]:
        assert inst["error"] is None, inst["error"]
        assert inst["runs"], inst["scenario"]
        for run in inst["runs"]:
            assert run["rps"] > 0
    hot = by_name["hot"]
    assert {run["load"] for run in hot["runs"]} == {None, 0.8}
    fixed = next(run for run in hot["runs"] if run["load"] == 0.8)
    assert fixed["mode"] == "open" and fixed["generator"] == "own"
    assert fixed["latency_ms"]["p99"] > 0 and fixed["send_lag_ms"]["count"] > 0
    assert all(mb > 0 for mb in hot["peak_rss_mb"][0])
    assert hot["metrics"][0]["local_hits_total"] > 0  # the hot tier really served it

    summary = {s["scenario"]: s for s in results["summary"]}
    assert summary["ceiling"]["ratio"] == 1.0
    assert summary["hot"]["rps"]["median"] > 0 and summary["hot"]["ratio"] > 0
    # Its ratio is to the ceiling run made just before it, not to the first ceiling's.
    (ref,) = [run for run in hot["runs"] if run.get("reference")]
    (top,) = [run for run in hot["runs"] if run["load"] is None and not run.get("reference")]
    assert ref["rps"] > 0 and ref["repeat"] == top["repeat"] == 0
    assert summary["hot"]["ratio"] == pytest.approx(top["rps"] / ref["rps"])
    assert summary["hot"]["open"]["0.8"]["p99"]["median"] > 0
    assert summary["import"]["rps"]["median"] > 0
    targets = {t["id"]: t for t in results["targets"]}
    assert {"hot", "hot_p99", "warm", "cold", "scaling", "import", "workers", "rss"} <= set(targets)
    assert all(t["status"] in ("PASS", "MISS", "N/A") for t in targets.values())
    assert targets["warm"]["status"] == "N/A"  # not run in smoke mode: said, not hidden
    assert "verdict" in results["generator_check"]

    md = (out / "summary.md").read_text()
    assert "CPU steadiness before the scenarios" in md
    assert "| target | goal | measured | status |" in md and "| hot | 2 k |" in md
    for chart in results["charts"]:
        assert (out / chart).read_bytes().startswith(PNG)
    assert len(results["charts"]) == 3


def test_scenario_selection_always_includes_the_ceiling() -> None:
    assert [s.name for s in select(["cold"], smoke=False)] == ["ceiling", "cold"]
    assert [s.name for s in select(None, smoke=True)] == ["ceiling", "hot", "import"]
    assert len(select(None, smoke=False)) == len(SCENARIOS)
    cold = next(s for s in SCENARIOS if s.name == "cold")
    assert cold.sizes_of([1_000_000, 10_000]) == [10_000, 1_000_000]


def test_sizes_and_statistics() -> None:
    assert parse_size("10k") == 10_000 and parse_size("1M") == 1_000_000
    assert parse_size("2500") == 2_500
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 99) == 4.0
    assert spread([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3.0}
    lat = latency_summary([0.001, 0.002, 0.003])
    assert lat["p50"] == 2.0 and lat["max"] == 3.0


def _cold(size: int, rps: float, ratio: float) -> dict[str, Any]:
    return {
        "scenario": "cold",
        "size": size,
        "workers": 1,
        "error": None,
        "rps": {"median": rps, "min": rps, "max": rps, "n": 1.0},
        "ratio": ratio,
        "peak_rss_mb": 90.0,
        "open": {},
        "placement": {"note": ""},
    }


def test_scaling_compares_shares_of_paired_ceilings() -> None:
    """The machine slowed down between the sizes (raw req/s fell by half) while each size
    kept its share of the ceiling measured next to it: the scaling target sees no loss."""
    summaries = [_cold(10_000, 8_000.0, 0.30), _cold(10_000_000, 4_000.0, 0.285)]
    targets = {t.id: t for t in evaluate(summaries, {})}
    assert targets["scaling"].measured == pytest.approx(0.95)
    assert targets["scaling"].status == "PASS"


def test_a_ratio_a_hair_off_its_target_does_not_read_as_the_target() -> None:
    summaries = [_cold(10_000, 8_000.0, 0.30), _cold(10_000_000, 7_000.0, 0.2685)]
    scaling = {t.id: t for t in evaluate(summaries, {})}["scaling"]
    assert scaling.status == "MISS" and scaling.text == "89.5%"  # not "90%" (the goal)
    summaries = [_cold(10_000, 8_000.0, 0.30), _cold(10_000_000, 7_000.0, 0.24)]
    scaling = {t.id: t for t in evaluate(summaries, {})}["scaling"]
    assert scaling.status == "MISS" and scaling.text == "80%"  # far off: as before


def _probe(core: int, slow_share: float) -> dict[str, Any]:
    return {
        "core": core,
        "repeats": 1000,
        "median_ms": 1.0,
        "p99_ms": 2.0,
        "max_ms": 9.0,
        "slow_share": slow_share,
    }


@pytest.mark.parametrize(("shares", "warned"), [((0.0, 0.005), False), ((0.0, 0.03), True)])
def test_an_unsteady_machine_is_named_in_the_warnings(
    shares: tuple[float, float], warned: bool
) -> None:
    results = {"instances": [], "steadiness": [_probe(c, s) for c, s in enumerate(shares)]}
    notes = warnings(results, [])
    assert any("slowed its cores down by itself" in n for n in notes) == warned
    if warned:
        assert "3.0% of a fixed computation's repeats on core 1" in notes[0]


def test_postgresql_scenarios_are_judged_beside_their_sqlite_namesakes() -> None:
    cold, cold_pg = _cold(1_000_000, 8_000.0, 0.30), _cold(1_000_000, 5_000.0, 0.18)
    cold_pg["scenario"] = "cold-pg"
    imports = [
        {"scenario": "import", "size": None, "error": None, "rps": {"median": 24_000.0}},
        {"scenario": "import-pg", "size": None, "error": None, "rps": {"median": 21_000.0}},
    ]
    targets = {t.id: t for t in evaluate([cold, cold_pg, *imports], {})}
    assert targets["cold_pg"].measured == pytest.approx(0.6)  # shares of paired ceilings
    assert targets["cold_pg"].status == "PASS"
    assert targets["import_pg"].status == "PASS"
    assert targets["hot_pg"].status == "N/A"  # not run: said, not hidden
    table = "\n".join(_versus_sqlite([cold, cold_pg, *imports]))
    assert "| cold-pg | cold | 1 M | 0.18 | 0.30 | x ceiling | 60% |" in table
    assert "| import-pg | import | — | 21,000.00 | 24,000.00 | records/s | 88% |" in table
    assert {s.name for s in SCENARIOS if s.store == "postgresql"} == {
        "hot-pg",
        "warm-pg",
        "cold-pg",
        "cold-pg-2",
        "import-pg",
    }
