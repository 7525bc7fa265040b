"""Helpers for running ``idnode`` as a subprocess: the CLI (synchronously) and ``idnode serve``
(asynchronously, reading its ``idnode listening on ...`` line to learn the address)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "resolver.cli"]
LISTENING = re.compile(r"^idnode(?:-toplevel)? listening on (https?)://(\S+):(\d+)$")
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The current environment without any IDNODE_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDNODE_")}
    env.update(extra or {})
    return env


def cli(
    *args: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``idnode ARGS`` to completion and capture its output."""
    return subprocess.run(
        [*CLI, *map(str, args)],
        cwd=ROOT,
        env=clean_env(env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Served:
    proc: asyncio.subprocess.Process
    scheme: str
    host: str
    port: int
    stderr: IO[bytes]

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def api(self, handle: str) -> str:
        return f"{self.url}/api/handles/{handle}"

    def stderr_text(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")


async def start(
    *args: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    start_within: float = START_TIMEOUT,
    listening: re.Pattern[str] = LISTENING,
    preexec_fn: Callable[[], Any] | None = None,
) -> Served:
    """Start ``idnode ARGS`` (a ``serve`` command) and wait, up to ``start_within`` s, for
    its ``listening`` line. The caller must :func:`stop` it (use :func:`serving`)."""
    err = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop(), outlives this call
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        *map(str, args),
        cwd=ROOT,
        env=clean_env(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=err,
        preexec_fn=preexec_fn,
    )
    try:
        assert proc.stdout is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + start_within
        seen: list[str] = []
        while True:
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), deadline - loop.time())
            except TimeoutError:
                err.seek(0)
                raise TimeoutError(
                    f"no listening line within {start_within} s; stdout: {seen}; "
                    f"stderr: {err.read().decode('utf-8', 'replace')}"
                ) from None
            if not line:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
                err.seek(0)
                raise RuntimeError(
                    f"idnode exited with {proc.returncode} before listening; stdout: {seen}; "
                    f"stderr: {err.read().decode('utf-8', 'replace')}"
                )
            text = line.decode("utf-8", "replace").strip()
            seen.append(text)
            m = listening.match(text)
            if m:
                return Served(proc, m.group(1), m.group(2), int(m.group(3)), err)
    except BaseException:
        await _end(proc)
        err.close()
        raise


async def _end(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def stop(served: Served) -> None:
    """Terminate (SIGTERM, then SIGKILL after a timeout) and reap the server."""
    try:
        await _end(served.proc)
    finally:
        served.stderr.close()


@contextlib.asynccontextmanager
async def serving(
    data: Path,
    *extra: str,
    env: Mapping[str, str] | None = None,
    http: str | None = "127.0.0.1:0",
    preexec_fn: Callable[[], Any] | None = None,
) -> AsyncIterator[Served]:
    """``idnode serve --data DATA [--http HTTP] EXTRA...``, stopped on exit (``preexec_fn``:
    run in the child before it starts, e.g. to lower a resource limit)."""
    args: list[str | os.PathLike[str]] = ["serve", "--data", data]
    if http is not None:
        args += ["--http", http]
    served = await start(*args, *extra, env=env, preexec_fn=preexec_fn)
    try:
        yield served
    finally:
        await stop(served)


async def run_command(*cmd: str, within: float, cwd: Path | None = None) -> str:
    """Run ``cmd`` to completion (killed after ``within`` seconds); its output, standard
    error included. A non-zero exit raises RuntimeError with that output."""
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), within)
    except BaseException:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        raise
    text = out.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{text}")
    return text
