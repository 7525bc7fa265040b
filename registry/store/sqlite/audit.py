"""The SQL of the audit log on SQLite (tables ``audit`` and ``audit_head``; the chain is
:mod:`registry.store.chain`). Appends run on the writer thread inside the transaction of the
change they record: ``BEGIN IMMEDIATE`` already makes them one at a time, so reading the
head and writing after it needs no other lock."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from registry.store.chain import Audit, AuditEntry, AuditHead, AuditQuery, chained

_COLUMNS = (
    "seq, at, transport, identity, address, action, prefix, handle,"
    " before_digest, after_digest, detail, hash"
)


def head(conn: sqlite3.Connection) -> AuditHead:
    row = conn.execute("SELECT seq, hash, anchor_seq, anchor_hash FROM audit_head").fetchone()
    return AuditHead(int(row[0]), row[1], int(row[2]), row[3])


def append(conn: sqlite3.Connection, audits: Sequence[Audit]) -> None:
    """Number and chain ``audits`` after the head, in the caller's transaction."""
    if not audits:
        return
    entries = chained(head(conn), audits)
    conn.executemany(
        f"INSERT INTO audit ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [tuple(e.as_json().values()) for e in entries],
    )
    last = entries[-1]
    conn.execute("UPDATE audit_head SET seq = ?, hash = ?", (last.seq, last.hash))


def entries(
    conn: sqlite3.Connection, query: AuditQuery, after: int, limit: int
) -> list[AuditEntry]:
    where, args = ["seq > ?"], list[object]([after])
    for column, value in (
        ("prefix", query.prefix),
        ("identity", query.identity),
        ("action", query.action),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if query.since is not None:
        where.append("at >= ?")
        args.append(query.since)
    if query.until is not None:
        where.append("at < ?")
        args.append(query.until)
    sql = f"SELECT {_COLUMNS} FROM audit WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?"
    return [AuditEntry(*row) for row in conn.execute(sql, (*args, limit))]


def prune(conn: sqlite3.Connection, before: float, limit: int) -> int:
    """Delete the oldest entries, up to ``limit`` and up to the first made at or after
    ``before``; the last one deleted becomes the anchor."""
    rows = conn.execute("SELECT seq, hash, at FROM audit ORDER BY seq LIMIT ?", (limit,)).fetchall()
    last = None
    for seq, hash_, at in rows:
        if at >= before:
            break
        last = (int(seq), hash_)
    if last is None:
        return 0
    anchor = head(conn).anchor_seq
    conn.execute("DELETE FROM audit WHERE seq <= ?", (last[0],))
    conn.execute("UPDATE audit_head SET anchor_seq = ?, anchor_hash = ?", last)
    return last[0] - anchor
