"""The resolution core: a :class:`Query` in, an :class:`Answer` out.

Every transport (HTTP now; native UDP/TCP and DNS later) decodes its request into a Query and
renders the Answer; none holds resolution logic of its own. The core does no I/O besides the
registry reads it asks for, and raises :class:`registry.errors.HandleError` for every failure.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from registry import authz
from registry.authz import Principal
from registry.cache.entry import CacheEntry
from registry.errors import (
    NO_VALUES,
    SERVICE_REFERRAL,
    SUCCESS,
    AuthenticationNeeded,
    HandleNotFound,
    InsufficientPermissions,
    InvalidHandle,
    NotResponsible,
    Outcome,
)
from registry.model import admin as adm
from registry.model.filters import MAX_FILTERS, ValueFilter
from registry.model.identifiers import NA_PREFIX, Identifier, parse, prefix_handle
from registry.model.values import HS_SECKEY, PERM_ADMIN_READ, Value, type_key
from registry.prefixstates import raise_blocked
from registry.service import Registry
from resolver.forward.base import Forwarder, Home

# Query and Answer are made on every resolution, so they are plain slotted classes: a frozen
# dataclass costs four times as much to construct. Treat them as immutable.


@dataclass(slots=True)
class Query:
    """A resolution request. ``types`` and ``indexes`` are OR-ed filters (empty: all)."""

    handle: str
    indexes: tuple[int, ...] = ()
    types: tuple[str, ...] = ()
    authoritative: bool = False  # bypass every cache (auth=true)
    public_only: bool | None = None  # None: public only for anonymous callers
    who: Principal | None = None
    hops: int = 0  # forwarded this many times already (cross-node resolution)
    via: tuple[str, ...] = ()  # ids of the nodes that forwarded it
    # For identifiers of other nodes: ``recursion`` False asks to be referred to the node
    # responsible rather than have this one resolve there; ``referrals`` False refuses a
    # referral (the answer is then "not responsible"). The node's own configuration may
    # refer where the query allows recursion, never the other way round.
    recursion: bool = True
    referrals: bool = True


class Answer:
    """The matched values in stored order; ``handle`` echoes the query as sent.

    ``whole`` means the values are exactly the cached entry's public view, so a transport
    may send its memoised rendering of ``entry`` instead of rendering ``values`` again (and
    ``values`` is then only decoded if something asks for it)."""

    __slots__ = (
        "_values",
        "entry",
        "handle",
        "ident",
        "referral",
        "unverified_reason",
        "verified",
        "whole",
    )

    def __init__(
        self,
        handle: str,
        ident: Identifier,
        values: tuple[Value, ...] | None,
        entry: CacheEntry | None = None,
        whole: bool = False,
        *,
        verified: bool | None = None,
        unverified_reason: str | None = None,
        referral: str | None = None,
    ) -> None:
        self.handle = handle
        self.ident = ident
        self._values = values
        self.entry = entry
        self.whole = whole
        # Answers from other nodes: whether the signatures verified up to the top-level root
        # (None: a local answer), and why not; ``referral`` names the prefix record to follow
        # instead (recursion off; ``values`` are then its HS_SITE values).
        self.verified = verified
        self.unverified_reason = unverified_reason
        self.referral = referral

    @property
    def values(self) -> tuple[Value, ...]:
        if self._values is None:
            assert self.entry is not None
            self._values = self.entry.public
        return self._values

    @property
    def empty(self) -> bool:
        """No value matched (or none may be shown)."""
        if self._values is None and self.entry is not None:
            return not self.entry.any_public
        return not self.values

    @property
    def outcome(self) -> Outcome:
        """How the answer is told (:mod:`registry.errors`' table): the values found, none
        (responseCode 200), or a referral (302)."""
        if self.referral is not None:
            return SERVICE_REFERRAL
        return NO_VALUES if self.empty else SUCCESS


# Resolution repeats identifiers: the homed ones are remembered parsed (see Resolver._homed).
_HOMED_MEMO = 65_536


class Resolver:
    """Resolves identifiers of the node's homed prefixes, and through ``forward`` (set once
    the node knows a top-level node: :mod:`resolver.forward.link`) those of other nodes."""

    def __init__(self, registry: Registry, max_filters: int = MAX_FILTERS) -> None:
        self.registry = registry
        self.max_filters = max_filters  # type and index filters one query may name
        self.forward: Forwarder | None = None
        # Resolutions per prefix key since the last statistics flush (:meth:`take_hits`): a
        # dict increment is all the hot path pays.
        self.hits: dict[str, int] = {}
        # Handle text as queried -> its identifier, for handles of homed prefixes (fixed for
        # the process's life): resolving one again skips parsing and the homed check.
        self._homed: dict[str, Identifier] = {}

    def take_hits(self) -> dict[str, int]:
        """The resolutions counted per prefix key since the last call; counting starts
        afresh."""
        hits, self.hits = self.hits, {}
        return hits

    def return_hits(self, hits: dict[str, int]) -> None:
        """Count again what :meth:`take_hits` gave and could not be recorded."""
        mine = self.hits
        for prefix_key, n in hits.items():
            mine[prefix_key] = mine.get(prefix_key, 0) + n

    def cached(self, handle: str) -> CacheEntry | None:
        """The hot path, nothing awaited: for an unfiltered anonymous query of ``handle``
        (``Query(handle)``), the in-process tier's current entry of an existing record —
        the whole public answer — or None, and then :meth:`resolve` answers."""
        ident = self._homed.get(handle)
        if ident is None:
            return None
        states = self.registry.states  # a prefix not active answers from the core
        if not states.current() or (states.blocked and states.state_of(ident.prefix_key)):
            return None
        entry = self.registry.records.peek(ident.key)
        if entry is None or not entry.found:
            return None
        hits = self.hits
        hits[ident.prefix_key] = hits.get(ident.prefix_key, 0) + 1
        return entry

    def homed(self, handle: str) -> Identifier | None:
        """The identifier of ``handle`` as queried, if it was resolved before as one of the
        node's homed prefixes (nothing parsed: None otherwise)."""
        return self._homed.get(handle)

    def still_cached(self, entry: CacheEntry, prefix_key: str) -> bool:
        """For a transport that keeps an answer built from ``entry`` (one :meth:`cached`
        gave, of an identifier of ``prefix_key``): whether it is still the current answer —
        no write since and not expired (in the in-process tier or not) — counting the
        resolution as :meth:`cached` does when it is."""
        if not self.registry.records.current(entry):
            return False
        states = self.registry.states  # a prefix suspended since answers from the core
        if not states.current() or (states.blocked and states.state_of(prefix_key)):
            return False
        hits = self.hits
        hits[prefix_key] = hits.get(prefix_key, 0) + 1
        return True

    def identify(self, text: str) -> Identifier:
        """Parse the handle of a query. ``88.118.8`` (no '/') names the prefix handle
        ``0.NA/88.118.8`` when the node is home for that prefix, as the reference does."""
        if "/" not in text:
            if not text:
                raise InvalidHandle("Empty handle invalid")
            try:
                ident = parse(prefix_handle(text))
            except InvalidHandle:
                raise HandleNotFound() from None
            if not self.registry.is_homed(ident) and self.forward is None:
                raise HandleNotFound()
            return ident
        return parse(text)

    async def resolve(self, query: Query) -> Answer:
        # Built first: a query naming too many filters is refused before any lookup.
        selection = (
            ValueFilter(query.types, query.indexes, self.max_filters)
            if query.types or query.indexes
            else None
        )
        homed = self._homed
        ident = homed.get(query.handle)
        if ident is None:
            ident = self.identify(query.handle)
            if not self.registry.is_homed(ident):
                return await self._forwarded(ident, query, selection)
            if len(homed) >= _HOMED_MEMO:  # bounded: clients choose what they ask
                homed.clear()
            homed[query.handle] = ident
        states = self.registry.states
        if not states.current():
            await states.refresh()
        if states.blocked and not ident.is_prefix_handle:
            raise_blocked(ident.prefix, states.state_of(ident.prefix_key))
        hits = self.hits
        hits[ident.prefix_key] = hits.get(ident.prefix_key, 0) + 1
        records = self.registry.records
        entry = None if query.authoritative else records.peek(ident.key)
        if entry is None:
            entry = await records.get(ident.key, bypass=query.authoritative)
        if not entry.found:
            raise HandleNotFound()
        if selection is None and (
            entry.all_public or (query.who is None and query.public_only is not False)
        ):
            return Answer(query.handle, ident, None, entry, whole=True)
        record = entry.record
        assert record is not None
        matched = list(record.values) if selection is None else selection.select(record.values)
        if all(v.public_read for v in matched):
            return Answer(query.handle, ident, tuple(matched))
        show_restricted = await self._may_read_restricted(ident, query)
        out = []
        for v in matched:
            if v.public_read:
                out.append(v)
            elif show_restricted and v.permissions & PERM_ADMIN_READ:
                if type_key(v.type) == HS_SECKEY:
                    v = replace(v, data=self.registry.secret_of(v))
                out.append(v)
        return Answer(query.handle, ident, tuple(out))

    async def _forwarded(
        self, ident: Identifier, query: Query, selection: ValueFilter | None
    ) -> Answer:
        if self.forward is None:
            raise NotResponsible()
        got = await self.forward.fetch(
            ident, query.hops, query.via, query.authoritative, recursion=query.recursion
        )
        if isinstance(got, Home):
            if not query.referrals:
                raise NotResponsible()
            referral = f"{NA_PREFIX}/{got.prefix}"
            return Answer(query.handle, ident, got.site, referral=referral)
        values = got.values
        if selection is not None:
            values = tuple(selection.select(values))
        return Answer(
            query.handle, ident, values, verified=got.verified, unverified_reason=got.reason
        )

    async def _may_read_restricted(self, ident: Identifier, query: Query) -> bool:
        if query.public_only:
            return False
        if query.who is None:
            if query.public_only is False:
                raise AuthenticationNeeded()
            return False
        records = await self.registry.authority(ident)
        who = await self.registry.authenticator.with_groups(query.who, records)
        if authz.rights_over(ident, records, who).may(adm.READ_VALUE):
            return True
        if query.public_only is False:
            raise InsufficientPermissions(
                f"{query.who.identity} may not read restricted values of {ident.text}"
            )
        return False
