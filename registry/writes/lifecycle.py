"""The enterprise prefix lifecycle's writes, each one mutation (one transaction): an
application, and each transition with everything it changes — the enterprise's record, its
home's states record, the prefix handle (created on approval from the application's
credential, deleted on withdrawal) and the report to the top-level node.

Reports: the prefix handle's creation and deletion are reported as every prefix handle's
are (:mod:`registry.reporting`: ``create``, ``delete``); suspension and reactivation are
reported here (``suspend``, ``reactivate``). Pending and rejected prefixes have no prefix
handle and are never reported, so never routed.
"""

from __future__ import annotations

from collections.abc import Mapping

from registry import authz
from registry.authz import Principal
from registry.bootstrap import admin_values
from registry.errors import HandleExists, HandleNotFound, InsufficientPermissions, WrongState
from registry.model import admin as adm
from registry.model import enterprise as ent
from registry.model.identifiers import Identifier, handle_key, parse, prefix_handle
from registry.model.values import Value, stamped
from registry.store.base import Change, Delete, Mutation, Put, Record, Report
from registry.writes.values import Preparer


class Place:
    """Where one enterprise prefix's records are: its home, its record, its prefix handle."""

    def __init__(self, prefix: str, home: str) -> None:
        self.prefix = prefix
        self.home = home
        self.handle = ent.record_handle(home, prefix)
        self.key = handle_key(self.handle)
        self.prefix_ident: Identifier = parse(prefix_handle(prefix))
        self.prefix_key = self.prefix_ident.key
        self.states_handle = ent.states_handle(home)
        self.states_key = handle_key(self.states_handle)

    def keys(self) -> list[str]:
        return [self.key, self.states_key, *authz.authority_keys(self.prefix_ident)]


def current(place: Place, records: Mapping[str, Record]) -> ent.Enterprise | None:
    """The enterprise at ``place``: its record, or for a prefix allocated directly
    (``idnode prefix create``) an active one without application details."""
    record = records.get(place.key)
    found = ent.from_values(record.values) if record is not None else None
    if found is not None:
        return found
    if place.prefix_key in records:
        return ent.Enterprise(place.prefix, state=ent.ACTIVE)
    return None


def is_node_admin(place: Place, records: Mapping[str, Record], who: Principal) -> bool:
    """``who`` may allocate prefixes under the home (the right to create the prefix
    handle, from the home's prefix handles)."""
    return authz.rights_over(place.prefix_ident, records, who).may(adm.ADD_HANDLE)


def _signed(prep: Preparer, handle: str, values: list[Value], now: int) -> Record:
    return Record(handle, prep.sign(handle, [stamped(v, now) for v in values], now))


def apply(
    place: Place, app: ent.Application, sealed: bytes | None, now: int, prep: Preparer
) -> Mutation[ent.Enterprise]:
    """A new application (or one made again after a rejection); ``sealed``: its secret,
    sealed."""
    cred = ent.Credential(sealed_secret=sealed, public_key=app.public_key)

    def mutate(records: Mapping[str, Record]) -> tuple[list[Change], ent.Enterprise]:
        if place.prefix_key in records:
            raise HandleExists(f"prefix {place.prefix} is allocated already")
        old = current(place, records)
        if old is not None and old.state != ent.REJECTED:
            raise WrongState(f"prefix {place.prefix} is {old.state}: it cannot be applied for")
        step = {"from": old.state if old else None, "to": ent.PENDING, "action": "apply"}
        new = ent.Enterprise(
            place.prefix,
            **app.fields,
            state=ent.PENDING,
            updated=now,
            history=(*(old.history if old else ()), {**step, "at": now}),
            credential=cred,
        )
        record = _signed(prep, place.handle, [ent.record_value(new)], now)
        return [Put(place.key, record)], new

    return mutate


def transition(
    place: Place,
    action: str,
    reason: str,
    who: Principal | None,
    now: int,
    prep: Preparer,
) -> Mutation[ent.Enterprise]:
    """``action`` on the enterprise at ``place``, by the node admin ``who`` (None: the
    local operator)."""

    def mutate(records: Mapping[str, Record]) -> tuple[list[Change], ent.Enterprise]:
        if who is not None and not is_node_admin(place, records, who):
            raise InsufficientPermissions(
                f"{who.identity} is not an admin of this node's prefix {place.home}"
            )
        old = current(place, records)
        if old is None:
            raise HandleNotFound(f"no enterprise prefix {place.prefix} on this node")
        by = str(who.identity) if who is not None else "local operator"
        new = old.moved(action, reason, now, by)
        changes: list[Change] = [
            Put(place.key, _signed(prep, place.handle, [ent.record_value(new)], now))
        ]
        changes += _states_change(place, records, new.state, prep, now)
        if action == "approve":
            if place.prefix_key in records:
                raise WrongState(f"prefix {place.prefix} is allocated already")
            cred = old.credential
            values = admin_values(place.prefix, cred.sealed_secret, cred.public_key)
            handle = place.prefix_ident.text
            changes.append(Put(place.prefix_key, _signed(prep, handle, values, now)))
        elif action == "withdraw" and place.prefix_key in records:
            changes.append(Delete(place.prefix_key))
        elif action in ("suspend", "reactivate"):
            body = {"op": action, "prefix": place.prefix, "reason": reason}
            changes.append(Report(place.prefix, "prefix", body))
        return changes, new

    return mutate


def _states_change(
    place: Place, records: Mapping[str, Record], state: str, prep: Preparer, now: int
) -> list[Change]:
    """The home's states record with the prefix's new state, if that changes it."""
    old = records.get(place.states_key)
    states = ent.decode_states(old.values) if old is not None else {}
    key = handle_key(place.prefix)
    new = dict(states)
    if state in ent.BLOCKED:
        new[key] = state
    else:
        new.pop(key, None)
    if new == states and old is not None:
        return []
    record = _signed(prep, place.states_handle, [ent.states_value(new)], now)
    return [Put(place.states_key, record)]
