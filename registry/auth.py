"""Authentication: proving an identity ``index:handle`` with the secret in its HS_SECKEY, and
throttling repeated failures."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from registry.authz import Principal, group_refs
from registry.errors import AuthenticationFailed
from registry.model import admin as adm
from registry.model.identifiers import handle_key
from registry.model.values import HS_SECKEY, HS_VLIST, type_key
from registry.secrets import Sealer, secrets_equal
from registry.store.base import Record, Store

_DUMMY = b"\0" * 32
MAX_GROUP_DEPTH = 3


def parse_identity(text: str) -> adm.AdminRef:
    """``300:0.NA/88.118.8`` → AdminRef(300, "0.NA/88.118.8"); without ``N:`` the index is 0."""
    head, sep, rest = text.partition(":")
    if sep and head.isdigit():
        return adm.AdminRef(int(head), rest)
    return adm.AdminRef(0, text)


class Authenticator:
    """Checks secrets against the store (secrets are sealed at rest, compared in constant
    time) and resolves the HS_VLIST groups an identity belongs to."""

    def __init__(
        self,
        store: Store,
        sealer: Sealer,
        fetch: Callable[[str], Awaitable[Record | None]] | None = None,
    ) -> None:
        self._store = store
        self._sealer = sealer
        # Identity records are read through the record cache when there is one: it is exact,
        # and it keeps a store read off every authenticated request.
        self._fetch = fetch or store.get

    async def verify_secret(self, identity: adm.AdminRef, secret: bytes) -> Principal:
        if not identity.handle:
            raise AuthenticationFailed()
        record = await self._fetch(handle_key(identity.handle))
        matched = 0
        if record is not None:
            for v in record.values:
                if type_key(v.type) != HS_SECKEY:
                    continue
                if identity.index not in (0, v.index):
                    continue
                try:
                    stored = self._sealer.unseal(v.data)
                except Exception:  # a blob sealed under another key never matches
                    continue
                if secrets_equal(stored, secret) and not matched:
                    matched = v.index
        else:
            secrets_equal(_DUMMY, secret)  # keep timing independent of existence
        if not matched:
            raise AuthenticationFailed()
        # "0.NA/88.118.8" (index 0) is the identity of whichever key matched.
        return Principal(adm.AdminRef(matched, identity.handle))

    async def with_groups(self, who: Principal, records: dict[str, Record]) -> Principal:
        """``who`` with the HS_VLIST groups, named by admin values in ``records``, that
        contain it (directly or through nested groups, up to a small depth)."""
        me = (handle_key(who.identity.handle), who.identity.index)
        candidates = {(h, i) for h, i in group_refs(records) if (handle_key(h), i) != me and i != 0}
        groups: set[str] = set()
        members_of: dict[tuple[str, int], list[adm.AdminRef]] = {}
        frontier = candidates
        for _ in range(MAX_GROUP_DEPTH):
            if not frontier:
                break
            keys = sorted({handle_key(h) for h, _ in frontier})
            found = await self._store.get_many(keys)
            nxt: set[tuple[str, int]] = set()
            for h, i in frontier:
                rec = found.get(handle_key(h))
                if rec is None:
                    continue
                for v in rec.values:
                    if v.index == i and type_key(v.type) == HS_VLIST:
                        try:
                            refs = adm.decode_vlist(v.data)
                        except Exception:
                            refs = []
                        members_of[(handle_key(h), i)] = refs
                        nxt |= {(r.handle, r.index) for r in refs}
            frontier = {r for r in nxt if (handle_key(r[0]), r[1]) not in members_of}
        # A group contains me if a member is me or a group that contains me.
        changed = True
        while changed:
            changed = False
            for (gk, gi), refs in members_of.items():
                name = f"{gi}:{gk}"
                if name in groups:
                    continue
                for r in refs:
                    rk = handle_key(r.handle)
                    if (rk == me[0] and r.index in (0, me[1])) or f"{r.index}:{rk}" in groups:
                        groups.add(name)
                        changed = True
                        break
        return Principal(who.identity, frozenset(groups))


class FailureThrottle:
    """Slows down credential guessing: after ``free`` failures from one source, each further
    attempt must wait an exponentially growing delay (capped). Bounded memory (LRU)."""

    def __init__(
        self,
        free: int = 5,
        base: float = 1.0,
        cap: float = 300.0,
        max_sources: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free, self.base, self.cap = free, base, cap
        self._max = max_sources
        self._clock = clock
        self._fails: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def retry_after(self, source: str) -> float:
        """Seconds ``source`` must still wait before its credentials are checked (0: go)."""
        entry = self._fails.get(source)
        if entry is None:
            return 0.0
        count, last = entry
        if count < self.free:
            return 0.0
        delay = min(self.cap, self.base * 2.0 ** (count - self.free))
        return max(0.0, last + delay - self._clock())

    def failed(self, source: str) -> None:
        count, _ = self._fails.pop(source, (0, 0.0))
        self._fails[source] = (count + 1, self._clock())
        while len(self._fails) > self._max:
            self._fails.popitem(last=False)

    def succeeded(self, source: str) -> None:
        self._fails.pop(source, None)

    @staticmethod
    def ceil(seconds: float) -> int:
        return max(1, math.ceil(seconds))
