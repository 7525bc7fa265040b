"""Closed-loop maximum throughput with ``wrk`` when it is installed: a C generator that
needs a fraction of the CPU the server does, so it cannot be the bottleneck. (wrk has no
fixed-rate mode; open-loop runs always use :mod:`bench.loadgen`.)

A Lua script sends the run's precomputed requests in turn and prints wrk's own summary and
latency percentiles as one JSON line, so nothing depends on wrk's human-readable output.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from bench import procfs
from bench.procs import ProcError, run_measured

MARK = "BENCH-JSON "

SCRIPT = r"""
-- Precomputed requests: a file of NUL-terminated raw HTTP requests (the first argument).
local reqs = {}
local n, i = 0, 0

init = function(args)
  local f = assert(io.open(args[1], "rb"))
  local data = f:read("*a")
  f:close()
  local pos = 1
  while pos <= #data do
    local stop = string.find(data, "\0", pos, true)
    n = n + 1
    reqs[n] = string.sub(data, pos, stop - 1)
    pos = stop + 1
  end
end

request = function()
  i = i % n + 1
  return reqs[i]
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"duration_us":%d,"requests":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50":%d,"p90":%d,"p99":%d,"p99.9":%d,"max":%d,"mean":%f}\n',
    "BENCH-JSON ", summary.duration, summary.requests, summary.bytes, e.connect, e.read,
    e.write, e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def closed_loop(
    url: str,
    raw_requests: Path,
    script_dir: Path,
    *,
    connections: int,
    duration: float,
    cores: list[int],
    watch: dict[str, list[int]],
) -> dict[str, Any]:
    """One wrk run; the same fields as the project generator's closed-loop result."""
    script = script_dir / "bench.lua"
    if not script.exists():
        script.write_text(SCRIPT)
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s"]
    cmd += ["--timeout", "10s", "-s", str(script), url, "--", str(raw_requests)]
    watched = {name: procfs.cpu_seconds(pids) for name, pids in watch.items()}
    cores_before = procfs.core_busy_seconds()
    done = run_measured(cmd, cores=cores, timeout=duration + 60)
    cores_after = procfs.core_busy_seconds()
    watched_after = {name: procfs.cpu_seconds(pids) for name, pids in watch.items()}
    if done.returncode != 0:
        raise ProcError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    line = next((x for x in done.stdout.splitlines() if x.startswith(MARK)), None)
    if line is None:
        raise ProcError(f"no summary from wrk: {done.stdout!r} {done.stderr!r}")
    s = json.loads(line[len(MARK) :])
    seconds = s["duration_us"] / 1e6
    errors = s["connect"] + s["read"] + s["write"] + s["timeout"]
    return {
        "mode": "closed",
        "generator": "wrk",
        "connections": connections,
        "duration": seconds,
        "completed": s["requests"],
        "rps": s["requests"] / seconds,
        "errors": errors + s["status"],
        "transport_errors": errors,
        "statuses": {"non-2xx/3xx": s["status"]},
        # wrk measures closed-loop latency, which hides queueing: shown, never judged.
        "latency_ms": {
            "count": float(s["requests"]),
            "mean": s["mean"] / 1e3,
            **{p: s[p] / 1e3 for p in ("p50", "p90", "p99", "p99.9", "max")},
        },
        "by_kind": {},
        "cpu": {
            "seconds": seconds,
            "generator": done.cpu_seconds / seconds,
            "watched": {k: (watched_after[k] - watched[k]) / seconds for k in watched},
            "cores_busy": {
                str(c): (cores_after[c] - cores_before.get(c, 0.0)) / seconds
                for c in sorted(cores_after)
            },
        },
    }
