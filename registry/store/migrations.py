"""Versioned schema of the SQLite store.

``MIGRATIONS[i]`` brings the schema from version ``i`` to ``i + 1``. Never edit a released
migration: append a new one. :func:`migrate` applies the pending ones, each in its own
``BEGIN IMMEDIATE`` transaction that also records the new ``schema_version``, so a crash
leaves the database at a whole version and concurrent openers cannot apply one twice.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence

from registry.store.chain import GENESIS

Migration = Callable[[sqlite3.Connection], None]

log = logging.getLogger("idnode.store")


class SchemaTooNew(RuntimeError):
    """The database was written by a newer version of the code than this one."""


def _v1_initial(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE handles ("
        " key TEXT PRIMARY KEY,"
        " handle TEXT NOT NULL,"
        " prefix TEXT NOT NULL,"
        " vals BLOB NOT NULL"
        ") WITHOUT ROWID"
    )
    # Serves list_handles: one prefix's keys in order without touching other prefixes.
    conn.execute("CREATE INDEX handles_prefix_key ON handles(prefix, key)")
    # Counting a prefix's rows by scanning is too slow at 10 million rows, so keep counts.
    conn.execute("CREATE TABLE prefix_counts (prefix TEXT PRIMARY KEY, n INTEGER NOT NULL)")
    conn.execute(
        "CREATE TABLE lookup ("
        " type TEXT NOT NULL,"
        " data TEXT NOT NULL,"
        " key TEXT NOT NULL,"
        " prefix TEXT NOT NULL,"
        " PRIMARY KEY (type, data, key)"
        ") WITHOUT ROWID"
    )
    # Rewriting or deleting a record removes its lookup rows by key.
    conn.execute("CREATE INDEX lookup_key ON lookup(key)")


def _v2_sync(conn: sqlite3.Connection) -> None:
    # The outbox: reports for the top-level node, written in the transaction of the change
    # that caused them. AUTOINCREMENT so a sequence number (part of the idempotency key the
    # top-level deduplicates by) is never reused, even after the newest rows were deleted.
    conn.execute(
        "CREATE TABLE outbox ("
        " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
        " prefix TEXT NOT NULL,"
        " kind TEXT NOT NULL,"
        " body TEXT NOT NULL,"
        " created REAL NOT NULL"
        ")"
    )
    conn.execute(
        "CREATE TABLE outbox_dead ("
        " seq INTEGER PRIMARY KEY,"
        " prefix TEXT NOT NULL,"
        " kind TEXT NOT NULL,"
        " body TEXT NOT NULL,"
        " created REAL NOT NULL,"
        " reason TEXT NOT NULL,"
        " died REAL NOT NULL"
        ")"
    )
    # Statistics per prefix and interval; ``reported`` is cleared whenever counts change, so
    # a late addition re-reports the interval's new totals (the top-level replaces them).
    conn.execute(
        "CREATE TABLE stats ("
        " prefix TEXT NOT NULL,"
        " start INTEGER NOT NULL,"
        " seconds INTEGER NOT NULL,"
        " registrations INTEGER NOT NULL DEFAULT 0,"
        " updates INTEGER NOT NULL DEFAULT 0,"
        " deletions INTEGER NOT NULL DEFAULT 0,"
        " resolutions INTEGER NOT NULL DEFAULT 0,"
        " reported INTEGER NOT NULL DEFAULT 0,"
        " PRIMARY KEY (prefix, start, seconds)"
        ") WITHOUT ROWID"
    )
    conn.execute("CREATE INDEX stats_unreported ON stats(reported, start)")


def _v3_handles_rowid(conn: sqlite3.Connection) -> None:
    # Records (~1 KB signed) move out of a WITHOUT ROWID table. There every interior cell
    # holds a whole row, so a 4 KiB page has ~4 children: 11 levels at 10 million records,
    # each lookup touching pages no cache keeps. Now a slim key index (~130 keys a page)
    # leads to the row by rowid (~400 children a page): 3-4 levels each. Rows are copied in
    # key order, so rowids follow keys and scans stay sequential.
    conn.execute(
        "CREATE TABLE handles_v3 ("
        " key TEXT PRIMARY KEY,"
        " handle TEXT NOT NULL,"
        " prefix TEXT NOT NULL,"
        " vals BLOB NOT NULL"
        ")"
    )
    conn.execute(
        "INSERT INTO handles_v3(key, handle, prefix, vals)"
        " SELECT key, handle, prefix, vals FROM handles ORDER BY key"
    )
    # A prefix's records are the key range PREFIX/ to PREFIX0: the key index serves
    # listings, and imports no longer write a second index.
    conn.execute("DROP TABLE handles")  # and handles_prefix_key
    conn.execute("ALTER TABLE handles_v3 RENAME TO handles")


def _v4_audit(conn: sqlite3.Connection) -> None:
    # The audit log (registry/store/chain.py): entries numbered without gaps, each chained
    # to the one before by hash; one row holds the head and the retention anchor, so the
    # newest entry needs no search and a removed tail shows.
    conn.execute(
        "CREATE TABLE audit ("
        " seq INTEGER PRIMARY KEY,"
        " at REAL NOT NULL,"
        " transport TEXT NOT NULL,"
        " identity TEXT NOT NULL,"
        " address TEXT NOT NULL,"
        " action TEXT NOT NULL,"
        " prefix TEXT NOT NULL,"
        " handle TEXT NOT NULL,"
        " before_digest TEXT NOT NULL,"
        " after_digest TEXT NOT NULL,"
        " detail TEXT NOT NULL,"
        " hash TEXT NOT NULL"
        ")"
    )
    # The filters of `idnode audit list` and GET /api/audit, each paged by seq.
    conn.execute("CREATE INDEX audit_at ON audit(at)")
    conn.execute("CREATE INDEX audit_prefix ON audit(prefix, seq)")
    conn.execute("CREATE INDEX audit_identity ON audit(identity, seq)")
    conn.execute("CREATE INDEX audit_action ON audit(action, seq)")
    conn.execute(
        "CREATE TABLE audit_head ("
        " id INTEGER PRIMARY KEY CHECK (id = 1),"
        " seq INTEGER NOT NULL,"
        " hash TEXT NOT NULL,"
        " anchor_seq INTEGER NOT NULL,"
        " anchor_hash TEXT NOT NULL"
        ")"
    )
    conn.execute("INSERT INTO audit_head VALUES (1, 0, ?, 0, ?)", (GENESIS, GENESIS))


MIGRATIONS: Sequence[Migration] = (_v1_initial, _v2_sync, _v3_handles_rowid, _v4_audit)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    """The version recorded in ``meta`` (0 for a database without one)."""
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if has_meta is None:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row is not None else 0


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Apply pending migrations on ``conn`` (in autocommit mode); return the final version.

    Raises :class:`SchemaTooNew` when the database is ahead of ``migrations``.
    """
    found: int | None = None  # the version the database had when opened
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            version = schema_version(conn)
            found = version if found is None else found
            if version > len(migrations):
                raise SchemaTooNew(
                    f"Database schema version {version} is newer than this code's {len(migrations)}"
                )
            if version == len(migrations):
                conn.execute("COMMIT")
                return version
            if found > 0:  # an existing database: some migrations take minutes at 10 M
                log.warning("store schema: migrating from version %d to %d", version, version + 1)
            migrations[version](conn)
            conn.execute(
                "INSERT INTO meta(key, value) VALUES ('schema_version', ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (str(version + 1),),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
