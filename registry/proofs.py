"""The arithmetic of Handle challenge answers (handle-native.md §5): what a holder of an
HS_SECKEY secret or of the private half of an HS_PUBKEY key computes over a challenge, so that
the registry can check it. Pure: no store, no clock, no I/O.

HS_SECKEY at 2.7+ (scheme 0x22): ``key = PBKDF2-HMAC-SHA1(secret, salt, iterations, bits/8)``,
``mac = HMAC-SHA1(key, message)``; below 2.7 (scheme 0x02): ``SHA-1(secret ‖ message ‖
secret)``. ``message`` is the challenge's nonce followed by the request digest.

HS_PUBKEY signatures are checked by :mod:`registry.signing.handlesig` (shared with the HTTP
``Handle`` scheme).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

SCHEME_PBKDF2 = 0x22
SCHEME_SHA1 = 0x02
# PBKDF2's cost is the peer's choice: bound what the server spends on one answer (the
# reference client asks for 10 000).
MAX_ITERATIONS = 1_000_000


@dataclass(frozen=True, slots=True)
class SecretProof:
    """An HS_SECKEY answer: ``scheme`` 0x22 with its PBKDF2 parameters, or 0x02 (``mac``
    only)."""

    scheme: int
    mac: bytes
    salt: bytes = b""
    iterations: int = 0
    key_bits: int = 0


def check_proof(proof: SecretProof) -> None:
    """Raise ValueError for a scheme or parameters the server will not compute."""
    if proof.scheme == SCHEME_SHA1:
        return
    if proof.scheme != SCHEME_PBKDF2:
        raise ValueError(f"unknown HS_SECKEY answer scheme 0x{proof.scheme:02x}")
    if not 0 < proof.iterations <= MAX_ITERATIONS or proof.key_bits not in range(8, 4097, 8):
        raise ValueError(
            f"HS_SECKEY answer asks for {proof.iterations} rounds, {proof.key_bits} key bits"
        )


def secret_mac(secret: bytes, proof: SecretProof, message: bytes) -> bytes:
    """The MAC a holder of ``secret`` sends for ``proof``'s scheme and parameters. PBKDF2 is
    slow by design: call it off the event loop."""
    check_proof(proof)
    if proof.scheme == SCHEME_SHA1:
        return hashlib.sha1(secret + message + secret).digest()
    key = hashlib.pbkdf2_hmac("sha1", secret, proof.salt, proof.iterations, proof.key_bits // 8)
    return hmac.new(key, message, hashlib.sha1).digest()
