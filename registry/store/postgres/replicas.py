"""Read replicas: resolution reads served by streaming standbys, never older than what the
host has heard of.

A host records the highest WAL position of every write it heard of (its write position,
:class:`registry.store.base.WritePositions`): its own writes' (read on the primary once
committed), other hosts' (read on the primary as their notice arrives, before the host's
generations are bumped for them) and, when its cache channel comes back, the primary's
position at that moment (it may have missed notices while away). A read may go to a replica
only if that replica has replayed at least that far; otherwise, or while the process is out
of step with the other hosts (when it may have missed writes), it goes to the primary.

Why that is exact: an acknowledged write was heard by every host in step, and each raised
its position before bumping its generations. A cache fill reads its generation first and
the position after, so a fill that could see the write's bump is held to a replica that
has the write; one that could not is refused by the bump when it comes.

Each replica is polled in the background (:data:`POLL` seconds, and at once when a read
found it behind) for how far it has replayed, which only grows on one running server; a
replica's connections that meet a server started anew (restarted, or another one at its
address) drop what was known of it until polled again. A replica that fails, or is not a
standby, is left aside until a poll finds it well: its reads go to the primary, without an
error to the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Sequence

import asyncpg

from registry.store.base import ReplicaStatus
from registry.store.postgres.errors import is_unavailable, redact

log = logging.getLogger("idnode.store")

POLL = 0.5  # seconds between polls of a replica
CONNECT_TIMEOUT = 5.0
COMMAND_TIMEOUT = 5.0  # a hung replica costs a read this long once, then is left aside

_STATE = (
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn(), pg_postmaster_start_time(),"
    " extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8"
)
_PRIMARY = "SELECT pg_current_wal_lsn()"  # written so far: what a replica can have


class Replica:
    """One replica at ``dsn``: its connections and what was last seen of it."""

    def __init__(self, dsn: str, size: int) -> None:
        self.dsn = dsn
        self.name = redact(dsn)
        self.size = size
        self.pool: asyncpg.Pool | None = None
        self.up = False
        self.replayed: int | None = None  # None: not known (down, or a server new to us)
        self.started: datetime.datetime | None = None  # the server's start, as last polled
        self.lag_bytes: int | None = None
        self.lag_seconds: float | None = None
        self.reads = 0
        self.skipped = 0
        self.kick = asyncio.Event()  # poll now

    async def connect(self) -> None:
        # min_size=0: opening the store never waits for (or fails on) a replica.
        self.pool = await asyncpg.create_pool(
            self.dsn,
            min_size=0,
            max_size=self.size,
            timeout=CONNECT_TIMEOUT,
            command_timeout=COMMAND_TIMEOUT,
            max_inactive_connection_lifetime=60.0,
            init=self._checked,
            server_settings={"jit": "off", "application_name": "idnode-replica"},
        )

    async def _checked(self, conn: asyncpg.Connection) -> None:
        """A new connection: if its server started since the last poll, forget how far it
        had replayed (a restarted standby may come back at an older position)."""
        started = await conn.fetchval("SELECT pg_postmaster_start_time()")
        if started != self.started:
            self.replayed = None
            self.kick.set()

    def serves(self, position: int) -> bool:
        return self.up and self.replayed is not None and self.replayed >= position

    def failed(self, exc: BaseException) -> None:
        """A read on it failed: the primary answers it; a lost server is left aside."""
        if is_unavailable(exc):
            if self.up:
                log.warning("read replica %s: %s; reading from the primary", self.name, exc)
            self.up = False
            self.replayed = None
        self.kick.set()

    async def poll(self, primary: int | None) -> None:
        """Ask the replica how far it has replayed (``primary``: the primary's position just
        before, for the lag; None: not asked this time)."""
        assert self.pool is not None
        try:
            async with self.pool.acquire() as conn:
                standby, replayed, started, behind = await conn.fetchrow(_STATE)
        except Exception as exc:
            if self.up or self.started is None:
                log.warning("read replica %s: %s", self.name, exc or repr(exc))
            self.up, self.replayed = False, None
            self.lag_bytes = self.lag_seconds = None
            return
        if not standby or replayed is None:
            if self.up or self.started is None:
                log.warning("read replica %s is not a standby: not read from", self.name)
            self.up, self.replayed, self.started = False, None, started
            return
        if not self.up:
            log.info("read replica %s: up, %d bytes replayed", self.name, replayed)
        self.up, self.replayed, self.started = True, int(replayed), started
        if primary is not None:
            self.lag_bytes = max(0, primary - int(replayed))
            self.lag_seconds = 0.0 if self.lag_bytes == 0 else max(0.0, float(behind or 0.0))

    def status(self) -> ReplicaStatus:
        return ReplicaStatus(
            self.name, self.up, self.lag_bytes, self.lag_seconds, self.reads, self.skipped
        )


class ReplicaSet:
    """The replicas of one store, each polled by a task of its own (see the module)."""

    def __init__(self, dsns: Sequence[str], size: int) -> None:
        self.replicas = [Replica(dsn, size) for dsn in dsns]
        self._tasks: list[asyncio.Task[None]] = []
        self._next = 0
        self._primary: asyncpg.Pool | None = None

    async def start(self, primary: asyncpg.Pool) -> None:
        """Start polling (``primary``: a pool on the primary, for the lag)."""
        self._primary = primary
        for replica in self.replicas:
            await replica.connect()
            replica.kick.set()
            self._tasks.append(asyncio.create_task(self._watch(replica), name="idnode-replica"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for replica in self.replicas:
            if replica.pool is not None:
                try:
                    await asyncio.wait_for(replica.pool.close(), CONNECT_TIMEOUT)
                except Exception:
                    replica.pool.terminate()
                replica.pool = None

    def pick(self, position: int) -> Replica | None:
        """A replica that has replayed up to ``position`` (in turn), or None; those behind
        are polled at once, so that the next read may find them caught up."""
        count = len(self.replicas)
        for i in range(count):
            replica = self.replicas[(self._next + i) % count]
            if replica.serves(position):
                self._next = (self._next + i + 1) % count
                return replica
        for replica in self.replicas:
            replica.skipped += 1
            replica.kick.set()
        return None

    def status(self) -> list[ReplicaStatus]:
        return [replica.status() for replica in self.replicas]

    async def _watch(self, replica: Replica) -> None:
        loop = asyncio.get_running_loop()
        due = 0.0  # when the lag is next measured (it costs a query on the primary)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(replica.kick.wait(), POLL)
            replica.kick.clear()
            primary = None
            if loop.time() >= due:
                due = loop.time() + POLL
                primary = await self._primary_position()
            await replica.poll(primary)

    async def _primary_position(self) -> int | None:
        if self._primary is None:
            return None
        try:
            async with self._primary.acquire() as conn:
                return int(await conn.fetchval(_PRIMARY))
        except Exception:  # the primary's own failures are the store's to report
            return None
