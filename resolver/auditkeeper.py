"""What a serving process does for the audit log beside serving: record the configuration it
runs with when that changed since the last record, and prune entries past their retention
in the background (once at start, then daily: never on a write's path).

Several processes may prune at once (workers, hosts): each prune is a transaction holding
the chain's head, so they take turns and the later ones find nothing left to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from registry import auditlog
from registry.audit import Caller
from resolver.config import Config, recorded_settings
from resolver.node import Node

log = logging.getLogger("idnode.audit")

PRUNE_EVERY = 86400.0  # seconds between prunes
SERVE = Caller("serve", "local")  # who the configuration entries name


async def record_config(node: Node) -> None:
    """Append a ``config`` entry if the node runs with other settings than last recorded."""
    config = node.config
    if await auditlog.record_config(node.registry, recorded_settings(config), SERVE):
        log.info("configuration recorded in the audit log (first start, or changed since)")


class AuditKeeper:
    """The serving process's audit chores (a :class:`resolver.shell.Service`)."""

    def __init__(self, node: Node, *, record: bool = True) -> None:
        self.node = node
        self.record = record  # False: a worker whose parent recorded the configuration
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.record:
            await record_config(self.node)
        self._task = asyncio.create_task(self._prune_daily())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def prune(self, now: float | None = None) -> int:
        """Prune once (as at ``now``, default the present); how many entries went."""
        days = self.node.config.audit_retention_days
        when = time.time() if now is None else now
        pruned = await auditlog.prune(self.node.store, days, when)
        if pruned:
            log.info("audit log: %d entries older than %d days pruned", pruned, days)
        return pruned

    async def _prune_daily(self) -> None:
        while True:
            try:
                await self.prune()
            except Exception:  # the store is away for now: the next round tries again
                log.exception("audit log: pruning failed")
            await asyncio.sleep(PRUNE_EVERY)


async def record_config_once(config: Config) -> None:
    """:func:`record_config` from a process that does not serve (the parent of workers,
    which then need not, and do not race to, record it each)."""
    node = await Node.open(config, serving=False)
    try:
        await record_config(node)
    finally:
        await node.close()
