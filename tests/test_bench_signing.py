"""The signing-throughput bench runs and reports a positive figure per algorithm (speed is
judged by the full bench, never here)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.signing import main


def test_signing_bench_reports_every_algorithm(tmp_path: Path) -> None:
    out = tmp_path / "signing.json"
    assert main(["--records", "20", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert set(figures) == {"EdDSA", "ES256", "RS256"}
    assert all(f["records_per_s"] > 0 and f["signatures_per_s"] > 0 for f in figures.values())
