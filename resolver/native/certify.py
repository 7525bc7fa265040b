"""Certified replies (CT): the node signs them with the key its site record publishes.

HS_SIGNED credentials as the reference writes them (handle-native.md §6): an RSA key signs
PKCS#1 v1.5 over SHA-256 (hash algorithm ``SHA-256``), which Handle.Net clients verify with
the site record's key. Handle.Net knows no Ed25519 or P-256 keys, so for those idnode writes
the JWS algorithm's name as the hash algorithm (``EdDSA``, ``ES256``) and its raw signature;
idnode's own client (:mod:`resolver.native.client`) verifies all three.

Ed25519 and P-256 signatures cost ~30 µs and are made on the event loop; an RSA-2048
signature costs ~0.4-1 ms and is made in a thread (OpenSSL releases the GIL meanwhile).
"""

from __future__ import annotations

from registry.signing.keys import SigningKey
from resolver.native.credential import HS_SIGNED, SHA256, Credential

_HASH_ALGORITHMS = {"RS256": SHA256, "EdDSA": "EdDSA", "ES256": "ES256"}
JWS_ALGORITHMS = {v: k for k, v in _HASH_ALGORITHMS.items()}  # credential hash alg -> JWS alg


class Certifier:
    """Signs the bytes a credential covers (:func:`~resolver.native.signed_bytes`)."""

    def __init__(self, key: SigningKey) -> None:
        self.key = key
        self.hash_algorithm = _HASH_ALGORITHMS[key.alg]
        self.blocking = key.alg == "RS256"  # slow enough to keep off the event loop

    def credential(self, data: bytes) -> Credential:
        """The HS_SIGNED credential over ``data`` (CPU-bound; see :attr:`blocking`)."""
        return Credential(HS_SIGNED, self.hash_algorithm, self.key.sign(data))
