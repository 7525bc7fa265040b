"""The SQLite store: one file, WAL mode, durable group commit.

SQLite never runs on the event loop. Reads go to a pool of threads, each with its own
connection (WAL lets them read while the writer writes). Single-record reads (:meth:`get`,
what the record cache asks for) are batched: the keys asked for during one event-loop pass
go to a reader thread as one query, so concurrent requests share one thread hop instead of
paying one each (the hop costs more than the lookup). All writes go through one writer
thread that takes every queued :meth:`SQLiteStore.transact` at once and commits them in one
transaction, each inside its own savepoint: one fsync pays for the whole group, and a failing
item rolls back to its savepoint without touching the others.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from registry.errors import ServerError
from registry.model.wire import decode_values
from registry.store.base import (
    STAT_FIELDS,
    Change,
    Delete,
    Encoded,
    Mutation,
    OutboxItem,
    OutboxSummary,
    Put,
    PutEncoded,
    Record,
    Report,
    Tally,
)
from registry.store.migrations import migrate

R = TypeVar("R")
T = TypeVar("T")

# Most items per commit: bounds the work lost to a failed COMMIT and the latency it adds.
MAX_GROUP = 256
# Bound parameters per IN list, well under SQLite's variable limit.
IN_CHUNK = 500
# Seconds reported statistics rows are kept (totals then cover this long a period).
STATS_RETENTION = 400 * 86400
# Batched reads of single records: at most this many batches at a reader thread at once
# (more keys wait and go together in the next), and IN lists padded to these lengths so a
# connection's statement cache holds every shape.
MAX_BATCHES_IN_FLIGHT = 2
BATCH_SHAPES = (1, 2, 4, 8, 16, 32, 64, 128, 256, IN_CHUNK)

_SELECT_RECORDS = "SELECT key, handle, vals FROM handles WHERE key IN ({})"


class StoreClosed(ServerError):
    """The store is not open (never opened, or closed)."""

    default_message = "Store is closed"


class StoreDamaged(Exception):
    """The database file is damaged, or is not an SQLite database at all. Not a HandleError:
    no request caused it, and the operator must hear of it (logged, as every server fault)."""


# Primary result codes (the low byte of extended ones) of a file SQLite cannot use.
_DAMAGED = frozenset((sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB))


def _damage(exc: BaseException, path: str) -> StoreDamaged | None:
    """The :class:`StoreDamaged` to raise for ``exc``, if it says the file is unusable."""
    code = getattr(exc, "sqlite_errorcode", 0)
    if not isinstance(exc, sqlite3.DatabaseError) or code & 0xFF not in _DAMAGED:
        return None
    damaged = StoreDamaged(
        f"{path} is damaged or not an SQLite database ({exc}): restore it from a backup, "
        "or move it aside and import an export"
    )
    damaged.__cause__ = exc
    return damaged


@dataclass(slots=True)
class _WriteItem:
    keys: Sequence[str]
    mutation: Mutation[Any] | None
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    raw: Callable[[sqlite3.Connection], Any] | None = None  # store-internal writes


_STOP = object()  # queued by close(): the writer finishes what is ahead of it, then exits


class SQLiteStore:
    """A :class:`registry.store.base.Store` in one SQLite database file at ``path``.

    ``readers`` is the number of reader threads (and connections). The path must be a real
    file: every thread opens its own connection to it.
    """

    def __init__(self, path: str | os.PathLike[str], *, readers: int = 4) -> None:
        if readers < 1:
            raise ValueError("readers must be at least 1")
        self._path = os.fspath(path)
        self._readers = readers
        self._queue: queue.SimpleQueue[_WriteItem | object] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._writer_done: asyncio.Future[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._batch: list[tuple[str, asyncio.Future[Record | None]]] = []
        self._batches_in_flight = 0
        self._open = False
        self._closed = False
        self._close_lock = asyncio.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the writer connection, apply pending migrations and start the reader pool."""
        if self._closed:
            raise StoreClosed("A closed store cannot be reopened; create a new one")
        if self._open:
            return
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._writer_done = loop.create_future()
        self._writer = threading.Thread(
            target=self._writer_main,
            args=(loop, ready, self._writer_done),
            name="sqlite-writer",
            daemon=True,
        )
        self._writer.start()
        await ready  # migrations ran on the writer thread, not here
        self._executor = ThreadPoolExecutor(
            max_workers=self._readers, thread_name_prefix="sqlite-reader"
        )
        self._open = True

    async def close(self) -> None:
        """Complete queued transactions and reads, then stop the threads and close the
        connections. Idempotent."""
        async with self._close_lock:
            if self._closed:
                return
            self._closed = True
            if not self._open:
                return
            self._open = False
            self._queue.put(_STOP)
            assert self._writer_done is not None
            await self._writer_done
            await asyncio.to_thread(self._close_readers)

    def _close_readers(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)  # lets already submitted reads finish
        with self._reader_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT/SAVEPOINT ourselves.
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 5000")
        # FULL: in WAL mode, NORMAL can lose the last commits on power loss.
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    # -- reads -------------------------------------------------------------------------------

    def _reader_conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only = ON")
            self._local.conn = conn
            with self._reader_lock:
                self._reader_conns.append(conn)
        return conn

    def _in_transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` on this reader thread's connection inside one read transaction, so
        multi-statement reads see a single snapshot."""
        try:
            conn = self._reader_conn()
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            damaged = _damage(exc, self._path)
            if damaged is None:
                raise
            raise damaged from exc

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on a reader thread (see :meth:`_in_transaction`)."""
        if not self._open or self._executor is None:
            raise StoreClosed()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._in_transaction, fn)

    async def get(self, key: str) -> Record | None:
        """The record at ``key``, or None (read together with the other keys asked for
        meanwhile)."""
        if not self._open:
            raise StoreClosed()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Record | None] = loop.create_future()
        if not self._batch and self._batches_in_flight < MAX_BATCHES_IN_FLIGHT:
            loop.call_soon(self._dispatch)
        self._batch.append((key, future))
        return await future

    def _dispatch(self) -> None:
        """Send the keys waiting to a reader thread as one query (a loop callback)."""
        if not self._batch or self._batches_in_flight >= MAX_BATCHES_IN_FLIGHT:
            return
        batch, self._batch = self._batch, []
        keys = list(dict.fromkeys(key for key, _ in batch))
        loop = asyncio.get_running_loop()

        def run() -> None:  # on a reader thread; no asyncio task or future chain per batch
            found: dict[str, Record] = {}
            error: BaseException | None = None
            try:
                found = self._in_transaction(lambda conn: _select_records(conn, keys, True))
            except BaseException as exc:
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(self._landed, batch, found, error)

        try:
            if not self._open or self._executor is None:
                raise StoreClosed()
            self._executor.submit(run)
        except (StoreClosed, RuntimeError) as exc:  # closed, or the pool shut down
            self._landed(batch, {}, StoreClosed() if isinstance(exc, RuntimeError) else exc, 0)
            return
        self._batches_in_flight += 1

    def _landed(
        self,
        batch: list[tuple[str, asyncio.Future[Record | None]]],
        found: dict[str, Record],
        error: BaseException | None,
        in_flight: int = 1,
    ) -> None:
        self._batches_in_flight -= in_flight
        for key, future in batch:
            if future.done():  # its caller was cancelled
                continue
            if error is None:
                future.set_result(found.get(key))
            else:
                future.set_exception(error)
        self._dispatch()  # the keys that waited for this batch

    async def get_many(self, keys: Sequence[str]) -> dict[str, Record]:
        """Records for those keys that exist."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        return await self._read(lambda conn: _select_records(conn, wanted))

    async def list_handles(
        self, prefix_key: str, offset: int = 0, limit: int | None = None
    ) -> tuple[int, list[str]]:
        """(total count, handles) of the records whose prefix key is ``prefix_key``, ordered
        by key; ``limit`` None means all from ``offset``."""
        if offset < 0 or (limit is not None and limit < 0):
            raise ValueError("offset and limit must not be negative")
        prefix = _upper(prefix_key)

        def run(conn: sqlite3.Connection) -> tuple[int, list[str]]:
            row = conn.execute("SELECT n FROM prefix_counts WHERE prefix = ?", (prefix,)).fetchone()
            total = int(row[0]) if row is not None else 0
            if total == 0 or limit == 0:
                return total, []
            rows = conn.execute(
                "SELECT handle FROM handles WHERE key >= ? AND key < ? ORDER BY key"
                " LIMIT ? OFFSET ?",
                (*_key_range(prefix), -1 if limit is None else limit, offset),
            ).fetchall()
            return total, [r[0] for r in rows]

        return await self._read(run)

    async def iter_handles(
        self, prefix_key: str, after_key: str | None, limit: int
    ) -> list[tuple[str, str]]:
        """(key, handle) of up to ``limit`` records of ``prefix_key`` after ``after_key``."""
        prefix = _upper(prefix_key)

        def run(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            rows = conn.execute(
                "SELECT key, handle FROM handles WHERE key >= ? AND key < ? AND key > ?"
                " ORDER BY key LIMIT ?",
                (*_key_range(prefix), after_key or "", limit),
            ).fetchall()
            return [(r[0], r[1]) for r in rows]

        return await self._read(run)

    async def reverse_lookup(
        self, type_key: str, pattern: str, limit: int, within: Sequence[str] | None = None
    ) -> list[str]:
        """Handles having a value of type ``type_key`` (upper-cased) whose text data matches
        ``pattern`` (``*`` matches any run of characters, case-sensitive), ordered by handle
        key. ``within``: only handles whose prefix key equals or is derived from one of these
        prefix keys (None: no restriction)."""
        if limit <= 0 or (within is not None and not within):
            return []
        sql, params = _reverse_lookup_query(_upper(type_key), pattern, limit, within)

        def run(conn: sqlite3.Connection) -> list[str]:
            return [r[0] for r in conn.execute(sql, params)]

        return await self._read(run)

    async def scan(self, after_key: str | None, limit: int) -> list[tuple[str, Record]]:
        """Records in key order, starting after ``after_key`` (for export)."""
        if limit <= 0:
            return []

        def run(conn: sqlite3.Connection) -> list[tuple[str, Record]]:
            if after_key is None:
                cur = conn.execute(
                    "SELECT key, handle, vals FROM handles ORDER BY key LIMIT ?", (limit,)
                )
            else:
                cur = conn.execute(
                    "SELECT key, handle, vals FROM handles WHERE key > ? ORDER BY key LIMIT ?",
                    (after_key, limit),
                )
            return [(k, Record(h, decode_values(v))) for k, h, v in cur]

        return await self._read(run)

    async def count(self) -> int:
        """The number of records."""

        def run(conn: sqlite3.Connection) -> int:
            # Summing the per-prefix counts avoids a full scan of the handles table.
            row = conn.execute("SELECT COALESCE(SUM(n), 0) FROM prefix_counts").fetchone()
            return int(row[0])

        return await self._read(run)

    # -- sync: outbox and statistics ---------------------------------------------------------

    async def outbox_peek(self, limit: int) -> list[OutboxItem]:
        """The oldest ``limit`` pending outbox items, in ``seq`` order."""

        def run(conn: sqlite3.Connection) -> list[OutboxItem]:
            rows = conn.execute(
                "SELECT seq, prefix, kind, body, created FROM outbox ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
            return [OutboxItem(q, p, k, json.loads(b), c) for q, p, k, b, c in rows]

        return await self._read(run)

    async def outbox_done(self, delivered: Sequence[int], dead: Mapping[int, str]) -> None:
        """Remove delivered items; move ``dead`` ones (seq → reason) aside."""
        if delivered or dead:
            gone, dead_ = list(delivered), dict(dead)
            await self._write(lambda conn: _outbox_done(conn, gone, dead_))

    async def outbox_summary(self) -> OutboxSummary:
        """Pending and dead item counts, and the oldest pending item's age."""

        def run(conn: sqlite3.Connection) -> OutboxSummary:
            pending, oldest = conn.execute("SELECT COUNT(*), MIN(created) FROM outbox").fetchone()
            dead = conn.execute("SELECT COUNT(*) FROM outbox_dead").fetchone()[0]
            return OutboxSummary(int(pending), oldest, int(dead))

        return await self._read(run)

    async def stats_close(self, before: int) -> int:
        """Turn every statistics interval that ended at or before ``before`` and is not yet
        reported into an outbox item, in one transaction; returns how many."""
        return int(await self._write(lambda conn: _close_stats(conn, before)))

    async def stats_totals(self) -> dict[str, dict[str, int]]:
        """Counts per prefix over all intervals (reported or not)."""

        def run(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
            rows = conn.execute(
                "SELECT prefix, SUM(registrations), SUM(updates), SUM(deletions),"
                " SUM(resolutions) FROM stats GROUP BY prefix ORDER BY prefix"
            ).fetchall()
            return {p: dict(zip(STAT_FIELDS, map(int, c), strict=True)) for p, *c in rows}

        return await self._read(run)

    # -- writes ------------------------------------------------------------------------------

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the writer's connection inside a group-committed transaction."""
        if not self._open:
            raise StoreClosed()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_WriteItem((), None, loop, future, raw=fn))
        return await future

    async def transact(self, keys: Sequence[str], mutation: Mutation[R]) -> R:
        """Read ``keys``, run ``mutation`` on them and apply its changes atomically and durably.

        When this returns, the changes are committed and survive a crash of the process.
        """
        if not self._open:
            raise StoreClosed()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._queue.put(_WriteItem(list(keys), mutation, loop, future))
        return await future

    def _writer_main(
        self,
        loop: asyncio.AbstractEventLoop,
        ready: asyncio.Future[None],
        done: asyncio.Future[None],
    ) -> None:
        try:
            conn = self._connect()
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise RuntimeError(f"Could not enable WAL journal mode (got {mode!r})")
                migrate(conn)
            except BaseException:
                conn.close()
                raise
        except BaseException as exc:
            _resolve_threadsafe(loop, ready, None, _damage(exc, self._path) or exc)
            _resolve_threadsafe(loop, done, None, None)
            return
        _resolve_threadsafe(loop, ready, None, None)
        try:
            stopping = False
            while not stopping:
                group: list[_WriteItem] = []
                item = self._queue.get()
                while True:
                    if item is _STOP:
                        stopping = True
                        break
                    assert isinstance(item, _WriteItem)
                    group.append(item)
                    if len(group) >= MAX_GROUP:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if group:
                    self._commit_group(conn, group)
            # Anything queued behind the stop marker raced with close(): refuse it.
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, _WriteItem):
                    _resolve_threadsafe(item.loop, item.future, None, StoreClosed())
        finally:
            conn.close()
            _resolve_threadsafe(loop, done, None, None)

    def _commit_group(self, conn: sqlite3.Connection, group: list[_WriteItem]) -> None:
        """Run ``group`` in one transaction, one savepoint per item; resolve every future."""
        outcomes: list[tuple[Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for item in group:
                conn.execute("SAVEPOINT item")
                try:
                    result = _run_item(conn, item)
                except Exception as exc:
                    if not conn.in_transaction:
                        # SQLite rolled back the whole transaction (disk full, I/O error...):
                        # the earlier items are lost too, so the group fails as a whole.
                        raise
                    conn.execute("ROLLBACK TO item")
                    conn.execute("RELEASE item")
                    outcomes.append((None, exc))
                else:
                    conn.execute("RELEASE item")
                    outcomes.append((result, None))
            conn.execute("COMMIT")
        except BaseException as exc:  # whatever happened, keep the writer thread alive
            if conn.in_transaction:
                # A failed ROLLBACK resurfaces on the connection's next use; nothing to add.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            failure = _damage(exc, self._path) or exc
            for item in group:
                _resolve_threadsafe(item.loop, item.future, None, failure)
            return
        for item, (result, error) in zip(group, outcomes, strict=True):
            _resolve_threadsafe(item.loop, item.future, result, error)


# -- helpers (run on store threads) -----------------------------------------------------------


def _chunks(items: Sequence[str], size: int = IN_CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _select_records(
    conn: sqlite3.Connection, keys: Sequence[str], padded: bool = False
) -> dict[str, Record]:
    """``padded``: each IN list is padded (repeating its last key) to one of BATCH_SHAPES,
    so a reader connection compiles each statement once."""
    out: dict[str, Record] = {}
    for chunk in _chunks(keys):
        n = next(size for size in BATCH_SHAPES if size >= len(chunk)) if padded else len(chunk)
        sql = _SELECT_RECORDS.format(",".join("?" * n))
        for key, handle, vals in conn.execute(sql, (*chunk, *[chunk[-1]] * (n - len(chunk)))):
            out[key] = Record(handle, decode_values(vals))
    return out


def _run_item(conn: sqlite3.Connection, item: _WriteItem) -> Any:
    if item.raw is not None:
        return item.raw(conn)
    assert item.mutation is not None
    records = _select_records(conn, list(dict.fromkeys(item.keys)))
    changes, result = item.mutation(records)
    _apply(conn, changes)
    return result


def _apply(conn: sqlite3.Connection, changes: Sequence[Change]) -> None:
    """Apply ``changes`` in order; each run of puts with a few statements for all of it."""
    puts: dict[str, Encoded] = {}  # the run of puts so far; the last put of a key wins
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
            _report(conn, change)  # order with puts does not matter: other tables
        else:
            raise TypeError(f"Not a store change: {change!r}")
    _put_all(conn, puts)


def _report(conn: sqlite3.Connection, change: Tally | Report) -> None:
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


def _close_stats(conn: sqlite3.Connection, before: int) -> int:
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


def _outbox_done(conn: sqlite3.Connection, delivered: Sequence[int], dead: dict[int, str]) -> None:
    now = time.time()
    for seq, reason in dead.items():
        conn.execute(
            "INSERT OR IGNORE INTO outbox_dead(seq, prefix, kind, body, created, reason, died)"
            " SELECT seq, prefix, kind, body, created, ?, ? FROM outbox WHERE seq = ?",
            (reason, now, seq),
        )
    gone = [*delivered, *dead]
    conn.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in gone])


def _put_all(conn: sqlite3.Connection, puts: dict[str, Encoded]) -> None:
    """Create or replace these records (key → record)."""
    if not puts:
        return
    keys = sorted(puts)  # B-tree inserts in key order touch the fewest pages
    prefixes = {}
    for key in keys:
        if _upper(puts[key].handle) != key:
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


def _upper(text: str) -> str:
    # Same ASCII-only folding as handle_key/type_key; surrogatepass so nothing can raise here.
    return text.encode("utf-8", "surrogatepass").upper().decode("utf-8", "surrogatepass")


def _prefix_of(key: str) -> str:
    return key.split("/", 1)[0]


def _key_range(prefix: str) -> tuple[str, str]:
    """Keys from the first to past the last of ``prefix``'s records (``PREFIX/...``, and
    "0" follows "/"): a range of the primary key, so no index of prefixes is needed."""
    return prefix + "/", prefix + "0"


def _resolve_threadsafe(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    result: Any,
    error: BaseException | None,
) -> None:
    def resolve() -> None:
        if future.done():  # the caller was cancelled; the outcome stands regardless
            return
        if error is None:
            future.set_result(result)
        elif isinstance(error, StopIteration):  # futures refuse StopIteration
            future.set_exception(RuntimeError(f"Mutation raised StopIteration: {error!r}"))
        else:
            future.set_exception(error)

    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
        loop.call_soon_threadsafe(resolve)


# -- reverse lookup query ---------------------------------------------------------------------


def _glob_escape(literal: str) -> str:
    """Make ``literal`` match itself in a GLOB pattern (``*`` never occurs in it)."""
    return literal.replace("[", "[[]").replace("?", "[?]")


def _successor(text: str) -> str | None:
    """The smallest string greater than every string starting with ``text`` (None: none).

    SQLite compares TEXT as UTF-8 bytes, which orders like code points, so bumping the last
    code point works; surrogates cannot be encoded, so skip over them.
    """
    while text:
        code = ord(text[-1])
        if code < 0x10FFFF:
            code += 1
            if 0xD800 <= code <= 0xDFFF:
                code = 0xE000
            return text[:-1] + chr(code)
        text = text[:-1]
    return None


def _reverse_lookup_query(
    type_key: str, pattern: str, limit: int, within: Sequence[str] | None
) -> tuple[str, tuple[Any, ...]]:
    conds = ["type = ?"]
    params: list[Any] = [type_key]
    literal, star, _ = pattern.partition("*")
    if not star:
        conds.append("data = ?")
        params.append(pattern)
    else:
        # The literal head bounds a range scan of the (type, data, key) primary key; GLOB
        # then checks the rest of the pattern on those rows only.
        if literal:
            conds.append("data >= ?")
            params.append(literal)
            upper = _successor(literal)
            if upper is not None:
                conds.append("data < ?")
                params.append(upper)
        if pattern.strip("*"):
            conds.append("data GLOB ?")
            params.append("*".join(_glob_escape(part) for part in pattern.split("*")))
    if within is not None:
        # "Derived from P" is "starts with P.", i.e. the range ["P.", "P/") since '/' follows '.'.
        alts = []
        for prefix in dict.fromkeys(_upper(p) for p in within):
            alts.append("prefix = ? OR (prefix >= ? AND prefix < ?)")
            params += [prefix, prefix + ".", prefix + "/"]
        conds.append("(" + " OR ".join(alts) + ")")
    sql = (
        "SELECT h.handle FROM ("
        f" SELECT DISTINCT key FROM lookup WHERE {' AND '.join(conds)} ORDER BY key LIMIT ?"
        ") AS m JOIN handles AS h ON h.key = m.key ORDER BY m.key"
    )
    params.append(limit)
    return sql, tuple(params)
