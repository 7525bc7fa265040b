"""Small statistics: latency percentiles of one run, median and spread over repeats."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def percentile(ordered: Sequence[float], p: float) -> float:
    """The nearest-rank percentile of an ordered sample (no interpolation: a real value)."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """Count, mean, percentiles and max of latencies given in seconds, reported in ms."""
    ordered = sorted(seconds)
    out = {"count": float(len(ordered))}
    if not ordered:
        return out
    out["mean"] = statistics.fmean(ordered) * 1e3
    for p in PERCENTILES:
        out[f"p{p:g}"] = percentile(ordered, p) * 1e3
    out["max"] = ordered[-1] * 1e3
    return out


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median and min/max over repeats (with few repeats, min/max is the honest spread)."""
    clean = [v for v in values if not math.isnan(v)]
    if not clean:
        return {"median": math.nan, "min": math.nan, "max": math.nan, "n": 0.0}
    return {
        "median": statistics.median(clean),
        "min": min(clean),
        "max": max(clean),
        "n": float(len(clean)),
    }
