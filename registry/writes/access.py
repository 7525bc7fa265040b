"""Who may change what: the rights a write needs, worked out once per write.

A write is authorised from the request and the *shape* of the record (which indexes exist
and which are HS_ADMIN), never from what the values hold: a check that depends on the
content answers differently for a right and a wrong guess of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from registry import authz
from registry.authz import Principal
from registry.errors import InsufficientPermissions
from registry.model import admin as adm
from registry.model.identifiers import Identifier
from registry.model.values import HS_ADMIN, Value
from registry.store.base import Record

VALUE_RIGHTS = (
    adm.ADD_VALUE,
    adm.MODIFY_VALUE,
    adm.REMOVE_VALUE,
    adm.ADD_ADMIN,
    adm.MODIFY_ADMIN,
    adm.REMOVE_ADMIN,
)


def right_for(old: Value | None, new: Value | None) -> int:
    """The right that turning ``old`` into ``new`` needs (None: no value there / removed)."""
    admin = (old is not None and old.type == HS_ADMIN) or (new is not None and new.type == HS_ADMIN)
    if old is None:
        return adm.ADD_ADMIN if admin else adm.ADD_VALUE
    if new is None:
        return adm.REMOVE_ADMIN if admin else adm.REMOVE_VALUE
    return adm.MODIFY_ADMIN if admin else adm.MODIFY_VALUE


@dataclass(frozen=True, slots=True)
class Access:
    """What the caller may do to one handle (``rights`` None: the trusted local operator,
    who may do anything)."""

    ident: Identifier
    caller: str  # the identity, for messages
    rights: authz.Rights | None

    def require(self, right: int) -> None:
        if self.rights is not None and not self.rights.may(right):
            raise InsufficientPermissions(
                f"{self.caller} may not {adm.RIGHT_NAMES[right]} on {self.ident.text}"
            )

    def require_some_value_right(self) -> None:
        """Refuse, with the same answer whatever the record holds, a caller who may change
        none of its values (so a refusal does not even tell which indexes exist)."""
        if self.rights is not None and not any(self.rights.may(r) for r in VALUE_RIGHTS):
            raise InsufficientPermissions(
                f"{self.caller} may not change the values of {self.ident.text}"
            )


def access_of(ident: Identifier, records: Mapping[str, Record], who: Principal | None) -> Access:
    """What ``who`` (None: the local operator) may do to ``ident``, given the authority
    ``records`` read in the write's transaction."""
    if who is None:  # the trusted local operator (CLI with access to the data directory)
        return Access(ident, "the operator", None)
    return Access(ident, str(who.identity), authz.rights_over(ident, records, who))
