"""Signing keys, public JWKs and signature checks for the three JWS algorithms idnode uses.

``EdDSA`` (Ed25519, RFC 8037) is fast and small; ``ES256`` (P-256, signatures in the JOSE raw
``r || s`` form); ``RS256`` (RSA-2048, PKCS#1 v1.5) is the only one Handle.Net's own
verifier can check (it knows RS256 and DS256 only), so pick it when Handle.Net clients must
verify our records.

Public JWKs are written as Handle.Net's Gson adapter writes them: key members only, no
``alg``, ``kid`` or ``use``. Reading is strict (exact sizes, no private members, an ``alg``
member if present must match the key type) because a JWK here decides whom we trust.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from nacl.bindings import crypto_sign, crypto_sign_seed_keypair

from registry.atomicfile import write_atomic
from registry.signing._b64 import b64url_decode, b64url_encode, uint_to_b64url

ALGORITHMS = ("EdDSA", "ES256", "RS256")
RSA_BITS = 2048
MIN_RSA_BITS = 2048  # verifying: shorter RSA keys are refused, not trusted
_P256_BYTES = 32
_ED25519_BYTES = 32
_ED25519_SIGNATURE_BYTES = 64  # libsodium returns the signature followed by the message
_KTY_OF_ALG = {"EdDSA": "OKP", "ES256": "EC", "RS256": "RSA"}
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey


class KeyFileError(Exception):
    """A key file that cannot be read: wrong or missing passphrase, not a key, wrong type."""


class JwkError(ValueError):
    """A JWK we cannot use: malformed, private, unsupported, or not for the given algorithm."""


# --- JWKs ------------------------------------------------------------------------------------


def public_jwk_of(key: object) -> dict[str, Any]:
    """The public JWK of a public key (Ed25519, P-256 or RSA), members only, as Handle.Net
    writes them; :class:`JwkError` for any other kind of key."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        nums = key.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url_encode(nums.x.to_bytes(_P256_BYTES, "big")),
            "y": b64url_encode(nums.y.to_bytes(_P256_BYTES, "big")),
        }
    if isinstance(key, rsa.RSAPublicKey):
        nums_rsa = key.public_numbers()
        return {"kty": "RSA", "n": uint_to_b64url(nums_rsa.n), "e": uint_to_b64url(nums_rsa.e)}
    raise JwkError(f"unsupported public key ({type(key).__name__})")


def _member(jwk: Mapping[str, Any], name: str) -> bytes:
    text = jwk.get(name)
    if not isinstance(text, str):
        raise JwkError(f"JWK member {name!r} is missing or not a string")
    try:
        return b64url_decode(text)
    except ValueError:
        raise JwkError(f"JWK member {name!r} is not base64url") from None


