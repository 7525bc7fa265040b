"""A PostgreSQL cluster owned by a test: ``initdb`` into a directory of its own, served on a
free loopback port by ``pg_ctl``, stopped and started again at will — what a test needs to
see the node lose its database server and get it back (the shared server of
:mod:`tests.pgserver` must never be stopped).

The binaries come from ``IDNODE_TEST_PG_BIN`` or the newest ``/usr/lib/postgresql/*/bin``
(Debian's layout), else ``PATH``. PostgreSQL refuses to run as root: as root, every command
runs as the ``postgres`` user (``runuser``), in a directory made for it under the system's
temporary directory (a test's own ``tmp_path`` is private to root). ``pg_ctl -w`` waits for
the server to accept connections (or to have stopped) itself: no sleeps here.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from tests.conftest import free_port
from tests.procs import run_command

RUN_TIMEOUT = 60.0  # seconds for initdb, or for pg_ctl to start or stop the server
SERVER_OPTIONS = (
    # Small and fast: a test's cluster holds a few rows, and is thrown away.
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    " -c shared_buffers=16MB -c max_connections=40"
)


def bin_dir() -> Path:
    """Where initdb and pg_ctl are; fails (never skips) when there are none."""
    given = os.environ.get("IDNODE_TEST_PG_BIN")
    if given:
        return Path(given)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if found:
        return Path(found[-1])
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError(
            "no PostgreSQL binaries (initdb, pg_ctl): install the server package or set "
            "IDNODE_TEST_PG_BIN to their directory"
        )
    return Path(initdb).parent


class PgCluster:
    """One private cluster: :meth:`create` it, then :meth:`start` and :meth:`stop` it as
    often as the test wants (same port, same data); :meth:`destroy` removes it."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.bin = bin_dir()
        self.as_postgres = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix="idnode-pgcluster-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text("utf-8", "replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no server log)"

    async def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin / tool), *args]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        try:
            await run_command(*cmd, within=RUN_TIMEOUT, cwd=self.root)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{self.log_tail()}") from None

    async def create(self) -> None:
        """``initdb``: a cluster whose ``postgres`` role is trusted from the loopback."""
        if self.as_postgres:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
        await self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )

    async def start(self) -> None:
        """Start the server and return once it accepts connections."""
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} {SERVER_OPTIONS}"
        await self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"
        )

    async def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: its sessions are ended, as in a restart) and return once
        it is down."""
        await self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    async def destroy(self) -> None:
        """Stop the server if it runs, and remove the cluster's files."""
        with contextlib.suppress(RuntimeError):  # not running
            await self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.asynccontextmanager
async def pg_cluster() -> AsyncIterator[PgCluster]:
    """A fresh private cluster, running; destroyed on exit."""
    cluster = PgCluster()
    try:
        await cluster.create()
        await cluster.start()
        yield cluster
    finally:
        await cluster.destroy()
