"""Which enterprise prefixes are not active, known on every resolution without a store read.

The truth is each home prefix's states record (``<home>/ENTERPRISE.STATES``,
:mod:`registry.model.enterprise`), which every lifecycle change rewrites in the same
transaction. This process holds it in memory, tagged with the generations of those records'
keys captured before reading them (:mod:`registry.cache.generations`): it is current exactly
while those generation words are unchanged — a write on this host bumps them before it is
acknowledged, another host's arrives through the shared store's channel, and a cache that may
have missed some bumps them all. So the hot path pays one aligned word load and a comparison
per home prefix, and an empty set (the usual case) nothing more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from registry.cache.records import RecordCache
from registry.errors import PrefixSuspended, PrefixWithdrawn
from registry.model import enterprise as ent
from registry.model.identifiers import Identifier, handle_key
from registry.store.base import Record


class PrefixStates:
    def __init__(self, records: RecordCache, homed: Sequence[str]) -> None:
        self.records = records
        self.keys = [handle_key(ent.states_handle(h)) for h in homed]
        self._offsets = [records.gens.slot_of(k) for k in self.keys]
        self._gens = records.gens
        self._single = len(self._offsets) == 1
        self._offset0 = self._offsets[0] if self._offsets else 0
        self._seen: list[int] | None = None  # the generations ``blocked`` was read at
        self.blocked: dict[str, str] = {}  # prefix key -> suspended | withdrawn
        self._memo: dict[str, str | None] = {}  # prefix key -> blocking state (or None)
        self._loading: asyncio.Future[None] | None = None

    def current(self) -> bool:
        """Whether :attr:`blocked` is known to be current (nothing awaited: the hot path)."""
        seen = self._seen
        if seen is None or not self.records.coherent:
            return False
        if self._single:  # one home prefix, the usual node: as few steps as can be
            return self._gens.get_slot(self._offset0) == seen[0]
        get = self._gens.get_slot
        return all(get(offset) == gen for offset, gen in zip(self._offsets, seen, strict=True))

    def state_of(self, prefix_key: str) -> str | None:
        """The state blocking ``prefix_key`` per :attr:`blocked` (which must be current)."""
        if not self.blocked:
            return None
        memo = self._memo
        if prefix_key not in memo:
            memo[prefix_key] = ent.blocked_state(prefix_key, self.blocked)
        return memo[prefix_key]

    async def refresh(self) -> None:
        """Make :attr:`blocked` current (one store read; concurrent callers share it)."""
        if self.current():
            return
        if self._loading is None:
            self._loading = asyncio.get_running_loop().create_future()
            try:
                gens = self.records.gens
                seen = [gens.get_slot(o) for o in self._offsets]  # before the read
                found = await self.records.store.get_many(self.keys)
                self.blocked = merged(found.values())
                self._memo = {}
                self._seen = seen
                self._loading.set_result(None)
            except BaseException as exc:
                self._loading.set_exception(exc)
                self._loading.exception()  # retrieved: no warning without waiters
                raise
            finally:
                self._loading = None
        else:
            await asyncio.shield(self._loading)

    async def check(self, ident: Identifier) -> None:
        """Refuse ``ident`` when its prefix is suspended (or withdrawn: not found)."""
        if ident.is_prefix_handle:
            return
        if not self.current():
            await self.refresh()
        raise_blocked(ident.prefix, self.state_of(ident.prefix_key))


def merged(records: Iterable[Record]) -> dict[str, str]:
    """The states of every home's states record."""
    out: dict[str, str] = {}
    for record in records:
        out.update(ent.decode_states(record.values))
    return out


def raise_blocked(prefix: str, state: str | None) -> None:
    if state == ent.SUSPENDED:
        raise PrefixSuspended(prefix)
    if state == ent.WITHDRAWN:
        raise PrefixWithdrawn(prefix)