def public_key_from_jwk(jwk: Mapping[str, Any]) -> PublicKey:
    """The public key of a JWK (OKP Ed25519, EC P-256, RSA ≥ 2048 bits), read strictly."""
    if not isinstance(jwk, Mapping):
        raise JwkError("a JWK must be a JSON object")
    kty = jwk.get("kty")
    if kty not in ("OKP", "EC", "RSA"):
        raise JwkError(f"unsupported JWK key type {kty!r}")
    if any(name in jwk for name in _PRIVATE_MEMBERS):
        raise JwkError("JWK holds private key material")
    alg = jwk.get("alg")
    if alg is not None and _KTY_OF_ALG.get(alg) != kty:
        raise JwkError(f"JWK alg {alg!r} does not fit key type {kty}")
    if kty == "OKP":
        if jwk.get("crv") != "Ed25519":
            raise JwkError(f"unsupported OKP curve {jwk.get('crv')!r}")
        x = _member(jwk, "x")
        if len(x) != _ED25519_BYTES:
            raise JwkError("Ed25519 key must be 32 bytes")
        return ed25519.Ed25519PublicKey.from_public_bytes(x)
    if kty == "EC":
        if jwk.get("crv") != "P-256":
            raise JwkError(f"unsupported EC curve {jwk.get('crv')!r}")
        x, y = _member(jwk, "x"), _member(jwk, "y")
        if len(x) != _P256_BYTES or len(y) != _P256_BYTES:
            raise JwkError("P-256 coordinates must be 32 bytes each")
        point = ec.EllipticCurvePublicNumbers(
            int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
        )
        try:
            return point.public_key()
        except ValueError:
            raise JwkError("EC point is not on curve P-256") from None
    n = int.from_bytes(_member(jwk, "n"), "big")
    e = int.from_bytes(_member(jwk, "e"), "big")
    if n.bit_length() < MIN_RSA_BITS:
        raise JwkError(f"RSA key has {n.bit_length()} bits; at least {MIN_RSA_BITS} needed")
    try:
        return rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError:
        raise JwkError("invalid RSA public exponent or modulus") from None


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 thumbprint (SHA-256, base64url) of a public JWK, from its canonical members
    so that two spellings of one key (e.g. a leading zero in ``n``) share a thumbprint."""
    canonical = public_jwk_of(public_key_from_jwk(jwk))
    members = orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)  # no whitespace, sorted
    return b64url_encode(hashlib.sha256(members).digest())


def verify_signature(jwk: Mapping[str, Any], alg: str, data: bytes, signature: bytes) -> bool:
    """True when ``signature`` over ``data`` verifies with ``jwk`` under ``alg``.

    A bad signature is ``False``; an unusable key, an unknown algorithm or one that does not
    fit the key (e.g. RS256 with an EC key) raises :class:`JwkError`, so callers can say which.
    """
    if alg not in _KTY_OF_ALG:
        raise JwkError(f"unsupported algorithm {alg!r}")
    key = public_key_from_jwk(jwk)
    if _KTY_OF_ALG[alg] != jwk.get("kty"):
        raise JwkError(f"algorithm {alg} does not fit a {jwk.get('kty')} key")
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if len(signature) != 2 * _P256_BYTES:
                return False
            r = int.from_bytes(signature[:_P256_BYTES], "big")
            s = int.from_bytes(signature[_P256_BYTES:], "big")
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
        else:
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


# --- private keys ----------------------------------------------------------------------------


def _alg_of(key: object) -> str:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= MIN_RSA_BITS:
        return "RS256"
    raise KeyFileError(
        f"unsupported key ({type(key).__name__}); use Ed25519, P-256 or RSA ≥ {MIN_RSA_BITS}"
    )


class SigningKey:
    """A private key and its algorithm; ``kid`` is its RFC 7638 thumbprint.

    Ed25519 signatures are made by libsodium (PyNaCl), which signs in ~60% of OpenSSL's
    time here (every write and every imported record is signed). Ed25519 is deterministic:
    the signatures are the very bytes OpenSSL makes (tests/test_signing.py checks)."""

    def __init__(self, private: PrivateKey) -> None:
        self.alg = _alg_of(private)
        self._private = private
        self._jwk = public_jwk_of(private.public_key())
        self.kid = jwk_thumbprint(self._jwk)
        self._sodium: bytes | None = None  # libsodium's form of an Ed25519 key
        if isinstance(private, ed25519.Ed25519PrivateKey):
            seed = private.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
            self._sodium = crypto_sign_seed_keypair(seed)[1]

    @classmethod
    def generate(cls, alg: str = "EdDSA") -> SigningKey:
        if alg == "EdDSA":
            return cls(ed25519.Ed25519PrivateKey.generate())
        if alg == "ES256":
            return cls(ec.generate_private_key(ec.SECP256R1()))
        if alg == "RS256":
            return cls(rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS))
        raise ValueError(f"unsupported algorithm {alg!r}; choose one of {', '.join(ALGORITHMS)}")

    def sign(self, data: bytes) -> bytes:
        if self._sodium is not None:  # Ed25519
            return crypto_sign(data, self._sodium)[:_ED25519_SIGNATURE_BYTES]
        key = self._private
        if isinstance(key, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(_P256_BYTES, "big") + s.to_bytes(_P256_BYTES, "big")
        assert isinstance(key, rsa.RSAPrivateKey)
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def public_jwk(self) -> dict[str, Any]:
        return dict(self._jwk)

    # --- files -------------------------------------------------------------------------------

    def to_pem(self, passphrase: bytes | None) -> bytes:
        """PKCS#8 PEM, encrypted (best available scheme) when a passphrase is given."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase)
            if passphrase
            else serialization.NoEncryption()
        )
        return self._private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    @classmethod
    def from_pem(cls, data: bytes, passphrase: bytes | None) -> SigningKey:
        try:
            key = serialization.load_pem_private_key(data, password=passphrase or None)
        except TypeError:
            if passphrase:
                raise KeyFileError(
                    "the key file is not encrypted, but a passphrase was given"
                ) from None
            raise KeyFileError("the key file is encrypted: a passphrase is needed") from None
        except (ValueError, UnsupportedAlgorithm):
            if passphrase:
                raise KeyFileError("cannot read the key file: wrong passphrase?") from None
            raise KeyFileError("the key file is not a PEM private key") from None
        return cls(key)  # type: ignore[arg-type]  # _alg_of refuses other key types

    def save(self, path: Path, passphrase: bytes | None) -> None:
        """Write the key with mode 0600, atomically: a fresh temporary file (created
        exclusively, so never someone else's) renamed over ``path``."""
        write_atomic(Path(path), self.to_pem(passphrase), 0o600)

    @classmethod
    def load(cls, path: Path, passphrase: bytes | None) -> SigningKey:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise KeyFileError(f"cannot read {path}: {exc.strerror}") from None
        try:
            return cls.from_pem(data, passphrase)
        except KeyFileError as exc:
            raise KeyFileError(f"{path}: {exc}") from None
