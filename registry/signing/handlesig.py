"""Signatures made with the private half of an HS_PUBKEY, under the algorithm names Handle
clients give (the ``alg`` of ``Authorization: Handle``, the hash algorithm of a native
challenge answer).

Handle names a hash (``SHA256``, ``SHA-256``, ``SHA2``; ``SHA1``, ``SHA``, ``SHA-1``) and the
key decides the rest, as Java's ``Signature.getInstance(hash + "with" + key algorithm)``
does; the Java names themselves (``SHA256withRSA``, ``SHA1withDSA``, ``SHA256withECDSA``) are
taken too, their key part checked against the key. RSA signs PKCS#1 v1.5, DSA and ECDSA in
DER (ECDSA also in JOSE's raw ``r || s``), Ed25519 (``EdDSA``/``Ed25519``) signs the data
itself. MD5 is refused, and RSA keys shorter than
:data:`~registry.signing.keys.MIN_RSA_BITS`. SHA-1 is accepted for the older clients that
still send it: what they sign starts with the server's fresh nonce, which a collision
attack cannot choose.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from registry.model.pubkey import pubkey_to_jwk
from registry.signing._b64 import b64url_decode
from registry.signing.keys import MIN_RSA_BITS, verify_signature

_HASHES = {
    "SHA256": "SHA256",
    "SHA-256": "SHA256",
    "SHA2": "SHA256",
    "SHA-2": "SHA256",
    "SHA1": "SHA1",
    "SHA-1": "SHA1",
    "SHA": "SHA1",
}
_EDDSA = ("EDDSA", "ED25519")
_KEY_PART = {"RSA": "RSA", "DSA": "DSA", "EC": "ECDSA"}  # JWK kty → Java's key algorithm
_P256_BYTES = 32
MIN_DSA_BITS = 1024  # as Handle.Net's smallest DSA keys


class UnsupportedSignature(ValueError):
    """An algorithm name, or a key, that no signature can be checked with."""


def _algorithm(alg: str, kty: str) -> str:
    """``alg`` as a hash name (``SHA256``, ``SHA1``) or ``EdDSA``, checked against ``kty``."""
    name = alg.strip().upper()
    if name in _EDDSA:
        if kty != "OKP":
            raise UnsupportedSignature(f"{alg} needs an Ed25519 key, not {kty}")
        return "EdDSA"
    hash_part, sep, key_part = name.partition("WITH")
    if sep and key_part != _KEY_PART.get(kty, "?"):
        raise UnsupportedSignature(f"{alg} does not fit a {kty} key")
    hash_name = _HASHES.get(hash_part)
    if hash_name is None:
        raise UnsupportedSignature(f"unsupported signature algorithm {alg!r}")
    if kty == "OKP":
        raise UnsupportedSignature(f"an Ed25519 key signs as EdDSA, not {alg}")
    if kty == "EC" and hash_name != "SHA256":
        raise UnsupportedSignature("a P-256 key signs with SHA-256")
    return hash_name


def _uint(jwk: Mapping[str, Any], name: str) -> int:
    return int.from_bytes(b64url_decode(jwk[name]), "big")


def _raw_ecdsa(signature: bytes) -> bytes:
    """An ECDSA signature as JOSE's ``r || s``, from that form or Java's DER."""
    if len(signature) == 2 * _P256_BYTES:
        return signature
    try:
        r, s = decode_dss_signature(signature)
    except ValueError:
        return b""
    if max(r, s).bit_length() > 8 * _P256_BYTES:
        return b""
    return r.to_bytes(_P256_BYTES, "big") + s.to_bytes(_P256_BYTES, "big")


def verify_pubkey_signature(blob: bytes, alg: str, data: bytes, signature: bytes) -> bool:
    """True when ``signature`` over ``data`` verifies with the HS_PUBKEY ``blob`` under the
    Handle algorithm name ``alg``. A wrong signature is ``False``; a key or an algorithm
    that cannot be used raises :class:`UnsupportedSignature` (or InvalidValue for a blob
    that is no key), so callers can say which."""
    jwk = pubkey_to_jwk(blob)
    kty = jwk["kty"]
    algorithm = _algorithm(alg, kty)
    if kty == "OKP":
        return verify_signature(jwk, "EdDSA", data, signature)
    if kty == "EC":
        return verify_signature(jwk, "ES256", data, _raw_ecdsa(signature))
    if kty == "RSA" and algorithm == "SHA256":
        return verify_signature(jwk, "RS256", data, signature)
    chosen = hashes.SHA256() if algorithm == "SHA256" else hashes.SHA1()
    if kty == "RSA" and _uint(jwk, "n").bit_length() < MIN_RSA_BITS:
        raise UnsupportedSignature(f"RSA keys need at least {MIN_RSA_BITS} bits")
    if kty == "DSA" and _uint(jwk, "p").bit_length() < MIN_DSA_BITS:
        raise UnsupportedSignature(f"DSA keys need at least {MIN_DSA_BITS} bits")
    try:
        if kty == "RSA":
            n, e = _uint(jwk, "n"), _uint(jwk, "e")
            rsa_key = rsa.RSAPublicNumbers(e, n).public_key()
            rsa_key.verify(signature, data, padding.PKCS1v15(), chosen)
        else:
            params = dsa.DSAParameterNumbers(_uint(jwk, "p"), _uint(jwk, "q"), _uint(jwk, "g"))
            dsa_key = dsa.DSAPublicNumbers(_uint(jwk, "y"), params).public_key()
            dsa_key.verify(signature, data, chosen)
    except InvalidSignature:
        return False
    except ValueError as exc:  # parameters the library refuses
        raise UnsupportedSignature(f"unusable {kty} key: {exc}") from None
    return True
