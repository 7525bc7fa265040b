"""The enterprise prefix lifecycle as the node's API and CLI use it: applications, the node
admin's transitions, and reading the enterprises (:mod:`registry.model.enterprise` has the
states; :mod:`registry.writes.lifecycle` the writes, each one registry write)."""

from __future__ import annotations

from registry import authz
from registry.audit import OPERATOR, Caller
from registry.authz import Principal
from registry.errors import (
    HandleNotFound,
    InsufficientPermissions,
    InvalidValue,
    NotResponsible,
    ProtocolError,
)
from registry.model import enterprise as ent
from registry.model.identifiers import NA_PREFIX, check_prefix, handle_key, is_within
from registry.service import Registry
from registry.store.base import records_starting
from registry.writes import lifecycle
from registry.writes.lifecycle import Place


class Enterprises:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def place(self, prefix: str) -> Place:
        """Where ``prefix`` lives: under which of the node's prefixes (strictly)."""
        check_prefix(prefix)
        key = handle_key(prefix)
        for home, home_key in zip(self.registry.homed, self.registry.homed_keys, strict=True):
            if key != home_key and is_within(key, home_key):
                return Place(prefix, home)
        raise NotResponsible(f"prefix {prefix} is not under this node's prefixes")

    async def apply(self, body: object, caller: Caller = OPERATOR) -> ent.Enterprise:
        """File an application (anyone may: the HTTP layer limits how often)."""
        app = ent.parse_application(body, self.registry.homed)
        place = self.place(app.prefix)
        sealed = None
        if app.secret is not None:
            sealed = self.registry.sealer.seal(app.secret.encode("utf-8"))
        mutate = lifecycle.apply(place, app, sealed, int(self.registry.clock()), self.registry.prep)
        keys = [place.key, place.prefix_key]
        return await self.registry.transact(keys, mutate, None, caller, "prefix.apply")

    async def act(
        self,
        prefix: str,
        action: str,
        reason: str = "",
        who: Principal | None = None,
        caller: Caller = OPERATOR,
    ) -> ent.Enterprise:
        """Apply the transition ``action`` (by the node admin ``who``; None: the local
        operator)."""
        if action not in ent.TRANSITIONS:
            raise ProtocolError(f"unknown action {action!r}"[:100])
        if action in ent.NEEDS_REASON and not reason.strip():
            raise ProtocolError(f"{action} needs a reason")
        place = self.place(prefix)
        if who is not None:
            who = await self._with_groups(place, who)
        self.registry.prep.refresh()
        now = int(self.registry.clock())
        mutate = lifecycle.transition(place, action, reason, who, now, self.registry.prep)
        return await self.registry.transact(place.keys(), mutate, who, caller, f"prefix.{action}")

    async def _with_groups(self, place: Place, who: Principal) -> Principal:
        records = await self.registry.authority(place.prefix_ident)
        return await self.registry.authenticator.with_groups(who, records)

    async def show(self, prefix: str, who: Principal | None = None) -> ent.Enterprise:
        """One enterprise, for the node admin or (``who`` holding rights in its prefix
        handle) its own admin."""
        place = self.place(prefix)
        records = await self.registry.store.get_many(place.keys())
        if who is not None:
            who = await self.registry.authenticator.with_groups(who, records)
            own = authz.rights_in(records.get(place.prefix_key), who)
            if not own and not lifecycle.is_node_admin(place, records, who):
                raise InsufficientPermissions(f"{who.identity} may not see prefix {prefix}")
        found = lifecycle.current(place, records)
        if found is None:
            raise HandleNotFound(f"no enterprise prefix {prefix} on this node")
        return found

    async def list_all(
        self, who: Principal | None = None, state: str | None = None
    ) -> list[ent.Enterprise]:
        """Every enterprise of the homes ``who`` is a node admin of (None: all), optionally
        only those in ``state``."""
        if state is not None and state not in ent.STATES:
            raise ProtocolError(f"state must be one of {', '.join(ent.STATES)}")
        homes = [h for h in self.registry.homed if who is None or await self._node_admin_of(h, who)]
        if not homes:
            assert who is not None
            raise InsufficientPermissions(f"{who.identity} is not an admin of this node")
        out: list[ent.Enterprise] = []
        for home in homes:
            out += await self._in_home(home)
        return [e for e in out if state is None or e.state == state]

    async def _node_admin_of(self, home: str, who: Principal) -> bool:
        place = Place(f"{home}.0", home)  # stands for any prefix under the home
        records = await self.registry.store.get_many(place.keys())
        who = await self.registry.authenticator.with_groups(who, records)
        return lifecycle.is_node_admin(place, records, who)

    async def _in_home(self, home: str) -> list[ent.Enterprise]:
        """The enterprises with a record in ``home``, and the prefixes allocated there
        directly (active, no application)."""
        store = self.registry.store
        home_key = handle_key(home)
        start = handle_key(ent.record_handle(home, ""))
        found: dict[str, ent.Enterprise] = {}
        async for record in records_starting(store, home_key, start):
            try:
                e = ent.from_values(record.values)
            except InvalidValue:
                continue  # a damaged record: shown by no listing, fixed by no action
            if e is not None:
                found[handle_key(e.prefix)] = e
        _, prefix_handles = await store.list_handles(NA_PREFIX)
        for handle in prefix_handles:
            prefix = handle.split("/", 1)[1]
            key = handle_key(prefix)
            if key != home_key and is_within(key, home_key) and key not in found:
                found[key] = ent.Enterprise(prefix, state=ent.ACTIVE)
        return [found[k] for k in sorted(found)]
