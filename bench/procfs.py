"""What Linux's /proc says about processes and cores: CPU time, peak RSS, descendants, and
the machine description. Every reader returns None (or nothing) where /proc is missing, so
the bench still runs, with fewer figures, elsewhere."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after its last ')'.
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of ``pids`` (all their threads), in seconds."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (``--workers`` servers fork their workers)."""
    children: dict[int, list[int]] = {}
    for entry in PROC.glob("[0-9]*"):
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        p = queue.pop()
        found.append(p)
        queue.extend(children.get(p, ()))
    return found


def peak_rss_mb(pid: int) -> float | None:
    """The process's high-water resident set (VmHWM), in MiB."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def core_busy_seconds() -> dict[int, float]:
    """Per core, the time spent not idle since boot: compared with our own processes' CPU
    time over a run, it shows how much other work shared the machine (noise)."""
    busy: dict[int, float] = {}
    try:
        lines = (PROC / "stat").read_text().splitlines()
    except OSError:
        return busy
    for line in lines:
        name, *ticks = line.split()
        if name.startswith("cpu") and name != "cpu":
            # user nice system idle iowait irq softirq steal ...: all but idle and iowait.
            values = [int(t) for t in ticks[:8]]
            busy[int(name[3:])] = (sum(values) - values[3] - values[4]) / CLOCK_TICKS
    return busy


def usable_cores() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def _first_line(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else None


def machine() -> dict[str, object]:
    """A description of the machine, for the report (results only compare on like hardware,
    which is why they are also given as ratios to the in-run ceiling)."""
    model = platform.processor() or "unknown"
    mem_gib = None
    try:
        for line in (PROC / "cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in (PROC / "meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        load = (PROC / "loadavg").read_text().split()[:3]
    except OSError:
        load = []
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "memory_gib": mem_gib,
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "wrk": _first_line(["wrk", "-v"]),
        "redis": _first_line(["redis-server", "--version"]),
        "loadavg_at_start": load,
    }
