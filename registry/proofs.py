"""The arithmetic of Handle challenge answers (handle-native.md §5): what a holder of an
HS_SECKEY secret or of the private half of an HS_PUBKEY key computes over a challenge, so that
the registry can check it. Pure: no store, no clock, no I/O.

HS_SECKEY at 2.7+ (scheme 0x22): ``key = PBKDF2-HMAC-SHA1(secret, salt, iterations, bits/8)``,
``mac = HMAC-SHA1(key, message)``; below 2.7 (scheme 0x02): ``SHA-1(secret ‖ message ‖
secret)``. ``message`` is the challenge's nonce followed by the request digest.

HS_PUBKEY: a signature over ``message`` named by its hash (``SHA-256`` or ``SHA1``, as
Handle.Net writes them), RSASSA-PKCS1-v1.5 for an RSA key, DSA (DER ``r, s``) for a DSA key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, padding, rsa

from registry.signing._b64 import b64url_decode
from registry.signing.keys import JwkError, public_key_from_jwk, verify_signature

SCHEME_PBKDF2 = 0x22
SCHEME_SHA1 = 0x02
# PBKDF2's cost is the peer's choice: bound what the server spends on one answer (the
# reference client asks for 10 000).
MAX_ITERATIONS = 1_000_000
MIN_DSA_BITS = 1024


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


def _hash(alg: str) -> hashes.HashAlgorithm:
    name = alg.upper().replace("-", "")
    if name == "SHA256":
        return hashes.SHA256()
    if name in ("SHA1", "SHA"):
        return hashes.SHA1()  # what Handle.Net's older clients sign with
    raise ValueError(f"unsupported signature hash {alg!r}")


def signature_ok(jwk: Mapping[str, Any], alg: str, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` over ``message`` verifies under the HS_PUBKEY key ``jwk`` (as
    :func:`registry.model.pubkey.pubkey_to_jwk` gives it) with hash ``alg``. An unusable key
    raises JwkError, an unknown hash ValueError."""
    digest = _hash(alg)
    kty = jwk.get("kty")
    if kty == "RSA" and isinstance(digest, hashes.SHA256):
        return verify_signature(jwk, "RS256", message, signature)
    try:
        if kty == "RSA":
            key = public_key_from_jwk(jwk)  # the same strictness (≥ 2048 bits) as RS256
            assert isinstance(key, rsa.RSAPublicKey)
            key.verify(signature, message, padding.PKCS1v15(), digest)
        elif kty == "DSA":
            _dsa_key(jwk).verify(signature, message, digest)
        else:
            raise JwkError(f"a {kty} key does not answer Handle challenges")
    except InvalidSignature:
        return False
    return True


def _dsa_key(jwk: Mapping[str, Any]) -> dsa.DSAPublicKey:
    try:
        p, q, g, y = (int.from_bytes(b64url_decode(jwk[n]), "big") for n in ("p", "q", "g", "y"))
    except (KeyError, TypeError, ValueError):
        raise JwkError("a DSA key needs members p, q, g and y, base64url") from None
    if p.bit_length() < MIN_DSA_BITS:
        raise JwkError(f"DSA key has {p.bit_length()} bits; at least {MIN_DSA_BITS} needed")
    try:
        return dsa.DSAPublicNumbers(y, dsa.DSAParameterNumbers(p, q, g)).public_key()
    except ValueError:
        raise JwkError("invalid DSA public key") from None
