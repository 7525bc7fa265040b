"""Child processes of the bench: pinned to cores, started until they print their listening
line (never a fixed sleep), and always stopped — SIGTERM, then SIGKILL after a timeout, for
the process and everything it forked."""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bench import procfs

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
LISTENING = re.compile(rb"listening on (https?|hdl-udp|dns-udp)://(\S+):(\d+)\s*$")
START_TIMEOUT = 60.0  # seconds; a 10 M registry's first open can take a while on a slow disk
STOP_TIMEOUT = 10.0


class ProcError(RuntimeError):
    """A child process failed; the message holds its output's tail."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pinned(cmd: Sequence[str], cores: Sequence[int] | None) -> list[str]:
    """``cmd`` restricted to ``cores`` (inherited by everything it forks)."""
    if not cores:
        return list(cmd)
    spec = ",".join(str(c) for c in cores)
    if shutil.which("taskset"):
        return ["taskset", "-c", spec, *cmd]
    return [PYTHON, "-m", "bench.pin", spec, *cmd]


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without IDNODE_* (the scenario sets what it measures), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDNODE_")}
    env.update(extra or {})
    return env


@dataclass
class Served:
    """A server child that printed its listening line(s)."""

    name: str
    popen: subprocess.Popen[bytes]
    host: str
    port: int
    log: IO[bytes]
    cores: list[int] = field(default_factory=list)

    def pids(self) -> list[int]:
        return procfs.descendants(self.popen.pid)

    def log_tail(self, lines: int = 20) -> str:
        self.log.seek(0)
        return "\n".join(self.log.read().decode("utf-8", "replace").splitlines()[-lines:])

    def peak_rss_mb(self) -> list[float]:
        """VmHWM of each process that does the serving (the workers, not their idle parent)."""
        pids = self.pids()
        serving = pids[1:] if len(pids) > 1 else pids
        return [mb for mb in (procfs.peak_rss_mb(p) for p in serving) if mb is not None]

    def stop(self) -> None:
        try:
            stop_process(self.popen, self.pids())
        finally:
            self.log.close()


def stop_process(popen: subprocess.Popen[bytes], family: Sequence[int] = ()) -> None:
    """SIGTERM ``popen``; SIGKILL it after STOP_TIMEOUT; then SIGKILL any of ``family`` (its
    descendants, listed while it ran) that outlived it."""
    if popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            popen.terminate()
        try:
            popen.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                popen.kill()
            popen.wait()
    for pid in family:
        if pid != popen.pid and _is_alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    if popen.stdout is not None:
        popen.stdout.close()


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def start_server(
    name: str,
    cmd: Sequence[str],
    *,
    cores: Sequence[int] | None = None,
    env: Mapping[str, str] | None = None,
    listeners: int = 1,
    timeout: float = START_TIMEOUT,
) -> Served:
    """Start ``cmd`` and wait until it has printed ``listeners`` listening lines (one per
    worker). The caller must :meth:`Served.stop` it."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by Served.stop
    popen = subprocess.Popen(
        pinned(cmd, cores),
        cwd=ROOT,
        env=clean_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log,
    )
    assert popen.stdout is not None
    try:
        host, port = _await_listening(popen, popen.stdout, listeners, timeout)
    except BaseException as exc:
        stop_process(popen, procfs.descendants(popen.pid))
        log.seek(0)
        tail = log.read().decode("utf-8", "replace")[-3000:]
        log.close()
        if isinstance(exc, ProcError | TimeoutError):
            raise ProcError(f"{name}: {exc}; its log ends:\n{tail}") from None
        raise
    return Served(name, popen, host, port, log, list(cores or ()))


def _await_listening(
    popen: subprocess.Popen[bytes], out: IO[bytes], listeners: int, timeout: float
) -> tuple[str, int]:
    deadline = time.monotonic() + timeout
    buf = b""
    found: list[tuple[str, int]] = []
    with selectors.DefaultSelector() as sel:
        sel.register(out, selectors.EVENT_READ)
        while len(found) < listeners:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"not listening within {timeout:.0f} s")
            if not sel.select(remaining):
                continue
            chunk = os.read(out.fileno(), 65536)
            if not chunk:
                raise ProcError(f"exited with {popen.wait()} before listening")
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                m = LISTENING.search(line)
                if m:
                    found.append((m.group(2).decode(), int(m.group(3))))
    return found[0]


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str
    cpu_seconds: float  # user + system of the child, from its rusage


def run_measured(
    cmd: Sequence[str],
    *,
    cores: Sequence[int] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float,
    stdin: IO[bytes] | None = None,
) -> Finished:
    """Run ``cmd`` to completion and measure its CPU time. Output goes to files (no pipe can
    fill up); the CPU time is the rusage delta of reaped children, which is this child alone
    because the bench reaps nothing else meanwhile."""
    import resource

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        popen = subprocess.Popen(
            pinned(cmd, cores),
            cwd=ROOT,
            env=clean_env(env),
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
        try:
            code = popen.wait(timeout)
        except BaseException:
            stop_process(popen, procfs.descendants(popen.pid))
            raise
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        out.seek(0)
        err.seek(0)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return Finished(
            code,
            out.read().decode("utf-8", "replace"),
            err.read().decode("utf-8", "replace"),
            cpu,
        )
