"""The top-level node's state: one SQLite database in its data directory.

Synchronous and small on purpose. The server runs every call on one thread of its own (see
:class:`sync.toplevel.web.TopLevel`), so the event loop never waits on SQLite; the CLI calls
it directly. Several processes may share the file (``serve`` plus the CLI's ``app create``
or ``prefix approve``): WAL mode, a busy timeout, and write transactions that take the write
lock when they begin (``BEGIN IMMEDIATE``), so none fails half way on a lock upgrade.

Tables: ``meta`` (the root certificate), ``apps`` (onboarding applications and their item
counters), ``nodes`` (registered nodes), ``heartbeats``, ``prefixes`` (what the top-level
routes: node prefixes and enterprise prefixes, approved or pending), ``nonces`` (seen request
nonces, kept for twice the allowed clock skew), ``items`` (batch item ids seen, per app) and
``stats`` (per app, prefix and interval).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DB_FILE = "toplevel.sqlite3"
SCHEMA_VERSION = 2
BUSY_TIMEOUT_S = 10.0

# Version 2: what nodes reported of their enterprise prefixes' lifecycle, in order.
_EVENTS = """
CREATE TABLE IF NOT EXISTS prefix_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id TEXT NOT NULL REFERENCES apps (app_id),
    prefix_key TEXT NOT NULL,
    prefix TEXT NOT NULL,
    op TEXT NOT NULL,
    reason TEXT NOT NULL,
    received INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS prefix_events_prefix ON prefix_events (prefix_key, seq);
"""

_SCHEMA = (
    _EVENTS
    + """
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS apps (
    app_id TEXT PRIMARY KEY,
    prefix TEXT NOT NULL,
    prefix_key TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    approval TEXT NOT NULL CHECK (approval IN ('auto', 'manual')),
    created INTEGER NOT NULL,
    accepted INTEGER NOT NULL DEFAULT 0,
    duplicate INTEGER NOT NULL DEFAULT 0,
    rejected INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS nodes (
    app_id TEXT PRIMARY KEY REFERENCES apps (app_id),
    identity TEXT NOT NULL,
    public_key TEXT NOT NULL,
    thumbprint TEXT NOT NULL,
    site TEXT NOT NULL,
    name TEXT NOT NULL,
    cert TEXT NOT NULL,
    registered INTEGER NOT NULL,
    updated INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS heartbeats (
    app_id TEXT PRIMARY KEY REFERENCES apps (app_id),
    time INTEGER NOT NULL,
    status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS prefixes (
    prefix_key TEXT PRIMARY KEY,
    prefix TEXT NOT NULL,
    app_id TEXT NOT NULL REFERENCES apps (app_id),
    kind TEXT NOT NULL CHECK (kind IN ('node', 'enterprise')),
    status TEXT NOT NULL CHECK (status IN ('approved', 'pending')),
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS nonces (
    app_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    expires INTEGER NOT NULL,
    PRIMARY KEY (app_id, nonce)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nonces_expires ON nonces (expires);
CREATE TABLE IF NOT EXISTS items (
    app_id TEXT NOT NULL,
    id TEXT NOT NULL,
    kind TEXT,
    status TEXT NOT NULL,
    error TEXT,
    received INTEGER NOT NULL,
    PRIMARY KEY (app_id, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stats (
    app_id TEXT NOT NULL,
    prefix_key TEXT NOT NULL,
    prefix TEXT NOT NULL,
    start INTEGER NOT NULL,
    seconds INTEGER NOT NULL,
    registrations INTEGER NOT NULL,
    updates INTEGER NOT NULL,
    deletions INTEGER NOT NULL,
    resolutions INTEGER NOT NULL,
    received INTEGER NOT NULL,
    PRIMARY KEY (app_id, prefix_key, start, seconds)
) WITHOUT ROWID;
"""
)


class StoreError(Exception):
    """The database is missing, from another program, or newer than this code."""


def db_path(data: Path) -> Path:
    return data / DB_FILE


def connect(path: Path, *, create: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit: :func:`write`,
    :func:`read`), WAL, full sync, rows as :class:`sqlite3.Row`. Any thread may use it, one
    at a time."""
    if not create and not path.exists():
        raise StoreError(
            f"{path.parent} is not a top-level data directory "
            f"(run 'idnode toplevel init --data {path.parent}')"
        )
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0 and create:
            # One script, one transaction (executescript would commit an open one first).
            conn.executescript(
                f"BEGIN IMMEDIATE;{_SCHEMA}PRAGMA user_version = {SCHEMA_VERSION};COMMIT;"
            )
        elif version == 1 and SCHEMA_VERSION == 2:
            conn.executescript(f"BEGIN IMMEDIATE;{_EVENTS}PRAGMA user_version = 2;COMMIT;")
        elif version != SCHEMA_VERSION:
            raise StoreError(f"{path}: schema version {version}, expected {SCHEMA_VERSION}")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(f"{path}: {exc}") from None
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def write(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: committed when the block ends, rolled back if it raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def read(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One read transaction: every query in the block sees the same snapshot."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


def get_meta(conn: sqlite3.Connection, name: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
    return None if row is None else str(row[0])


def set_meta(conn: sqlite3.Connection, name: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta (name, value) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (name, value),
    )


def as_dict(row: sqlite3.Row | None) -> dict[str, Any] | None:
    return None if row is None else dict(row)
