"""A private PostgreSQL cluster for the tests that stop, restart or pause it: a primary
(``wal_level=replica``) and, on request, a streaming standby made by ``pg_basebackup -R``,
each on a free loopback port in a temporary directory — the README's "primary + replica"
layout on one machine.

The server binaries are found under ``IDNODE_TEST_PG_BIN`` or ``/usr/lib/postgresql/*/bin``
(the newest). PostgreSQL refuses to run as root: as root the commands run as the
``postgres`` user (``runuser``), in a directory that user owns. Where no binaries are found
the tests skip saying so (fail under ``IDNODE_REQUIRE_POSTGRES=1``, as for the shared server).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.pgserver import _required

START_TIMEOUT = 30  # seconds pg_ctl may take to start or restart a server
SETTINGS = {
    "wal_level": "replica",
    "max_wal_senders": "4",
    "hot_standby": "on",
    "fsync": "off",  # a test cluster: durability across an OS crash is not tested here
    "synchronous_commit": "on",
    "full_page_writes": "off",
    "shared_buffers": "16MB",
    "max_connections": "60",
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "log_min_messages": "warning",
    "wal_receiver_status_interval": "1s",
    "hot_standby_feedback": "on",
}


def _bin_dir() -> Path | None:
    given = os.environ.get("IDNODE_TEST_PG_BIN")
    if given:
        return Path(given)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version)
    return Path(found[-1]).parent if found else None


def _version(path: str) -> int:
    part = Path(path).parts[-3]
    return int(part) if part.isdigit() else 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """One server of the cluster: its directory and port."""

    cluster: Cluster
    data: Path
    port: int

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def ctl(self, *args: str) -> None:
        self.cluster.run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.data / "server.log"), "-w",
            "-t", str(START_TIMEOUT), *args,
        )  # fmt: skip

    def start(self) -> None:
        self.ctl("start")

    def stop(self) -> None:
        self.ctl("stop", "-m", "fast")

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every session ended, the server down a moment."""
        self.ctl("restart", "-m", "fast")

    def log(self) -> str:
        try:
            return (self.data / "server.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""


class Cluster:
    """A primary and its standbys in ``root`` (see the module)."""

    def __init__(self, bindir: Path, root: Path) -> None:
        self.bindir = bindir
        self.root = root
        self.as_postgres = os.geteuid() == 0
        self.servers: list[Server] = []

    def run(self, program: str, *args: str) -> None:
        command = [str(self.bindir / program), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)}: {done.stdout}{done.stderr}")

    def primary(self) -> Server:
        data = self.root / "primary"
        self.run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-N", "-E", "UTF8")
        port = _free_port()
        with (data / "postgresql.conf").open("a") as conf:
            for name, value in {**SETTINGS, "port": str(port)}.items():
                conf.write(f"{name} = {value}\n")
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write("host replication postgres 127.0.0.1/32 trust\n")
        server = Server(self, data, port)
        server.start()
        self.servers.append(server)
        return server

    def standby(self, primary: Server) -> Server:
        """A streaming standby of ``primary`` (``pg_basebackup -R``), started."""
        data = self.root / f"standby{len(self.servers)}"
        self.run(
            "pg_basebackup", "-D", str(data), "-h", "127.0.0.1", "-p", str(primary.port),
            "-U", "postgres", "-R", "-X", "stream", "-c", "fast",
        )  # fmt: skip
        port = _free_port()
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {port}\n")
        server = Server(self, data, port)
        server.start()
        self.servers.append(server)
        return server

    def close(self) -> None:
        for server in reversed(self.servers):
            with contextlib.suppress(Exception):
                server.ctl("stop", "-m", "immediate")


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    """A cluster in a fresh directory, every server stopped and the directory removed after."""
    bindir = _bin_dir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        message = "no PostgreSQL server binaries (set IDNODE_TEST_PG_BIN to their directory)"
        if _required():
            pytest.fail(message + " (IDNODE_REQUIRE_POSTGRES=1: the PostgreSQL tests must run)")
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="idnode-pg-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
    made = Cluster(bindir, root)
    try:
        yield made
    finally:
        made.close()
        shutil.rmtree(root, ignore_errors=True)


def wait_until(condition: object, what: str, timeout: float = START_TIMEOUT) -> None:
    """Poll a callable until it returns true (a standby catching up, in fixtures)."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)
