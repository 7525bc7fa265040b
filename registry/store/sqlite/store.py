"""The SQLite store: one file, WAL mode, durable group commit.

:class:`SQLiteStore` puts the pieces together: the threads SQLite runs on (:mod:`.threads`),
the SQL of records (:mod:`.records`), of reverse lookup (:mod:`.lookup`) and of reports
(:mod:`.reports`), and the schema (:mod:`registry.store.migrations`).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from registry.store import migrations
from registry.store.base import Mutation, OutboxItem, OutboxSummary, Record
from registry.store.chain import AuditEntry, AuditHead, AuditQuery
from registry.store.sqlite import audit, lookup, records, reports
from registry.store.sqlite.threads import Threads

R = TypeVar("R")


def _init(conn: sqlite3.Connection) -> None:
    """First thing on the writer's connection: WAL, then pending migrations."""
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise RuntimeError(f"Could not enable WAL journal mode (got {mode!r})")
    migrations.migrate(conn)


class SQLiteStore:
    """A :class:`registry.store.base.Store` in one SQLite database file at ``path``.

    ``readers`` is the number of reader threads (and connections). The path must be a real
    file: every thread opens its own connection to it. ``trace``, if given, is called with
    every SQL statement the store executes (for debugging and checking query plans).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        readers: int = 4,
        trace: Callable[[str], None] | None = None,
    ) -> None:
        self._threads = Threads(
            path, readers=readers, init=_init, lookup=records.batched_records, trace=trace
        )

    @property
    def commits(self) -> int:
        """Transactions committed so far; concurrent writes share one (group commit)."""
        return self._threads.commits

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the writer connection, apply pending migrations and start the reader pool."""
        await self._threads.start()

    async def close(self) -> None:
        """Complete queued transactions and reads, then stop the threads and close the
        connections. Idempotent."""
        await self._threads.stop()

    async def schema_version(self) -> int:
        """The schema version recorded in the database."""
        return await self._threads.read(migrations.schema_version)

    # -- reads -------------------------------------------------------------------------------

    def get(self, key: str) -> Coroutine[Any, Any, Record | None]:
        """The record at ``key``, or None (read together with the other keys asked for
        meanwhile)."""
        # A plain def handing out the batched read's own coroutine: the cold path (every
        # request a store read) pays no second coroutine.
        return self._threads.read_key(key)

    async def get_many(self, keys: Sequence[str]) -> dict[str, Record]:
        """Records for those keys that exist."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        return await self._threads.read(lambda conn: records.select_records(conn, wanted))

    async def list_handles(
        self, prefix_key: str, offset: int = 0, limit: int | None = None
    ) -> tuple[int, list[str]]:
        """(total count, handles) of the records whose prefix key is ``prefix_key``, ordered
        by key; ``limit`` None means all from ``offset``."""
        if offset < 0 or (limit is not None and limit < 0):
            raise ValueError("offset and limit must not be negative")
        prefix = records.upper(prefix_key)
        return await self._threads.read(
            lambda conn: records.list_handles(conn, prefix, offset, limit)
        )

    async def iter_handles(
        self, prefix_key: str, after_key: str | None, limit: int
    ) -> list[tuple[str, str]]:
        """(key, handle) of up to ``limit`` records of ``prefix_key`` after ``after_key``."""
        prefix = records.upper(prefix_key)
        return await self._threads.read(
            lambda conn: records.iter_handles(conn, prefix, after_key, limit)
        )

    async def reverse_lookup(
        self, type_key: str, pattern: str, limit: int, within: Sequence[str] | None = None
    ) -> list[str]:
        """Handles having a value of type ``type_key`` (upper-cased) whose text data matches
        ``pattern`` (``*`` matches any run of characters, case-sensitive), ordered by handle
        key. ``within``: only handles whose prefix key equals or is derived from one of these
        prefix keys (None: no restriction)."""
        if limit <= 0 or (within is not None and not within):
            return []
        vtype = records.upper(type_key)
        return await self._threads.read(
            lambda conn: lookup.reverse_lookup(conn, vtype, pattern, limit, within)
        )

    async def scan(self, after_key: str | None, limit: int) -> list[tuple[str, Record]]:
        """Records in key order, starting after ``after_key`` (for export)."""
        if limit <= 0:
            return []
        return await self._threads.read(lambda conn: records.scan(conn, after_key, limit))

    async def count(self) -> int:
        """The number of records."""
        return await self._threads.read(records.count)

    # -- writes ------------------------------------------------------------------------------

    async def transact(self, keys: Sequence[str], mutation: Mutation[R]) -> R:
        """Read ``keys``, run ``mutation`` on them and apply its changes atomically and durably.

        When this returns, the changes are committed and survive a crash of the process.
        """
        wanted = list(keys)
        result: R = await self._threads.write(
            lambda conn: records.run_mutation(conn, wanted, mutation)
        )
        return result

    # -- sync: outbox and statistics ---------------------------------------------------------

    async def outbox_peek(self, limit: int) -> list[OutboxItem]:
        """The oldest ``limit`` pending outbox items, in ``seq`` order."""
        return await self._threads.read(lambda conn: reports.outbox_peek(conn, limit))

    async def outbox_done(self, delivered: Sequence[int], dead: Mapping[int, str]) -> None:
        """Remove delivered items; move ``dead`` ones (seq → reason) aside."""
        if delivered or dead:
            gone, dead_ = list(delivered), dict(dead)
            await self._threads.write(lambda conn: reports.outbox_done(conn, gone, dead_))

    async def outbox_summary(self) -> OutboxSummary:
        """Pending and dead item counts, and the oldest pending item's age."""
        return await self._threads.read(reports.outbox_summary)

    async def stats_close(self, before: int) -> int:
        """Turn every statistics interval that ended at or before ``before`` and is not yet
        reported into an outbox item, in one transaction; returns how many."""
        return int(await self._threads.write(lambda conn: reports.close_stats(conn, before)))

    async def stats_totals(self) -> dict[str, dict[str, int]]:
        """Counts per prefix over all intervals (reported or not)."""
        return await self._threads.read(reports.stats_totals)

    # -- the audit log -----------------------------------------------------------------------

    async def audit_head(self) -> AuditHead:
        """The newest entry's number and hash, and the anchor the log starts from."""
        return await self._threads.read(audit.head)

    async def audit_entries(self, query: AuditQuery, after: int, limit: int) -> list[AuditEntry]:
        """Up to ``limit`` entries matching ``query`` numbered after ``after``, in order."""
        return await self._threads.read(lambda conn: audit.entries(conn, query, after, limit))

    async def audit_prune(self, before: float, limit: int) -> int:
        """Delete up to ``limit`` of the oldest entries made before ``before`` (see
        :func:`.audit.prune`); how many."""
        return int(await self._threads.write(lambda conn: audit.prune(conn, before, limit)))
