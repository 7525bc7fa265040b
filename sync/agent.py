"""The sync agent of a serving process: statistics flushing, the forwarding configuration
and — in one process per data directory — the outbox sender and heartbeats.

Every serving process flushes its resolution counts into the store every
``flush_every`` seconds (one small transaction, never one per request) and, once the node is
registered, points the node's forwarding (:mod:`resolver.forward`) at the top-level and its
trust root, so foreign prefixes are resolved; it adds its figures to ``/metrics``. The one
process that holds the sender lease also closes finished statistics intervals into the
outbox, delivers it, and sends heartbeats: ``DATA/sync/sender.lock`` among the processes of a
data directory (workers, several ``serve``), or, on a store several hosts share, the store's
own lease among every process of every host. Everything it needs to resume is in the store
and ``DATA/sync/``, so any process can take over after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import aiohttp

from registry.model.identifiers import NA_PREFIX
from registry.reporting import interval_start
from registry.store.base import Change, Lease, Record, SharedStore, Tally
from resolver.forward.base import Upstream
from resolver.node import Node
from sync.client import IntakeClient, IntakeError
from sync.protocol import HEARTBEAT_PATH
from sync.sender import backoff, drain
from sync.state import (
    SENDER_LOCK,
    Registration,
    SenderStatus,
    load_registration,
    load_status,
    registration_version,
    save_status,
    sync_dir,
)
from sync.status import metric_lines

log = logging.getLogger("idnode.sync")
NA_KEY = NA_PREFIX.upper()
SENDER_LEASE = "outbox-sender"  # the store's lease, where hosts share the store


class SenderLock:
    """An exclusive, non-blocking ``lockf`` on a file; released when the process dies.
    A :class:`registry.store.base.Lease` among the processes of one host."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    async def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class SyncAgent:
    def __init__(self, node: Node, clock: Callable[[], float] = time.time) -> None:
        self.node = node
        self.config = node.config
        self.data_dir = node.config.data_dir
        self.clock = clock
        self.wake = asyncio.Event()
        store = node.store
        self.lock: Lease = (
            store.lease(SENDER_LEASE)
            if isinstance(store, SharedStore)
            else SenderLock(sync_dir(self.data_dir) / SENDER_LOCK)
        )
        self.sending = False  # whether this process held the lease at its last try
        self.session: aiohttp.ClientSession | None = None
        self.registration: Registration | None = None
        self.client: IntakeClient | None = None
        self._reg_version: tuple[int, int] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._failures = 0
        self._next_flush = 0.0
        self._next_heartbeat = 0.0
        self.status: SenderStatus | None = None  # read when this process becomes the sender

    # -- lifetime --------------------------------------------------------------------------

    async def start(self) -> None:
        self.session = aiohttp.ClientSession()
        self.node.registry.write_hooks.append(self._on_write)
        self.node.metrics.append(self._metrics)
        self._watch_registration()
        self._task = asyncio.create_task(self._run(), name="idnode-sync")

    async def stop(self) -> None:
        self._stopping = True
        self.wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.flush()  # the counts of the last seconds are not lost on a clean stop
        await self.lock.release()
        self.node.forwarding.configure(None)
        if self._metrics in self.node.metrics:
            self.node.metrics.remove(self._metrics)
        if self.session is not None:
            await self.session.close()

    async def _on_write(self, _keys: Sequence[str]) -> None:
        self.wake.set()  # a local write may have added outbox items: send them now

    async def _metrics(self) -> list[str]:
        sender = "idnode_sync_sender"
        own = [f"# TYPE {sender} gauge", f"{sender} {int(self.sending)}"]
        return [*await metric_lines(self.node), *own]

    # -- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the agent die: log, back off, go on
                log.exception("sync agent error")
                self._failures += 1
            delay = self.config.sync_poll
            if self._failures:
                delay = max(delay, min(self.config.sync_retry_max, backoff(self._failures)))
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), delay)

    async def _tick(self) -> None:
        now = time.monotonic()
        if now >= self._next_flush:
            self._next_flush = now + self.flush_every
            await self.flush()
        self._watch_registration()
        if self.registration is None or self.client is None:
            return
        self.sending = await self.lock.try_acquire()
        if self.sending:
            await self.send()

    @property
    def flush_every(self) -> float:
        return max(0.2, min(10.0, self.config.stats_interval / 4))

    # -- statistics ------------------------------------------------------------------------

    async def flush(self) -> None:
        """Move this process's resolution counts into the store (current interval)."""
        resolver = self.node.resolver
        hits = resolver.take_hits()
        hits.pop(NA_KEY, None)  # prefix handles (0.NA/...) are the node's, not a prefix's
        if not hits:
            return
        seconds = self.config.stats_interval

        def mutate(_records: Mapping[str, Record]) -> tuple[list[Change], None]:
            start = interval_start(int(self.clock()), seconds)
            return [Tally(p, start, seconds, resolutions=n) for p, n in hits.items()], None

        try:
            await self.node.store.transact([], mutate)
        except BaseException:
            resolver.return_hits(hits)  # counted again in the next flush
            raise

    # -- registration and forwarding -------------------------------------------------------

    def _watch_registration(self) -> None:
        version = registration_version(self.data_dir)
        if version == self._reg_version:
            return
        self._reg_version = version
        reg = load_registration(self.data_dir)
        self.registration = reg
        assert self.session is not None
        if reg is None:
            self.client = None
            self.node.forwarding.configure(None)
            return
        self.client = IntakeClient(self.session, reg.toplevel, reg.app_id, self.node.keyring.key(0))
        # The app id is how the node names itself in X-Idnode-Via (loops).
        self.node.forwarding.configure(Upstream(reg.toplevel, (reg.trust_root,), reg.app_id))
        self._failures = 0

    # -- sending ---------------------------------------------------------------------------

    async def send(self) -> None:
        """Close finished statistics intervals, deliver the outbox, heartbeat when due."""
        assert self.client is not None
        if self.status is None:  # only the sender writes the file: read it once, on taking over
            self.status = load_status(self.data_dir)
        status = self.status
        wall = self.clock()
        status.last_attempt = wall
        try:
            # An interval is reported once every process has flushed into it.
            await self.node.store.stats_close(int(wall - 2 * self.flush_every))
            result = await drain(self.node.store, self.client)
            if time.monotonic() >= self._next_heartbeat:
                await self.client.post(HEARTBEAT_PATH, {"status": await self.node_status()})
                self._next_heartbeat = time.monotonic() + self.config.heartbeat_interval
                status.heartbeat = wall
        except IntakeError as exc:
            self._failures += 1
            status.last_error, status.last_error_at = str(exc), wall
            save_status(self.data_dir, status)
            log.warning("sync: %s (retry %d)", exc, self._failures)
            return
        had_failures = self._failures
        self._failures = 0
        if result.delivered or result.refused or had_failures or status.heartbeat == wall:
            status.last_success = wall
            status.delivered += result.delivered
            status.refused += result.refused
            save_status(self.data_dir, status)

    async def node_status(self) -> dict[str, object]:
        from resolver import __version__

        summary = await self.node.store.outbox_summary()
        return {
            "name": self.config.name,
            "version": __version__,
            "prefixes": list(self.config.prefixes),
            "records": await self.node.store.count(),
            "outbox_pending": summary.pending,
            "outbox_dead": summary.dead,
            "time": int(self.clock()),
        }
