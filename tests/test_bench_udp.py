"""The native/DNS load generator (bench/udpgen.py) against the bare ceilings
(bench/ceiling_udp.py), as separate processes over real sockets: every request is answered,
matched by id, and a native reply split over several datagrams counts once, when whole.
Speed is never asserted here: the bench's own runs judge it."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.ceiling_udp import captured_answer
from bench.procs import Served, start_server
from resolver.native.udp import PAYLOAD_SIZE
from tests.procs import ROOT, clean_env

HANDLES = [f"88.118.{n % 4 + 1}/SN{n:010d}" for n in range(50)]


@pytest.fixture
def handles(tmp_path: Path) -> Path:
    path = tmp_path / "handles.txt"
    path.write_text("\n".join(HANDLES) + "\n")
    return path


@contextlib.contextmanager
def _ceiling(*args: str) -> Iterator[Served]:
    cmd = [sys.executable, "-m", "bench.ceiling_udp", "--listen", "127.0.0.1:0", *args]
    served = start_server("ceiling", cmd)
    try:
        yield served
    finally:
        served.stop()


def _udpgen(protocol: str, port: int, handles: Path, *extra: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.udpgen", "--protocol", protocol, "--port", str(port)]
    cmd += ["--handles", str(handles), "--duration", "0.5", "--warmup", "0.1", *extra]
    done = subprocess.run(
        cmd, cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _all_answered(result: dict[str, Any]) -> None:
    assert result["completed"] > 0 and result["rps"] > 0
    assert result["answers"] == result["completed"]
    assert result["errors"] == 0 and result["timeouts"] == 0 and result["stale"] == 0
    assert result["latency_ms"]["count"] == result["completed"]
    assert result["cpu"]["generator"] > 0


@pytest.mark.parametrize("protocol", ["native-udp", "native-tcp"])
def test_native_generator_against_the_captured_answer(handles: Path, protocol: str) -> None:
    with _ceiling("--protocol", "native") as served:
        result = _udpgen(protocol, served.port, handles, "--watch", f"server={served.popen.pid}")
        _all_answered(result)
        assert result["protocol"] == protocol
        assert result["cpu"]["watched"]["server"] > 0


def test_a_split_native_reply_counts_once_when_whole(handles: Path, tmp_path: Path) -> None:
    # The captured reply grown past one datagram: the ceiling splits it as idnode does.
    frame = bytearray(captured_answer())
    frame += bytes(2 * PAYLOAD_SIZE)
    frame[16:20] = (len(frame) - 20).to_bytes(4, "big")
    answer = tmp_path / "answer.bin"
    answer.write_bytes(frame)
    with _ceiling("--protocol", "native", "--answer", str(answer)) as served:
        _all_answered(_udpgen("native-udp", served.port, handles))
        _all_answered(_udpgen("native-tcp", served.port, handles))


def test_dns_generator_against_the_dnspython_baseline(handles: Path) -> None:
    with _ceiling("--protocol", "dns") as served:
        result = _udpgen("dns-udp", served.port, handles, "--zone", "id.example.")
        _all_answered(result)


def test_the_bench_runs_the_native_and_dns_scenarios_against_idnode(tmp_path: Path) -> None:
    out = tmp_path / "report"
    args = ["--scenarios", "native-udp,native-tcp,dns-udp", "--sizes", "500", "--repeats", "1"]
    args += ["--duration", "0.3", "--warmup", "0.1", "--no-progress", "--out", str(out)]
    args += ["--data-root", str(tmp_path / "data")]
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    by_name = {inst["scenario"]: inst for inst in results["instances"]}
    assert set(by_name) == {"native-udp", "native-tcp", "dns-udp"}  # no HTTP ceiling needed
    for name, inst in by_name.items():
        assert inst["error"] is None, inst["error"]
        (ref,) = [r for r in inst["runs"] if r.get("reference")]
        (top,) = [r for r in inst["runs"] if not r.get("reference")]
        (primed,) = inst["primes"]
        assert primed["completed"] >= 500  # every hot key resolved once before measuring
        for run in (ref, top):
            assert run["protocol"] == name
            # idnode answered every request with success, as its ceiling did.
            _all_answered(run)
    targets = {t["id"]: t for t in results["targets"]}
    for tid in ("native_udp", "native_tcp", "dns_udp"):
        assert targets[tid]["status"] in ("PASS", "MISS") and targets[tid]["measured"] > 0
    assert [d["scenario"] for d in results["datagram_check"]] == list(by_name)
    assert "**Native and DNS: CPU per request**" in (out / "summary.md").read_text()
