"""One holder of a named role among every process of every host on one database: a
session-level advisory lock, held by a connection of its own. The server releases it when
that connection ends, however the process ends (``kill -9`` included), so another process
takes the role over at its next try."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib

import asyncpg

log = logging.getLogger("idnode.store")

# The two-int advisory lock space of leases (apart from the store's key locks, which use
# single bigints, and its migration lock).
LEASE_SPACE = 0x1D40DE
TIMEOUT = 5.0  # seconds for connecting and for each check


class AdvisoryLease:
    """The lease called ``name`` on the database at ``dsn``."""

    def __init__(self, dsn: str, name: str) -> None:
        self.dsn = dsn
        self.name = name
        self.key = (LEASE_SPACE, zlib.crc32(name.encode()) - (1 << 31))  # a signed int4
        self._conn: asyncpg.Connection | None = None
        self.held = False

    async def try_acquire(self) -> bool:
        """Whether this process holds the lease now: kept if held (checked on the server),
        else taken if free. A lease lost since the last try is reported (False) once. Never
        raises: an unreachable server means not held."""
        if self.held and (self._conn is None or self._conn.is_closed()):
            return await self._lost("its session ended")
        for attempt in (1, 2):
            try:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await asyncpg.connect(
                        self.dsn,
                        timeout=TIMEOUT,
                        server_settings={"application_name": f"idnode-lease-{self.name}"},
                    )
                if self.held:  # still ours while the session lives: one round trip says so
                    await asyncio.wait_for(self._conn.fetchval("SELECT 1"), TIMEOUT)
                    return True
                lock = self._conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", *self.key)
                self.held = bool(await asyncio.wait_for(lock, TIMEOUT))
                if self.held:
                    log.info("lease %s: taken", self.name)
                return self.held
            except Exception as exc:
                if self.held:
                    return await self._lost(str(exc) or repr(exc))
                await self._drop()  # an idle session that had ended: once more, afresh
                if attempt == 2:
                    log.debug("lease %s: not taken (%s)", self.name, exc)
        return False

    async def _lost(self, why: str) -> bool:
        log.warning("lease %s: lost (%s)", self.name, why)
        await self._drop()
        return False

    async def release(self) -> None:
        """Give the lease up (closing the session releases it)."""
        await self._drop()

    async def _drop(self) -> None:
        self.held = False
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), TIMEOUT)
            if not conn.is_closed():
                conn.terminate()
