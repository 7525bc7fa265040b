"""A private ``redis-server`` for the warm scenario: a free loopback port (never the
machine's 6379), persistence off, its files in a temporary directory; ready when it answers
PING (polled with a deadline)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.procs import ProcError, free_port, pinned, stop_process

READY_TIMEOUT = 15.0
POLL = 0.02  # seconds between PINGs while it starts


def available() -> bool:
    return shutil.which("redis-server") is not None


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def running(cores: list[int]) -> Iterator[tuple[str, int]]:
    """``(url, pid)`` of a fresh Redis, stopped on exit."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as workdir:
        log = Path(workdir) / "redis.log"
        cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        cmd += ["--appendonly", "no", "--dir", workdir, "--logfile", str(log)]
        popen = subprocess.Popen(pinned(cmd, cores), stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + READY_TIMEOUT
            while not _pong(port):
                if popen.poll() is not None or time.monotonic() > deadline:
                    text = log.read_text() if log.exists() else ""
                    raise ProcError(f"redis-server did not start: {text[-2000:]}")
                time.sleep(POLL)  # polling with a deadline, not a guess
            yield f"redis://127.0.0.1:{port}/0", popen.pid
        finally:
            stop_process(popen)
