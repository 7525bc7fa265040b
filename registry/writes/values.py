"""How the values a write is given become the values stored: secrets sealed, values
stamped, a value written unchanged kept as stored (its timestamp too), and the node's own
values — its signature in every record, its keys in its prefix handle — kept apart from the
client's and made afresh by the signer whenever a record is written."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from registry.errors import InvalidValue
from registry.model.values import HS_SECKEY, Value, restored, stamped, type_key
from registry.secrets import Sealer, secrets_equal
from registry.signer import RecordSigner


def unchanged(new: Sequence[Value], old: Sequence[Value | None]) -> bool:
    """``new`` is ``old``, value for value (:meth:`Preparer.value` returns the stored value
    itself for one written unchanged)."""
    return len(new) == len(old) and all(a is b for a, b in zip(new, old, strict=True))


class Preparer:
    """Values in and out of the store for one node: its sealing key and its signer (None:
    records are stored unsigned)."""

    def __init__(self, sealer: Sealer, signer: RecordSigner | None) -> None:
        self.sealer = sealer
        self.signer = signer

    def refresh(self) -> None:
        """Pick up the signer's current key (rotation) before a write."""
        if self.signer is not None:
            self.signer.refresh()

    def value(self, v: Value, now: int, old: Value | None, imported: bool) -> Value:
        """Seal secrets and stamp the value; an unchanged value keeps the stored one."""
        if type_key(v.type) == HS_SECKEY:
            if imported and Sealer.is_sealed(v.data):
                try:
                    plain = self.sealer.unseal(v.data)
                except Exception:
                    raise InvalidValue(
                        f"HS_SECKEY value {v.index} is sealed under another "
                        "node's key (copy secrets.key with the export)"
                    ) from None
            else:
                plain = v.data
            if old is not None and type_key(old.type) == HS_SECKEY:
                same = replace(v, data=old.data, timestamp=old.timestamp)
                if same.same_content(old) and secrets_equal(self.sealer.unseal(old.data), plain):
                    return old
            v = replace(v, data=self.sealer.seal(plain))
        elif old is not None and v.same_content(old):
            return old
        return restored(v, now) if imported else stamped(v, now)

    def client(self, key: str, values: Sequence[Value]) -> list[Value]:
        """A client's values: the node's signatures dropped (they are made afresh), writing
        over its published keys refused."""
        if self.signer is None:
            return list(values)
        self.signer.refresh()
        return self.signer.client_values(key, values)

    def user(self, key: str, values: Sequence[Value]) -> list[Value]:
        """The stored values that are the client's (the node's own left out)."""
        return list(values) if self.signer is None else self.signer.user_part(key, values)

    def system(self, key: str, values: Sequence[Value]) -> list[Value]:
        """The stored values that are the node's own, kept as they are."""
        return [] if self.signer is None else self.signer.system_part(key, values)

    def sign(self, handle: str, values: Sequence[Value], now: int) -> tuple[Value, ...]:
        """``values`` with the node's signature of them, as a record is stored."""
        if self.signer is None:
            return tuple(values)
        return self.signer.sign(handle, values, now)
