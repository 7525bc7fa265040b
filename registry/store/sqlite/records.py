"""The SQL of records: reading them, listing them, and applying a mutation's changes.

Functions of a connection, run on the store's threads (:mod:`.threads`); the schema is
:mod:`registry.store.migrations`. Tables: ``handles`` (key, handle as first written, prefix
key, wire-encoded values), ``prefix_counts`` (records per prefix key, kept so counting needs
no scan), ``lookup`` (reverse-lookup entries).
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from registry.model.wire import decode_values
from registry.store.base import (
    Audit,
    Change,
    Delete,
    Encoded,
    Mutation,
    Put,
    PutEncoded,
    Record,
    Report,
    Tally,
)
from registry.store.sqlite import audit
from registry.store.sqlite.reports import add_report

# Bound parameters per IN list, well under SQLite's variable limit.
IN_CHUNK = 500
# Batched reads pad their IN lists to these lengths, so a connection's statement cache holds
# every shape.
BATCH_SHAPES = (1, 2, 4, 8, 16, 32, 64, 128, 256, IN_CHUNK)

_SELECT_RECORDS = "SELECT key, handle, vals FROM handles WHERE key IN ({})"


def upper(text: str) -> str:
    """Same ASCII-only folding as handle_key/type_key; surrogatepass so nothing can raise."""
    return text.encode("utf-8", "surrogatepass").upper().decode("utf-8", "surrogatepass")


def _prefix_of(key: str) -> str:
    return key.split("/", 1)[0]


def _key_range(prefix: str) -> tuple[str, str]:
    """Keys from the first to past the last of ``prefix``'s records (``PREFIX/...``, and
    "0" follows "/"): a range of the primary key, so no index of prefixes is needed."""
    return prefix + "/", prefix + "0"


def _chunks(items: Sequence[str], size: int = IN_CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- reads ------------------------------------------------------------------------------------


def select_records(
    conn: sqlite3.Connection, keys: Sequence[str], padded: bool = False
) -> dict[str, Record]:
    """The records of those ``keys`` that exist. ``padded``: each IN list is padded
    (repeating its last key) to one of BATCH_SHAPES, so a reader connection compiles each
    statement once."""
    out: dict[str, Record] = {}
    for chunk in _chunks(keys):
        n = next(size for size in BATCH_SHAPES if size >= len(chunk)) if padded else len(chunk)
        sql = _SELECT_RECORDS.format(",".join("?" * n))
        for key, handle, vals in conn.execute(sql, (*chunk, *[chunk[-1]] * (n - len(chunk)))):
            out[key] = Record(handle, decode_values(vals))
    return out


def batched_records(conn: sqlite3.Connection, keys: Sequence[str]) -> dict[str, Record]:
    """:func:`select_records` for the batched single-record reads (padded IN lists)."""
    return select_records(conn, keys, True)


def list_handles(
    conn: sqlite3.Connection, prefix: str, offset: int, limit: int | None
) -> tuple[int, list[str]]:
    row = conn.execute("SELECT n FROM prefix_counts WHERE prefix = ?", (prefix,)).fetchone()
    total = int(row[0]) if row is not None else 0
    if total == 0 or limit == 0:
        return total, []
    rows = conn.execute(
        "SELECT handle FROM handles WHERE key >= ? AND key < ? ORDER BY key LIMIT ? OFFSET ?",
        (*_key_range(prefix), -1 if limit is None else limit, offset),
    ).fetchall()
    return total, [r[0] for r in rows]


def iter_handles(
    conn: sqlite3.Connection, prefix: str, after_key: str | None, limit: int
) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT key, handle FROM handles WHERE key >= ? AND key < ? AND key > ?"
        " ORDER BY key LIMIT ?",
        (*_key_range(prefix), after_key or "", limit),
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def scan(conn: sqlite3.Connection, after_key: str | None, limit: int) -> list[tuple[str, Record]]:
    if after_key is None:
        cur = conn.execute("SELECT key, handle, vals FROM handles ORDER BY key LIMIT ?", (limit,))
    else:
        cur = conn.execute(
            "SELECT key, handle, vals FROM handles WHERE key > ? ORDER BY key LIMIT ?",
            (after_key, limit),
        )
    return [(k, Record(h, decode_values(v))) for k, h, v in cur]


def count(conn: sqlite3.Connection) -> int:
    # Summing the per-prefix counts avoids a full scan of the handles table.
    row = conn.execute("SELECT COALESCE(SUM(n), 0) FROM prefix_counts").fetchone()
    return int(row[0])


# -- writes -----------------------------------------------------------------------------------


def run_mutation(conn: sqlite3.Connection, keys: Sequence[str], mutation: Mutation[Any]) -> Any:
    """Read ``keys``, run ``mutation`` on them, apply its changes; its result."""
    records = select_records(conn, list(dict.fromkeys(keys)))
    changes, result = mutation(records)
    apply(conn, changes)
    return result


def apply(conn: sqlite3.Connection, changes: Sequence[Change]) -> None:
    """Apply ``changes`` in order; each run of puts with a few statements for all of it."""
    puts: dict[str, Encoded] = {}  # the run of puts so far; the last put of a key wins
    audits: list[Audit] = []
    for change in changes:
        if isinstance(change, Put):
            puts[change.key] = Encoded.of(change.record)
        elif isinstance(change, PutEncoded):
            puts[change.key] = change.encoded
        elif isinstance(change, Delete):
            _put_all(conn, puts)
            puts = {}
            _delete(conn, change.key)
        elif isinstance(change, Tally | Report):
            add_report(conn, change)  # order with puts does not matter: other tables
        elif isinstance(change, Audit):
            audits.append(change)
        else:
            raise TypeError(f"Not a store change: {change!r}")
    _put_all(conn, puts)
    audit.append(conn, audits)


def _put_all(conn: sqlite3.Connection, puts: dict[str, Encoded]) -> None:
    """Create or replace these records (key → record)."""
    if not puts:
        return
    keys = sorted(puts)  # B-tree inserts in key order touch the fewest pages
    prefixes = {}
    for key in keys:
        if upper(puts[key].handle) != key:
            raise ValueError(f"Put key {key!r} is not the key of {puts[key].handle!r}")
        prefixes[key] = _prefix_of(key)
    existing: set[str] = set()
    for chunk in _chunks(keys):
        sql = "SELECT key FROM handles WHERE key IN ({})".format(",".join("?" * len(chunk)))
        existing.update(row[0] for row in conn.execute(sql, tuple(chunk)))
    created = [key for key in keys if key not in existing]
    if created:
        conn.executemany(
            "INSERT INTO handles(key, handle, prefix, vals) VALUES (?, ?, ?, ?)",
            [(key, puts[key].handle, prefixes[key], puts[key].vals) for key in created],
        )
        counts = collections.Counter(prefixes[key] for key in created)
        conn.executemany(
            "INSERT INTO prefix_counts(prefix, n) VALUES (?, ?)"
            " ON CONFLICT(prefix) DO UPDATE SET n = n + excluded.n",
            sorted(counts.items()),
        )
    if existing:
        replaced = sorted(existing)
        conn.executemany(
            "UPDATE handles SET handle = ?, vals = ? WHERE key = ?",
            [(puts[key].handle, puts[key].vals, key) for key in replaced],
        )
        conn.executemany("DELETE FROM lookup WHERE key = ?", [(key,) for key in replaced])
    # OR IGNORE: two values of one record may share type and data.
    rows = [(vtype, text, key, prefixes[key]) for key in keys for vtype, text in puts[key].lookup]
    if rows:
        rows.sort()
        conn.executemany(
            "INSERT OR IGNORE INTO lookup(type, data, key, prefix) VALUES (?, ?, ?, ?)", rows
        )


def _delete(conn: sqlite3.Connection, key: str) -> None:
    if conn.execute("DELETE FROM handles WHERE key = ?", (key,)).rowcount:
        prefix = _prefix_of(key)
        conn.execute("UPDATE prefix_counts SET n = n - 1 WHERE prefix = ?", (prefix,))
        conn.execute("DELETE FROM prefix_counts WHERE prefix = ? AND n <= 0", (prefix,))
        conn.execute("DELETE FROM lookup WHERE key = ?", (key,))
