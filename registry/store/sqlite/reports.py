"""The SQL of what the node reports to the top-level: the outbox and the statistics.

Outbox items (``outbox``) are written in the transaction of the change that caused them and
numbered by an AUTOINCREMENT ``seq`` that is never reused; items the top-level refused for
good move to ``outbox_dead``. Statistics (``stats``) are counts per prefix and interval; an
interval is turned into an outbox item once it has ended, and again whenever a late count
changes it (``reported`` is cleared then).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence

from registry.store.base import (
    STAT_FIELDS,
    STATS_RETENTION,
    OutboxItem,
    OutboxSummary,
    Report,
    Tally,
)


def add_report(conn: sqlite3.Connection, change: Tally | Report) -> None:
    """Add a tally to its interval's counts, or append an item to the outbox."""
    if isinstance(change, Tally):
        counts = [getattr(change, f) for f in STAT_FIELDS]
        conn.execute(
            "INSERT INTO stats(prefix, start, seconds, registrations, updates, deletions,"
            " resolutions) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(prefix, start, seconds) DO UPDATE SET"
            " registrations = registrations + excluded.registrations,"
            " updates = updates + excluded.updates,"
            " deletions = deletions + excluded.deletions,"
            " resolutions = resolutions + excluded.resolutions,"
            " reported = 0",
            (change.prefix, change.start, change.seconds, *counts),
        )
    else:
        conn.execute(
            "INSERT INTO outbox(prefix, kind, body, created) VALUES (?, ?, ?, ?)",
            (change.prefix, change.kind, json.dumps(dict(change.body)), time.time()),
        )


def close_stats(conn: sqlite3.Connection, before: int) -> int:
    """Turn the unreported intervals that ended by ``before`` into outbox items; how many."""
    # Reported intervals are kept for the operator (`idnode sync status` totals) for a while.
    conn.execute("DELETE FROM stats WHERE reported = 1 AND start < ?", (before - STATS_RETENTION,))
    rows = conn.execute(
        "SELECT prefix, start, seconds, registrations, updates, deletions, resolutions"
        " FROM stats WHERE reported = 0 AND start + seconds <= ?",
        (before,),
    ).fetchall()
    now = time.time()
    for prefix, start, seconds, *counts in rows:
        body = {"prefix": prefix, "start": start, "seconds": seconds}
        body.update(zip(STAT_FIELDS, counts, strict=True))
        conn.execute(
            "INSERT INTO outbox(prefix, kind, body, created) VALUES (?, 'stats', ?, ?)",
            (prefix, json.dumps(body), now),
        )
        conn.execute(
            "UPDATE stats SET reported = 1 WHERE prefix = ? AND start = ? AND seconds = ?",
            (prefix, start, seconds),
        )
    return len(rows)


def stats_totals(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
    rows = conn.execute(
        "SELECT prefix, SUM(registrations), SUM(updates), SUM(deletions),"
        " SUM(resolutions) FROM stats GROUP BY prefix ORDER BY prefix"
    ).fetchall()
    return {p: dict(zip(STAT_FIELDS, map(int, c), strict=True)) for p, *c in rows}


def outbox_peek(conn: sqlite3.Connection, limit: int) -> list[OutboxItem]:
    rows = conn.execute(
        "SELECT seq, prefix, kind, body, created FROM outbox ORDER BY seq LIMIT ?", (limit,)
    ).fetchall()
    return [OutboxItem(q, p, k, json.loads(b), c) for q, p, k, b, c in rows]


def outbox_done(conn: sqlite3.Connection, delivered: Sequence[int], dead: dict[int, str]) -> None:
    now = time.time()
    for seq, reason in dead.items():
        conn.execute(
            "INSERT OR IGNORE INTO outbox_dead(seq, prefix, kind, body, created, reason, died)"
            " SELECT seq, prefix, kind, body, created, ?, ? FROM outbox WHERE seq = ?",
            (reason, now, seq),
        )
    gone = [*delivered, *dead]
    conn.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in gone])


def outbox_summary(conn: sqlite3.Connection) -> OutboxSummary:
    pending, oldest = conn.execute("SELECT COUNT(*), MIN(created) FROM outbox").fetchone()
    dead = conn.execute("SELECT COUNT(*) FROM outbox_dead").fetchone()[0]
    return OutboxSummary(int(pending), oldest, int(dead))
