"""How steady the machine's CPU is, measured before the scenarios: one fixed computation
(~1 ms) repeated for a few seconds on each core, alone on that core, and the spread of its
durations. On a dedicated machine the slowest repeats take barely longer than the median;
on a shared VM the host takes cores away for tens to hundreds of milliseconds, and any
server then falls behind a fixed request rate whatever its code does. The summary shows the
figures so a fixed-rate latency can be read against what the machine itself allowed."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from bench.procs import pinned

# Runs in a pinned child so the bench's own process (its threads, its progress bar) cannot
# disturb it. Prints JSON: the repeats' durations in ms, summarised.
_PROBE = """
import json, time
def work():
    s = 0
    for i in range(20000):
        s += i
    return s
work()
xs = []
end = time.perf_counter() + {seconds}
while time.perf_counter() < end:
    t = time.perf_counter()
    work()
    xs.append(time.perf_counter() - t)
xs.sort()
med = xs[len(xs) // 2]
print(json.dumps({{
    "repeats": len(xs),
    "median_ms": med * 1e3,
    "p99_ms": xs[int(len(xs) * 0.99)] * 1e3,
    "max_ms": xs[-1] * 1e3,
    "slow_share": sum(1 for x in xs if x > {slow} * med) / len(xs),
}}))
"""

SLOW = 1.5  # a repeat this many times its median counts as slowed down by the machine


def probe(core: int, seconds: float = 3.0) -> dict[str, Any] | None:
    """The spread of one core's speed, or None where the probe could not run."""
    cmd = pinned([sys.executable, "-c", _PROBE.format(seconds=seconds, slow=SLOW)], [core])
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
        result: dict[str, Any] = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    result["core"] = core
    return result


def describe(probes: list[dict[str, Any]]) -> str:
    """One sentence for the summary."""
    parts = [
        f"core {p['core']}: p99 {p['p99_ms'] / p['median_ms']:.1f}x the median, "
        f"{p['slow_share']:.1%} of repeats over {SLOW:g}x"
        for p in probes
    ]
    return (
        "CPU steadiness before the scenarios (a ~1 ms computation repeated for a few "
        f"seconds on each core alone): {'; '.join(parts)}."
    )


def unsteady(probes: list[dict[str, Any]]) -> bool:
    """Whether the machine itself slowed down often enough to move a p99."""
    return any(p["slow_share"] > 0.01 for p in probes)
