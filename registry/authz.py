"""Authorisation: which rights an identity holds over a handle, from HS_ADMIN values.

Handle semantics, as the reference server runs them with ``allow_na_admins``:
- rights over ``P/x`` come from the HS_ADMIN values of ``P/x`` itself and from those of the
  prefix handle ``0.NA/P`` — and, so that a secondary node's operator can act for every
  enterprise it hosts, of each ancestor prefix handle ``0.NA/Q`` (``Q`` a dotted ancestor of P);
- creating ``P/x`` needs "add handle" from the prefix handles (the record does not exist yet);
- creating ``0.NA/P.sub`` needs "add derived prefix" in an ancestor prefix handle; an admin
  with that right may also change such a derived prefix handle, and deleting it needs
  "delete derived prefix" there (or "delete handle" in the handle itself).

An HS_ADMIN names an identity ``index:handle`` (index 0: any key of that handle) or an
HS_VLIST group; group memberships are resolved by the caller beforehand (``groups``).
Everything here is pure: records in, rights out.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass

from registry.errors import InvalidValue
from registry.model import admin as adm
from registry.model.identifiers import Identifier, ancestors, handle_key, prefix_handle
from registry.model.values import HS_ADMIN, Value
from registry.store.base import Record


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated identity and the HS_VLIST groups (``index:KEY``) it belongs to."""

    identity: adm.AdminRef
    groups: frozenset[str] = frozenset()

    @property
    def ref_key(self) -> str:
        return f"{self.identity.index}:{handle_key(self.identity.handle)}"


def _admin_values(values: tuple[Value, ...]) -> list[adm.AdminData]:
    out = []
    for v in values:
        if v.type == HS_ADMIN:
            try:
                out.append(adm.decode_admin(v.data))
            except InvalidValue:
                continue  # a broken HS_ADMIN grants nothing
    return out


def rights_in(record: Record | None, who: Principal) -> int:
    """The OR of the rights ``who`` holds through the HS_ADMIN values of ``record``."""
    if record is None:
        return 0
    me_key = handle_key(who.identity.handle)
    bits = 0
    for a in _admin_values(record.values):
        ref_key = handle_key(a.admin.handle)
        mine = ref_key == me_key and a.admin.index in (0, who.identity.index)
        if mine or f"{a.admin.index}:{ref_key}" in who.groups:
            bits |= a.permissions
    return bits


def authority_keys(ident: Identifier) -> list[str]:
    """Keys of the records whose HS_ADMIN values may grant rights over ``ident``: the handle
    itself first, then the prefix handles from nearest to farthest."""
    keys = [ident.key]
    if ident.is_prefix_handle:
        prefix = ident.local
        keys += [handle_key(prefix_handle(p)) for p in ancestors(prefix)]
    else:
        keys += [handle_key(prefix_handle(p)) for p in [ident.prefix, *ancestors(ident.prefix)]]
    return keys


@dataclass(frozen=True, slots=True)
class Rights:
    """Rights over one handle, split by where they come from."""

    own: int  # from the handle's own HS_ADMIN values
    inherited: int  # from prefix handles (NA admins, or derived-prefix admins)
    is_prefix_handle: bool

    def may(self, right: int) -> bool:
        if self.is_prefix_handle:
            if right == adm.ADD_HANDLE:  # creating a prefix handle
                return bool(self.inherited & adm.ADD_DERIVED_PREFIX)
            if right == adm.DELETE_HANDLE:
                return bool(self.own & right or self.inherited & adm.DELETE_DERIVED_PREFIX)
            return bool(self.own & right or self.inherited & adm.ADD_DERIVED_PREFIX)
        if right == adm.ADD_HANDLE:
            return bool(self.inherited & right)
        return bool((self.own | self.inherited) & right)


def rights_over(ident: Identifier, records: Mapping[str, Record], who: Principal) -> Rights:
    """Rights of ``who`` over ``ident``; ``records`` must hold the :func:`authority_keys`
    that exist."""
    keys = authority_keys(ident)
    own = rights_in(records.get(keys[0]), who)
    inherited = 0
    for key in keys[1:]:
        inherited |= rights_in(records.get(key), who)
    return Rights(own=own, inherited=inherited, is_prefix_handle=ident.is_prefix_handle)


def group_refs(records: Mapping[str, Record]) -> Set[tuple[str, int]]:
    """(handle, index) of every admin reference in these records that may be an HS_VLIST
    group, for the caller to resolve memberships."""
    refs: set[tuple[str, int]] = set()
    for record in records.values():
        for a in _admin_values(record.values):
            refs.add((a.admin.handle, a.admin.index))
    return refs
