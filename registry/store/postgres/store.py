"""The PostgreSQL store: records in a server several serving hosts share.

:class:`PostgresStore` keeps two asyncpg pools (reads, writes; statements are prepared once
per connection by asyncpg's statement cache), so writers waiting on a busy key never starve
the cold read path. Single-key reads are batched as on SQLite: the keys asked for during one
event-loop pass go to the server as one ``key = ANY($1)`` query.

A write (:meth:`transact`) is one transaction: it locks the keys it reads (advisory locks
on their hashes, which also cover keys that do not exist yet, and ``FOR UPDATE`` on the
rows), runs the mutation on a thread over exactly those rows, locks any further key the
mutation writes, and applies the changes (:mod:`.apply`). Concurrent writers of a key thus
run one after the other, as on SQLite; writers of different keys run side by side. A write
of many keys (an import batch) takes one exclusive lock instead, which every other write
holds shared. Deadlocks and serialisation failures are retried whole (mutations are pure).

A lost connection is a :class:`StoreUnavailable` (503); a read, or a write that had not
begun committing, is first tried once more on a fresh connection.

Resolution reads (single records, listings, reverse lookup) may go to read replicas
(:mod:`.replicas`), held to the host's write position; everything else reads the primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn, TypeVar

import asyncpg

from registry.store.base import (
    CacheListener,
    Mutation,
    OutboxItem,
    OutboxSummary,
    Record,
    ReplicaStatus,
    StoreClosed,
    StoreDamaged,
    StoreUnavailable,
    WritePositions,
    key_hash,
)
from registry.store.chain import AuditEntry, AuditHead, AuditQuery
from registry.store.postgres import audit, lookup, reports, schema
from registry.store.postgres.apply import apply
from registry.store.postgres.channel import ChangeChannel, Notice
from registry.store.postgres.errors import RETRYABLE, is_unavailable, redact, translate
from registry.store.postgres.lease import AdvisoryLease
from registry.store.postgres.plan import (
    Plan,
    decode,
    key_lock,
    run,
    storable,
    upper,
)
from registry.store.postgres.replicas import Replica, ReplicaSet

log = logging.getLogger("idnode.store")

R = TypeVar("R")
T = TypeVar("T")

# A write locks each of its keys up to this many; one of more keys locks everything.
MAX_KEY_LOCKS = 64
# The lock every write holds: shared by writes of a few keys, exclusive by bulk ones.
BULK_LOCK = -0x1D40DE
# Attempts of a transaction that deadlocked or met a serialisation failure.
MAX_ATTEMPTS = 8
# Rows decoded on a thread rather than the event loop from this many on.
DECODE_OFF_LOOP = 64
CONNECT_TIMEOUT = 5.0  # seconds to open a connection
COMMAND_TIMEOUT = 60.0  # seconds any one statement may take

_SELECT = "SELECT key, handle, vals FROM handles WHERE key = ANY($1::text[])"
_LOCK_KEYS = (
    "SELECT count(*) FROM (SELECT pg_advisory_xact_lock_shared($1::bigint)"
    " UNION ALL SELECT pg_advisory_xact_lock(k) FROM unnest($2::bigint[]) AS k) AS s"
)
_LOCK_MORE = "SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) AS k"
_LOCK_ALL = "SELECT pg_advisory_xact_lock($1::bigint)"

Query = Callable[[asyncpg.Connection], Awaitable[T]]


class _NeedsBulk(Exception):
    """The mutation writes more keys than a write locks one by one: start again holding
    the bulk lock."""


class PostgresStore:
    """A :class:`registry.store.base.Store` in the PostgreSQL database at ``dsn``
    (``postgresql://user@host:port/db``; a password is better given by ``PGPASSWORD`` or
    ``~/.pgpass`` than in the URL). ``readers`` and ``writers``: connections per pool (and
    per replica: ``readers``); ``replicas``: URLs of read replicas (streaming standbys)."""

    def __init__(
        self,
        dsn: str,
        *,
        readers: int = 4,
        writers: int | None = None,
        replicas: Sequence[str] = (),
    ) -> None:
        if readers < 1 or (writers is not None and writers < 1):
            raise ValueError("readers and writers must be at least 1")
        self.dsn = dsn
        self._replicas = ReplicaSet(replicas, readers) if replicas else None
        self._positions: WritePositions | None = None
        self._readers = readers
        self._writers = writers or readers
        self._read_pool: asyncpg.Pool | None = None
        self._write_pool: asyncpg.Pool | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._open = False
        self._draining = False  # closing: only the reads already asked for still run
        self._closed = False
        self._lifecycle = asyncio.Lock()
        self._busy = 0  # calls in progress (close waits for them)
        self._idle: asyncio.Event | None = None
        self._batch: list[tuple[str, asyncio.Future[Record | None]]] = []
        self._batches: set[asyncio.Task[None]] = set()
        self._channel: ChangeChannel | None = None

    def __repr__(self) -> str:
        return f"PostgresStore({redact(self.dsn)!r})"

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, apply pending migrations. Idempotent; a closed store is not reopened."""
        async with self._lifecycle:
            if self._closed:
                raise StoreClosed("A closed store cannot be reopened; create a new one")
            if self._open:
                return
            try:
                self._write_pool = await self._pool(self._writers)
                async with self._write_pool.acquire() as conn:
                    await self._migrate(conn)
                self._read_pool = await self._pool(self._readers)
                if self._replicas is not None:
                    await self._replicas.start(self._read_pool)
            except BaseException as exc:
                await self._close_pools()
                if isinstance(exc, Exception):
                    self._raise(exc, opening=True)
                raise
            self._executor = ThreadPoolExecutor(self._writers, thread_name_prefix="pg-mutation")
            self._open = True

    def _raise(self, exc: Exception, **how: bool) -> NoReturn:
        """Raise what ``exc`` means to the node (:func:`.errors.translate`)."""
        mapped = translate(exc, self.dsn, **how)
        if mapped is exc:
            raise exc
        raise mapped from exc

    async def _migrate(self, conn: asyncpg.Connection) -> None:
        try:
            await schema.migrate(conn)
        except asyncpg.exceptions.SyntaxOrAccessError as exc:
            if isinstance(exc, asyncpg.exceptions.InsufficientPrivilegeError):
                raise
            # Tables of ours that are missing or shaped otherwise: not this store's database.
            raise StoreDamaged(
                f"{redact(self.dsn)} is not an idnode registry database, or its schema is "
                f"damaged ({exc}): name an empty database, or restore this one from a backup"
            ) from exc

    async def _pool(self, size: int) -> asyncpg.Pool:
        return await asyncpg.create_pool(
            self.dsn,
            # No floor: a pool holding one reconnects on its own while the server restarts,
            # logging a traceback per try; connections are opened as reads need them.
            min_size=0,
            max_size=size,
            timeout=CONNECT_TIMEOUT,
            command_timeout=COMMAND_TIMEOUT,
            max_inactive_connection_lifetime=60.0,
            # JIT compiling costs more than the short statements here ever run.
            server_settings={"jit": "off", "application_name": "idnode"},
        )

    async def close(self) -> None:
        """Let calls in progress finish, then close every connection. Idempotent."""
        async with self._lifecycle:
            if self._closed:
                return
            self._closed = True
            was_open, self._open = self._open, False
            if was_open:
                self._draining = True
                try:
                    await self._drain()
                finally:
                    self._draining = False
            if self._channel is not None:
                await self._channel.stop()
            await self._close_pools()
            if self._executor is not None:
                self._executor.shutdown(wait=False)

    async def _drain(self) -> None:
        while self._busy or self._batch or self._batches:
            if self._batch and not self._batches:
                self._dispatch()
            self._idle = asyncio.Event()
            await self._idle.wait()

    def _settled(self) -> None:
        if self._idle is not None and not (self._busy or self._batch or self._batches):
            self._idle.set()

    async def _close_pools(self) -> None:
        if self._replicas is not None:
            await self._replicas.stop()
        for pool in (self._read_pool, self._write_pool):
            if pool is not None:
                try:
                    await asyncio.wait_for(pool.close(), CONNECT_TIMEOUT)
                except Exception:  # the server is gone: drop the connections
                    pool.terminate()
        self._read_pool = self._write_pool = None

    def _check_open(self) -> None:
        if not self._open:
            raise StoreClosed()

    def _enter(self, internal: bool = False) -> None:
        """Count a call in; ``internal``: a batch of reads asked for before close began."""
        if not (internal and self._draining):
            self._check_open()
        self._busy += 1

    def _leave(self) -> None:
        self._busy -= 1
        self._settled()

    async def share(
        self,
        host: int,
        lease: float,
        listener: CacheListener | None,
        positions: WritePositions | None = None,
    ) -> None:
        """Join the other hosts serving this database (:mod:`.channel`): from now on each
        write returns once every other host's cache has it. ``host``: this host's id;
        ``lease``: seconds; ``listener``: this process's cache (None: it never caches);
        ``positions``: the host's write position (:mod:`.replicas`; None: no replica is
        read from)."""
        self._check_open()
        if self._channel is not None:
            raise RuntimeError("the store is shared already")
        self._positions = positions
        # Other hosts' notices need their position only where replicas are read from.
        heard = positions if self._replicas is not None else None
        self._channel = ChangeChannel(self.dsn, host, lease, listener, heard)
        await self._channel.start()

    def replicas(self) -> list[ReplicaStatus]:
        """The read replicas, as last polled."""
        return [] if self._replicas is None else self._replicas.status()

    def lease(self, name: str) -> AdvisoryLease:
        """The role ``name`` among every process on this database (:mod:`.lease`)."""
        return AdvisoryLease(self.dsn, name)

    async def schema_version(self) -> int:
        """The schema version recorded in the database."""
        return await self._read(schema.schema_version)

    # -- reads -------------------------------------------------------------------------------

    async def _read(
        self,
        query: Query[T],
        *,
        snapshot: bool = False,
        internal: bool = False,
        replica: bool = False,
    ) -> T:
        """``query`` on a reader connection (``snapshot``: inside one read-only repeatable
        read transaction, for reads of several statements); once more on a fresh connection
        if the first one was lost. ``replica``: a resolution read, which a replica that is
        far enough may answer (:mod:`.replicas`)."""
        self._enter(internal)
        try:
            if replica and self._replicas is not None:
                position = self._replica_position()
                target = None if position is None else self._replicas.pick(position)
                if position is not None and target is not None:
                    try:
                        answer = await _on_replica(target, position, query, snapshot)
                    except Exception as exc:  # the primary answers instead
                        target.failed(exc)
                    else:
                        target.reads += 1
                        return answer
            for attempt in (1, 2):
                pool = self._read_pool
                assert pool is not None
                try:
                    async with pool.acquire() as conn, _discarded_if_lost(conn):
                        return await _run(conn, query, snapshot)
                except Exception as exc:
                    if attempt == 1 and is_unavailable(exc) and not isinstance(exc, TimeoutError):
                        continue
                    self._raise(exc)
            raise AssertionError("unreachable")
        finally:
            self._leave()

    def _replica_position(self) -> int | None:
        """The write position a replica must have replayed to answer a read; None when the
        process may have missed writes (its cache channel out of step): read the primary."""
        channel, positions = self._channel, self._positions
        if channel is None or positions is None or not channel.is_coherent:
            return None
        return positions.position()

    async def get(self, key: str) -> Record | None:
        """The record at ``key``, or None (read together with the other keys asked for
        during the same event-loop pass)."""
        self._check_open()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Record | None] = loop.create_future()
        if not self._batch:
            loop.call_soon(self._dispatch)
        self._batch.append((key, future))
        return await future

    def _dispatch(self) -> None:
        """Send the keys waiting to the server as one query (a loop callback); at most one
        batch per reader connection is out at once, the rest wait for the next."""
        if not self._batch or len(self._batches) >= self._readers:
            return
        batch, self._batch = self._batch, []
        task = asyncio.get_running_loop().create_task(self._fetch(batch))
        self._batches.add(task)
        task.add_done_callback(self._landed)

    def _landed(self, task: asyncio.Task[None]) -> None:
        self._batches.discard(task)
        self._dispatch()
        self._settled()

    async def _fetch(self, batch: list[tuple[str, asyncio.Future[Record | None]]]) -> None:
        keys = [k for k in dict.fromkeys(key for key, _ in batch) if storable(k)]
        found: dict[str, Record] = {}
        error: BaseException | None = None
        try:
            if keys:
                found = await self._get_many(keys, internal=True)
        except Exception as exc:
            error = exc
        for key, future in batch:
            if future.done():  # its caller was cancelled
                continue
            if error is None:
                future.set_result(found.get(key))
            else:
                future.set_exception(error)

    async def get_many(self, keys: Sequence[str]) -> dict[str, Record]:
        """Records for those keys that exist."""
        wanted = [k for k in dict.fromkeys(keys) if storable(k)]
        if not wanted:
            return {}
        return await self._get_many(wanted)

    async def _get_many(self, wanted: list[str], internal: bool = False) -> dict[str, Record]:
        async def select(conn: asyncpg.Connection) -> list[Any]:
            return list(await conn.fetch(_SELECT, wanted))

        rows = await self._read(select, internal=internal, replica=True)
        if len(rows) < DECODE_OFF_LOOP:
            return decode(rows)
        return await asyncio.get_running_loop().run_in_executor(self._executor, decode, rows)

    async def list_handles(
        self, prefix_key: str, offset: int = 0, limit: int | None = None
    ) -> tuple[int, list[str]]:
        """(total count, handles) of the records whose prefix key is ``prefix_key``, ordered
        by key; ``limit`` None means all from ``offset``."""
        if offset < 0 or (limit is not None and limit < 0):
            raise ValueError("offset and limit must not be negative")
        prefix = upper(prefix_key)
        if not storable(prefix):
            return 0, []

        async def listing(conn: asyncpg.Connection) -> tuple[int, list[str]]:
            total = await conn.fetchval("SELECT n FROM prefix_counts WHERE prefix = $1", prefix)
            if not total or limit == 0:
                return int(total or 0), []
            rows = await conn.fetch(
                "SELECT handle FROM handles WHERE key >= $1 AND key < $2"
                " ORDER BY key LIMIT $3 OFFSET $4",
                prefix + "/",
                prefix + "0",
                limit,
                offset,
            )
            return int(total), [r[0] for r in rows]

        return await self._read(listing, snapshot=True, replica=True)

    async def iter_handles(
        self, prefix_key: str, after_key: str | None, limit: int
    ) -> list[tuple[str, str]]:
        """(key, handle) of up to ``limit`` records of ``prefix_key`` after ``after_key``."""
        prefix = upper(prefix_key)
        if limit <= 0 or not storable(prefix) or not storable(after_key or ""):
            self._check_open()
            return []

        async def page(conn: asyncpg.Connection) -> list[tuple[str, str]]:
            rows = await conn.fetch(
                "SELECT key, handle FROM handles WHERE key >= $1 AND key < $2 AND key > $3"
                " ORDER BY key LIMIT $4",
                prefix + "/",
                prefix + "0",
                after_key or "",
                limit,
            )
            return [(r[0], r[1]) for r in rows]

        return await self._read(page, replica=True)

    async def reverse_lookup(
        self, type_key: str, pattern: str, limit: int, within: Sequence[str] | None = None
    ) -> list[str]:
        """Handles having a value of type ``type_key`` (upper-cased) whose text data matches
        ``pattern`` (``*`` matches any run of characters, case-sensitive), ordered by handle
        key. ``within``: only handles whose prefix key equals or is derived from one of these
        prefix keys (None: no restriction)."""
        if limit <= 0 or (within is not None and not within):
            return []
        statement = lookup.query(upper(type_key), pattern, limit, within)
        if statement is None:
            return []
        sql, args = statement

        async def find(conn: asyncpg.Connection) -> list[str]:
            return [r[0] for r in await conn.fetch(sql, *args)]

        return await self._read(find, replica=True)

    async def scan(self, after_key: str | None, limit: int) -> list[tuple[str, Record]]:
        """Records in key order, starting after ``after_key`` (for export)."""
        if limit <= 0:
            return []

        async def page(conn: asyncpg.Connection) -> list[Any]:
            return list(
                await conn.fetch(
                    "SELECT key, handle, vals FROM handles WHERE key > $1 ORDER BY key LIMIT $2",
                    after_key or "",
                    limit,
                )
            )

        rows = await self._read(page)
        records = await asyncio.get_running_loop().run_in_executor(self._executor, decode, rows)
        return [(row[0], records[row[0]]) for row in rows]

    async def count(self) -> int:
        """The number of records."""

        async def total(conn: asyncpg.Connection) -> int:
            return int(await conn.fetchval("SELECT COALESCE(sum(n), 0) FROM prefix_counts"))

        return await self._read(total)

    # -- writes ------------------------------------------------------------------------------

    async def transact(self, keys: Sequence[str], mutation: Mutation[R]) -> R:
        """Read ``keys``, run ``mutation`` on them and apply its changes atomically and durably
        (see the module's docstring for the locking)."""
        wanted = sorted(k for k in set(keys) if storable(k))
        bulk = len(wanted) > MAX_KEY_LOCKS
        attempt = 0
        self._enter()
        try:
            while True:
                attempt += 1
                committing = False
                try:
                    pool = self._write_pool
                    assert pool is not None
                    channel, notice = self._channel, None
                    try:
                        async with pool.acquire() as conn, _discarded_if_lost(conn):
                            async with conn.transaction():
                                result, notice = await self._transaction(
                                    conn, wanted, mutation, bulk, channel
                                )
                                committing = True  # the transaction commits as the block ends
                            if channel is not None and notice is not None:
                                hosts, position = await channel.hosts(conn)
                                if self._positions is not None:  # before the cache bumps
                                    self._positions.advance(position)
                        if channel is not None and notice is not None:
                            # The connection is back in the pool while the hosts answer.
                            await channel.settle(notice, hosts)
                    finally:
                        if channel is not None and notice is not None:
                            channel.drop(notice)
                    return result
                except _NeedsBulk:
                    bulk = True
                except RETRYABLE as exc:
                    if attempt >= MAX_ATTEMPTS:
                        raise StoreUnavailable("The registry is too busy; try again") from exc
                except Exception as exc:
                    # A connection lost before committing rolled the transaction back.
                    retry = is_unavailable(exc) and not committing and attempt == 1
                    if not retry or isinstance(exc, TimeoutError):
                        self._raise(exc, committing=committing)
        finally:
            self._leave()

    async def _transaction(
        self,
        conn: asyncpg.Connection,
        wanted: list[str],
        mutation: Mutation[R],
        bulk: bool,
        channel: ChangeChannel | None,
    ) -> tuple[R, Notice | None]:
        """The body of :meth:`transact`'s transaction: its result, and the notice of its
        writes sent to the other hosts (if it shares the store with them)."""
        locked: set[str] = set(wanted)
        if bulk:
            await conn.execute(_LOCK_ALL, BULK_LOCK)
            rows = await conn.fetch(_SELECT, wanted) if wanted else []
        else:
            await conn.execute(_LOCK_KEYS, BULK_LOCK, sorted({key_lock(k) for k in wanted}))
            rows = await conn.fetch(_SELECT + " FOR UPDATE", wanted) if wanted else []
        loop = asyncio.get_running_loop()
        plan: Plan
        plan, result = await loop.run_in_executor(self._executor, run, rows, mutation)
        exists = dict.fromkeys(wanted, False)
        exists.update((row[0], True) for row in rows)
        if not bulk:
            await self._lock_written(conn, plan, locked, exists)
        await apply(conn, plan, exists)
        notice: Notice | None = None
        if channel is not None:
            written = [key_hash(k) for step in plan.steps for k in step.keys]
            if written:
                notice = channel.notice(written)
                await channel.send(conn, notice)
        return result, notice

    async def _lock_written(
        self, conn: asyncpg.Connection, plan: Plan, locked: set[str], exists: dict[str, bool]
    ) -> None:
        """Lock the keys ``plan`` writes that the transaction did not read (a blind write
        still waits for a writer that read them)."""
        more = {key for step in plan.steps for key in step.keys if key not in locked}
        if not more:
            return
        if len(locked) + len(more) > MAX_KEY_LOCKS:
            raise _NeedsBulk()
        await conn.execute(_LOCK_MORE, sorted({key_lock(k) for k in more}))
        locked |= more  # their existence is unknown: apply finds it out by upsert

    # -- sync: outbox and statistics ---------------------------------------------------------

    async def _write(self, query: Query[T]) -> T:
        """``query`` in a transaction on a writer connection (no records changed)."""
        self._enter()
        try:
            pool = self._write_pool
            assert pool is not None
            committing = False
            try:
                async with pool.acquire() as conn, _discarded_if_lost(conn), conn.transaction():
                    result = await query(conn)
                    committing = True
                return result
            except Exception as exc:
                self._raise(exc, committing=committing)
        finally:
            self._leave()

    async def outbox_peek(self, limit: int) -> list[OutboxItem]:
        """The oldest ``limit`` pending outbox items, in ``seq`` order."""
        return await self._read(lambda conn: reports.outbox_peek(conn, limit))

    async def outbox_done(self, delivered: Sequence[int], dead: Mapping[int, str]) -> None:
        """Remove delivered items; move ``dead`` ones (seq → reason) aside."""
        self._check_open()
        if delivered or dead:
            gone, dead_ = list(delivered), dict(dead)
            await self._write(lambda conn: reports.outbox_done(conn, gone, dead_))

    async def outbox_summary(self) -> OutboxSummary:
        """Pending and dead item counts, and the oldest pending item's age."""
        return await self._read(reports.outbox_summary, snapshot=True)

    async def stats_close(self, before: int) -> int:
        """Turn every statistics interval that ended at or before ``before`` and is not yet
        reported into an outbox item, in one transaction; returns how many."""
        return await self._write(lambda conn: reports.close_stats(conn, before))

    async def stats_totals(self) -> dict[str, dict[str, int]]:
        """Counts per prefix over all intervals (reported or not)."""
        return await self._read(reports.stats_totals)

    # -- the audit log -----------------------------------------------------------------------

    async def audit_head(self) -> AuditHead:
        """The newest entry's number and hash, and the anchor the log starts from."""
        return await self._read(audit.head)

    async def audit_entries(self, query: AuditQuery, after: int, limit: int) -> list[AuditEntry]:
        """Up to ``limit`` entries matching ``query`` numbered after ``after``, in order."""
        return await self._read(lambda conn: audit.entries(conn, query, after, limit))

    async def audit_prune(self, before: float, limit: int) -> int:
        """Delete up to ``limit`` of the oldest entries made before ``before`` (see
        :func:`.audit.prune`); how many."""
        return await self._write(lambda conn: audit.prune(conn, before, limit))


class _Behind(Exception):
    """The replica's connection met a server new to us: how far it replayed is unknown."""


async def _on_replica(replica: Replica, position: int, query: Query[T], snapshot: bool) -> T:
    pool = replica.pool
    if pool is None:
        raise _Behind()
    async with pool.acquire() as conn, _discarded_if_lost(conn):
        if not replica.serves(position):  # a new connection may have found it restarted
            raise _Behind()
        return await _run(conn, query, snapshot)


async def _run(conn: asyncpg.Connection, query: Query[T], snapshot: bool) -> T:
    """``query`` on ``conn`` (``snapshot``: in one read-only repeatable read transaction)."""
    if not snapshot:
        return await query(conn)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        return await query(conn)


@contextlib.asynccontextmanager
async def _discarded_if_lost(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """Close ``conn`` when a failure says it is unusable, so the pool opens a fresh one
    instead of handing it out again."""
    try:
        yield
    except Exception as exc:
        if is_unavailable(exc):
            conn.terminate()
        raise
