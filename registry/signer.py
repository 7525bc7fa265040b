"""Keeping every record signed: the write path's view of the node's keys.

Every write strips the node's own HS_SIGNATURE values from the record, then signs its
publicly readable values afresh with the current signing key (``registry.signing``). The
node's HS_PUBKEY/HS_CERT values in its prefix handle are managed here too: clients cannot
overwrite them. A rotation made by another process (``idnode keys rotate``) is picked up on
the next write (one ``stat`` of the key state per write).

:class:`NodeSigner` is the pure part (a key, the node's identities; no files), so that bulk
import can rebuild it in worker processes from a :class:`SignerSpec`;
:class:`RecordSigner` keeps one current from the keyring.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from registry.errors import InvalidValue
from registry.keyring import Keyring
from registry.model.identifiers import handle_key
from registry.model.values import Value
from registry.model.wire import encode_value, join_values
from registry.signing.claims import Signer
from registry.signing.digests import HS_SIGNATURE
from registry.signing.jws import JwsError, decode
from registry.signing.keys import SigningKey

DEFAULT_VALIDITY = 400 * 86400


@lru_cache(maxsize=4096)
def _issuer(data: bytes) -> str | None:
    try:
        iss = decode(data.decode("utf-8")).payload.get("iss")
    except (JwsError, UnicodeDecodeError):
        return None
    return iss if isinstance(iss, str) else None


@dataclass(frozen=True)
class SignerSpec:
    """Everything a :class:`NodeSigner` is made of, picklable: what a worker process gets,
    once, to sign as the node. ``pem`` is the current signing key, unencrypted: it is kept
    out of ``repr`` so that it never reaches a log or a traceback."""

    pem: bytes = field(repr=False)
    issuer: str
    validity: int
    chain: tuple[str, ...]
    own: frozenset[str]  # the identities of every key of the node (current, retired, next)
    key_handle: str  # the key of the prefix handle that publishes the keys


class NodeSigner:
    """Signs records as the node and tells its own values from clients'. Pure: no I/O."""

    def __init__(self, signer: Signer, own: frozenset[str], key_handle: str) -> None:
        self.signer = signer
        self.own = own
        self.key_handle = key_handle

    @classmethod
    def from_spec(cls, spec: SignerSpec) -> NodeSigner:
        signer = Signer(
            SigningKey.from_pem(spec.pem, None),
            spec.issuer,
            spec.validity,
            own_issuers=spec.own,
            chain=spec.chain,
        )
        return cls(signer, spec.own, spec.key_handle)

    def spec(self) -> SignerSpec:
        return SignerSpec(
            self.signer.key.to_pem(None),
            self.signer.issuer,
            self.signer.validity,
            self.signer.chain or (),
            self.own,
            self.key_handle,
        )

    @property
    def issuer(self) -> str:
        return self.signer.issuer

    def owns(self, value: Value) -> bool:
        """A signature this node made (with any of its keys, current or retired)."""
        return value.type == HS_SIGNATURE and _issuer(value.data) in self.own

    def is_system(self, key: str, value: Value) -> bool:
        return self.owns(value) or (key == self.key_handle and Keyring.is_key_value(value))

    def user_part(self, key: str, values: Sequence[Value]) -> list[Value]:
        return [v for v in values if not self.is_system(key, v)]

    def system_part(self, key: str, values: Sequence[Value]) -> list[Value]:
        """What the node keeps of a stored record whatever a client writes: its key values
        (the signature itself is regenerated)."""
        if key != self.key_handle:
            return []
        return [v for v in values if Keyring.is_key_value(v)]

    def sign(self, handle: str, values: Sequence[Value], now: int) -> tuple[Value, ...]:
        # The fresh signature is a value written now, like any other.
        return self.signer.sign_values(handle, values, now, timestamp=now)

    def sign_encoded(
        self, handle: str, values: Sequence[Value], now: int
    ) -> tuple[tuple[Value, ...], bytes]:
        """What :meth:`sign` returns and its wire encoding, each value encoded once (the
        encoding the digests cover is a part of the one the store writes)."""
        kept = [v for v in values if not self.signer.owns(v)]
        encoded = [encode_value(v) for v in kept]
        signature = self.signer.signature(handle, kept, now, timestamp=now, encoded=encoded)
        if signature is not None:
            kept.append(signature)
            encoded.append(encode_value(signature))
        return tuple(kept), join_values(encoded)


class RecordSigner:
    def __init__(self, keyring: Keyring, validity: int = DEFAULT_VALIDITY) -> None:
        self.keyring = keyring
        self.validity = validity
        self.key_handle = handle_key(keyring.handle)
        self._node: NodeSigner | None = None
        self._version = (-1, -1, -1)
        self.refresh()

    def refresh(self) -> None:
        """Reload the current key when the key state changed on disk."""
        version = self.keyring.version()
        if self._node is not None and version == self._version:
            return
        state = self.keyring.load_state()
        self._version = version
        numbers = {state.current, *(r["n"] for r in state.retired)}
        if state.rotation and state.rotation.get("to"):
            numbers.add(int(state.rotation["to"]))
        own = frozenset(self.keyring.identity(n) for n in numbers)
        issuer = self.keyring.identity(state.current)
        # The chain is named explicitly: Handle.Net's chain builder refuses to look in the
        # same handle twice, and our signing and root certificates share the prefix handle.
        signer = Signer(
            self.keyring.key(state.current),
            issuer,
            self.validity,
            own_issuers=own,
            chain=[self.keyring.cert_ref(state.current), self.keyring.cert_ref(0)],
        )
        self._node = NodeSigner(signer, own, self.key_handle)

    @property
    def node(self) -> NodeSigner:
        """The current key's signer (as of the last :meth:`refresh`)."""
        assert self._node is not None
        return self._node

    @property
    def issuer(self) -> str:
        return self.node.issuer

    def owns(self, value: Value) -> bool:
        """A signature this node made (with any of its keys, current or retired)."""
        return self.node.owns(value)

    def is_system(self, key: str, value: Value) -> bool:
        return self.node.is_system(key, value)

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
        return self.node.user_part(key, values)

    def system_part(self, key: str, values: Sequence[Value]) -> list[Value]:
        return self.node.system_part(key, values)

    def sign(self, handle: str, values: Sequence[Value], now: int) -> tuple[Value, ...]:
        return self.node.sign(handle, values, now)
