"""The threads SQLite runs on, so it never runs on the event loop.

Reads go to a pool of threads, each with its own connection (WAL lets them read while the
writer writes), each read inside one read transaction so it sees a single snapshot.
Single-key reads (what the record cache asks for) are batched: the keys asked for during one
event-loop pass go to a reader thread as one call, so concurrent requests share one thread
hop instead of paying one each (the hop costs more than the lookup). All writes go through
one writer thread that takes every queued write at once and commits them in one
transaction, each inside its own savepoint: one fsync pays for the whole group, and a failing
item rolls back to its savepoint without touching the others.

Nothing here knows the schema: callers pass functions of a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from registry.store.base import StoreClosed, StoreConfigError, StoreDamaged

T = TypeVar("T")
V = TypeVar("V")

# Most items per commit: bounds the work lost to a failed COMMIT and the latency it adds.
MAX_GROUP = 256
# Batched reads of single keys: at most this many batches at a reader thread at once (more
# keys wait and go together in the next).
MAX_BATCHES_IN_FLIGHT = 2

Statement = Callable[[sqlite3.Connection], T]
# Reads the values of these keys (some may be absent) on a reader thread.
Lookup = Callable[[sqlite3.Connection, Sequence[str]], dict[str, V]]


@dataclass(slots=True)
class _WriteItem:
    fn: Statement[Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


_STOP = object()  # queued by stop(): the writer finishes what is ahead of it, then exits


class Threads(Generic[V]):
    """The writer thread and the reader pool over the database file at ``path``.

    ``init`` runs once on the writer's connection before anything else (journal mode,
    migrations); ``lookup`` answers batched single-key reads (:meth:`read_key`); ``trace``,
    if given, is called with every statement any connection executes.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        readers: int,
        init: Statement[None],
        lookup: Lookup[V],
        trace: Callable[[str], None] | None = None,
    ) -> None:
        if readers < 1:
            raise ValueError("readers must be at least 1")
        self._path = os.fspath(path)
        self._readers = readers
        self._init = init
        self._lookup = lookup
        self._trace = trace
        self._queue: queue.SimpleQueue[_WriteItem | object] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._writer_done: asyncio.Future[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._batch: list[tuple[str, asyncio.Future[V | None]]] = []
        self._batches_in_flight = 0
        self._open = False
        self._closed = False
        self._close_lock = asyncio.Lock()
        self.commits = 0  # transactions the writer committed (each holds a group of writes)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the writer (which runs ``init``) and the reader pool. Idempotent."""
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
        await ready  # init ran on the writer thread, not here
        self._executor = ThreadPoolExecutor(
            max_workers=self._readers, thread_name_prefix="sqlite-reader"
        )
        self._open = True

    async def stop(self) -> None:
        """Complete queued writes and reads, then stop the threads and close the
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
        if self._trace is not None:
            conn.set_trace_callback(self._trace)
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

    def _in_transaction(self, fn: Statement[T]) -> T:
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
            damaged = damage(exc, self._path)
            if damaged is None:
                raise
            raise damaged from exc

    async def read(self, fn: Statement[T]) -> T:
        """Run ``fn`` on a reader thread (see :meth:`_in_transaction`)."""
        if not self._open or self._executor is None:
            raise StoreClosed()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._in_transaction, fn)

    async def read_key(self, key: str) -> V | None:
        """``lookup``'s value for ``key``, or None, read together with the other keys asked
        for meanwhile."""
        if not self._open:
            raise StoreClosed()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[V | None] = loop.create_future()
        if not self._batch and self._batches_in_flight < MAX_BATCHES_IN_FLIGHT:
            loop.call_soon(self._dispatch)
        self._batch.append((key, future))
        return await future

    def _dispatch(self) -> None:
        """Send the keys waiting to a reader thread as one call (a loop callback)."""
        if not self._batch or self._batches_in_flight >= MAX_BATCHES_IN_FLIGHT:
            return
        batch, self._batch = self._batch, []
        keys = list(dict.fromkeys(key for key, _ in batch))
        loop = asyncio.get_running_loop()
        lookup = self._lookup

        def run() -> None:  # on a reader thread; no asyncio task or future chain per batch
            found: dict[str, V] = {}
            error: BaseException | None = None
            try:
                found = self._in_transaction(lambda conn: lookup(conn, keys))
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
        batch: list[tuple[str, asyncio.Future[V | None]]],
        found: dict[str, V],
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

    # -- writes ------------------------------------------------------------------------------

    async def write(self, fn: Statement[T]) -> T:
        """Run ``fn`` on the writer's connection inside a group-committed transaction, in
        its own savepoint: when this returns, ``fn``'s changes are committed durably; when
        ``fn`` raises, they are rolled back and the error is raised here."""
        if not self._open:
            raise StoreClosed()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_WriteItem(fn, loop, future))
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
                self._init(conn)
            except BaseException:
                conn.close()
                raise
        except BaseException as exc:
            refusal = damage(exc, self._path) or unopenable(exc, self._path) or exc
            _resolve_threadsafe(loop, ready, None, refusal)
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
            # Anything queued behind the stop marker raced with stop(): refuse it.
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
                    result = item.fn(conn)
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
            self.commits += 1
        except BaseException as exc:  # whatever happened, keep the writer thread alive
            if conn.in_transaction:
                # A failed ROLLBACK resurfaces on the connection's next use; nothing to add.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            failure = damage(exc, self._path) or exc
            for item in group:
                _resolve_threadsafe(item.loop, item.future, None, failure)
            return
        for item, (result, error) in zip(group, outcomes, strict=True):
            _resolve_threadsafe(item.loop, item.future, result, error)


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


# Primary result codes (the low byte of extended ones) of a file SQLite cannot use.
_DAMAGED = frozenset((sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB))


def damage(exc: BaseException, path: str) -> StoreDamaged | None:
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


def unopenable(exc: BaseException, path: str) -> StoreConfigError | None:
    """The :class:`StoreConfigError` to raise for ``exc``, if SQLite could not open (or
    create) the file at all: a location the operator has to fix, said in words."""
    code = getattr(exc, "sqlite_errorcode", 0)
    if not isinstance(exc, sqlite3.OperationalError) or code & 0xFF != sqlite3.SQLITE_CANTOPEN:
        return None
    return StoreConfigError(sqlite_location_problem(path) or f"cannot open {path} ({exc})")


def sqlite_location_problem(path: str | os.PathLike[str]) -> str | None:
    """What keeps a database file from being made at ``path`` (None: nothing seen)."""
    shown = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        return f"the directory of {shown} does not exist: create {parent}, or give another path"
    if not os.path.exists(path) and not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot create {shown}: {parent} is not writable by this user"
    return None
