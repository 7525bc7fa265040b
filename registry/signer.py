"""Keeping every record signed: the write path's view of the node's keys.

Every write strips the node's own HS_SIGNATURE values from the record, then signs its
publicly readable values afresh with the current signing key (``registry.signing``). The
node's HS_PUBKEY/HS_CERT values in its prefix handle are managed here too: clients cannot
overwrite them. A rotation made by another process (``idnode keys rotate``) is picked up on
the next write (one ``stat`` of the key state per write).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache

from registry.errors import InvalidValue
from registry.keyring import Keyring
from registry.model.identifiers import handle_key
from registry.model.values import Value
from registry.signing.claims import Signer
from registry.signing.digests import HS_SIGNATURE
from registry.signing.jws import JwsError, decode

DEFAULT_VALIDITY = 400 * 86400


@lru_cache(maxsize=4096)
def _issuer(data: bytes) -> str | None:
    try:
        iss = decode(data.decode("utf-8")).payload.get("iss")
    except (JwsError, UnicodeDecodeError):
        return None
    return iss if isinstance(iss, str) else None


class RecordSigner:
    def __init__(self, keyring: Keyring, validity: int = DEFAULT_VALIDITY) -> None:
        self.keyring = keyring
        self.validity = validity
        self.key_handle = handle_key(keyring.handle)
        self._signer: Signer | None = None
        self._own: frozenset[str] = frozenset()
        self._version = (-1, -1, -1)
        self.refresh()

    def refresh(self) -> None:
        """Reload the current key when the key state changed on disk."""
        version = self.keyring.version()
        if self._signer is not None and version == self._version:
            return
        state = self.keyring.load_state()
        self._version = version
        numbers = {state.current, *(r["n"] for r in state.retired)}
        if state.rotation and state.rotation.get("to"):
            numbers.add(int(state.rotation["to"]))
        self._own = frozenset(self.keyring.identity(n) for n in numbers)
        issuer = self.keyring.identity(state.current)
        # The chain is named explicitly: Handle.Net's chain builder refuses to look in the
        # same handle twice, and our signing and root certificates share the prefix handle.
        self._signer = Signer(
            self.keyring.key(state.current),
            issuer,
            self.validity,
            own_issuers=self._own,
            chain=[self.keyring.cert_ref(state.current), self.keyring.cert_ref(0)],
        )

    @property
    def issuer(self) -> str:
        assert self._signer is not None
        return self._signer.issuer

    def owns(self, value: Value) -> bool:
        """A signature this node made (with any of its keys, current or retired)."""
        return value.type == HS_SIGNATURE and _issuer(value.data) in self._own

    def is_system(self, key: str, value: Value) -> bool:
        return self.owns(value) or (key == self.key_handle and Keyring.is_key_value(value))

    def client_values(self, key: str, values: Sequence[Value]) -> list[Value]:
        """A client's values for ``key``: our signatures dropped (they are regenerated);
        writing over the node's published keys is refused."""
        out = []
        for v in values:
            if self.owns(v):
                continue
            if key == self.key_handle and Keyring.is_key_index(v.index):
                raise InvalidValue(
                    f"Index {v.index}: indexes 600-799 of {self.keyring.handle} hold the node's "
                    "signing keys and are managed by 'idnode keys'"
                )
            out.append(v)
        return out

    def user_part(self, key: str, values: Sequence[Value]) -> list[Value]:
        return [v for v in values if not self.is_system(key, v)]

    def system_part(self, key: str, values: Sequence[Value]) -> list[Value]:
        """What the node keeps of a stored record whatever a client writes: its key values
        (the signature itself is regenerated)."""
        if key != self.key_handle:
            return []
        return [v for v in values if Keyring.is_key_value(v)]

    def sign(self, handle: str, values: Sequence[Value], now: int) -> tuple[Value, ...]:
        assert self._signer is not None
        signed = self._signer.sign_values(handle, values, now)
        if signed and signed[-1].timestamp == 0 and signed[-1].type == HS_SIGNATURE:
            # The fresh signature is a value written now, like any other.
            signed = (*signed[:-1], replace(signed[-1], timestamp=now))
        return signed
