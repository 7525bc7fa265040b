"""Admin reads over many records: listing a prefix's handles, the node's prefixes, and
reverse lookup by value. All require an authenticated identity with rights over the prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from registry import authz
from registry.authz import Principal
from registry.errors import InsufficientPermissions, InvalidHandle, NotResponsible, ProtocolError
from registry.model import admin as adm
from registry.model.identifiers import (
    NA_PREFIX,
    check_prefix,
    handle_key,
    is_within,
    parse,
)
from registry.model.values import type_key
from registry.service import Registry

MAX_REVERSE_RESULTS = 10_000
# Pages are numbered and sized by 32-bit integers, as the reference server parses them, so
# page * pageSize always fits the store's 64-bit offsets.
MAX_PAGE = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Page:
    total: int
    handles: list[str]


class Listings:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def _list_target(self, prefix: str) -> str:
        """The prefix whose handles are listed: ``0.NA/88.118.8`` means ``88.118.8``."""
        if prefix.upper().startswith(NA_PREFIX + "/"):
            prefix = prefix[len(NA_PREFIX) + 1 :]
        if "/" in prefix:
            raise NotResponsible()
        try:
            check_prefix(prefix)
        except InvalidHandle:
            raise NotResponsible() from None
        return prefix

    async def _listable_prefixes(self, who: Principal) -> list[str]:
        """Listing "0.NA": the prefix handles whose prefix ``who`` may list."""
        return [p for p in await self.prefixes() if await self._may_list(p.split("/", 1)[1], who)]

    async def _authorised_key(self, prefix: str, who: Principal) -> str:
        target = self._list_target(prefix)
        key = handle_key(target)
        if not any(is_within(key, h) for h in self.registry.homed_keys):
            raise NotResponsible()
        if not await self._may_list(target, who):
            raise InsufficientPermissions(f"{who.identity} may not list handles of {target}")
        return key

    def _is_na(self, prefix: str) -> bool:
        return handle_key(self._list_target(prefix)) == NA_PREFIX.upper()

    async def list_handles(self, prefix: str, who: Principal, page: int, size: int) -> Page:
        """Page ``page`` (from 0) of ``size`` handles under ``prefix``; either out of range
        (0 to :data:`MAX_PAGE`, a size from 1) is a :class:`ProtocolError`."""
        if not 0 <= page <= MAX_PAGE:
            raise ProtocolError(f"page {page} is out of range (0 to {MAX_PAGE})"[:200])
        if not 1 <= size <= MAX_PAGE:
            raise ProtocolError(f"pageSize {size} is out of range (1 to {MAX_PAGE})"[:200])
        offset, limit = page * size, size
        if self._is_na(prefix):
            allowed = await self._listable_prefixes(who)
            return Page(len(allowed), allowed[offset : offset + limit])
        key = await self._authorised_key(prefix, who)
        total, handles = await self.registry.store.list_handles(key, offset, limit)
        return Page(total, handles)

    async def stream_handles(
        self, prefix: str, who: Principal, chunk: int = 10_000
    ) -> tuple[int, AsyncIterator[list[str]]]:
        """Every handle under ``prefix``: the count, and the handles in chunks (keyset paging,
        so a prefix of millions streams in bounded memory)."""
        if self._is_na(prefix):
            allowed = await self._listable_prefixes(who)

            async def one() -> AsyncIterator[list[str]]:
                yield allowed

            return len(allowed), one()
        key = await self._authorised_key(prefix, who)
        total, _ = await self.registry.store.list_handles(key, 0, 0)
        store = self.registry.store

        async def chunks() -> AsyncIterator[list[str]]:
            after: str | None = None
            while True:
                rows = await store.iter_handles(key, after, chunk)
                if not rows:
                    return
                yield [handle for _, handle in rows]
                after = rows[-1][0]

        return total, chunks()

    async def _may_list(self, prefix: str, who: Principal) -> bool:
        ident = parse(prefix + "/x")  # stands for any handle under the prefix
        records = await self.registry.authority(ident)
        who = await self.registry.authenticator.with_groups(who, records)
        return authz.rights_over(ident, records, who).may(adm.LIST_HANDLES)

    async def prefixes(self) -> list[str]:
        """Prefix handles (``0.NA/...``) this node is home for."""
        _, handles = await self.registry.store.list_handles(NA_PREFIX.upper())
        out = []
        for h in handles:
            key = handle_key(h.split("/", 1)[1])
            if any(is_within(key, home) for home in self.registry.homed_keys):
                out.append(h)
        return out

    async def administered(self, who: Principal) -> list[str]:
        """Prefix keys over which ``who`` holds any right."""
        out = []
        for h in await self.prefixes():
            prefix = h.split("/", 1)[1]
            ident = parse(prefix + "/x")
            records = await self.registry.authority(ident)
            member = await self.registry.authenticator.with_groups(who, records)
            if authz.rights_over(ident, records, member).inherited:
                out.append(handle_key(prefix))
        return out

    async def reverse_lookup(
        self, vtype: str, pattern: str, who: Principal, limit: int = 1000
    ) -> list[str]:
        within = await self.administered(who)
        if not within:
            return []
        # Derived prefixes are covered by their ancestors: keep only the outermost ones.
        outer = [k for k in within if not any(k != o and is_within(k, o) for o in within)]
        return await self.registry.store.reverse_lookup(
            type_key(vtype), pattern, min(limit, MAX_REVERSE_RESULTS), outer
        )
