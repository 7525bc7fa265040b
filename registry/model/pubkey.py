"""Handle public key blobs (HS_PUBKEY data, the key of each server in a site record) ⇄ JWK.

A blob is ``bytes key type``, ``u16 flags`` (reserved, written 0, ignored on read), then
fields that depend on the type. Numbers are Java ``BigInteger.toByteArray()`` output: big-endian
two's complement, minimal, so a leading ``00`` when the top bit is set and ``00`` for zero.
Readers take them as unsigned (``new BigInteger(1, bytes)``), as Handle.Net does.

``RSA_PUB_KEY``  ``bytes e, bytes n`` and then **4 zero bytes**: the Java encoder sizes its
                 buffer for four length fields but writes three (289 bytes for RSA-2048).
``DSA_PUB_KEY``  ``bytes q, bytes p, bytes g, bytes y``, no padding.
``DH_PUB_KEY``   ``bytes y, bytes p, bytes g`` (session setup only); it has no JWK, so
                 :func:`pubkey_to_jwk` refuses it.

Like Handle.Net, readers of these three ignore trailing bytes. The JWK is what the reference
JSON API prints: ``{"kty":"RSA","n","e"}`` and ``{"kty":"DSA","y","p","q","g"}`` (not a
registered JWK type, but it is what Handle.Net reads and writes), members base64url without
padding, integers unsigned big-endian and minimal (zero is ``"AA"``).

Handle.Net 9.3 has **no** encoding for elliptic-curve or Ed25519 keys (its ``Util`` and
``Common`` know only the three above; the Chinese ``idpointer`` fork adds ``SM2_PUB_KEY``).
For its own signing, idnode defines two more, in the same style, read strictly (exact length,
nothing trailing); other Handle software will show them as base64:

``Ed25519_PUB_KEY``  ``bytes key`` (the 32-byte RFC 8032 public key);
                     JWK ``{"kty":"OKP","crv":"Ed25519","x"}`` (RFC 8037).
``EC_PUB_KEY``       ``bytes curve`` (the JWK curve name, only ``"P-256"``),
                     ``bytes point`` (SEC 1 uncompressed: ``04 || X || Y``, 65 bytes);
                     JWK ``{"kty":"EC","crv":"P-256","x","y"}`` (RFC 7518, 32-byte x and y).

Every failure is :class:`~registry.errors.InvalidValue`.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from registry.errors import InvalidValue
from registry.signing._b64 import b64url_encode as _b64url
from registry.signing._b64 import uint_to_b64url as _b64url_uint

RSA_PUB_KEY = "RSA_PUB_KEY"
DSA_PUB_KEY = "DSA_PUB_KEY"
DH_PUB_KEY = "DH_PUB_KEY"
ED25519_PUB_KEY = "Ed25519_PUB_KEY"  # idnode's own (Handle.Net has none)
EC_PUB_KEY = "EC_PUB_KEY"  # idnode's own (Handle.Net has none)

# Java's RSA KeyFactory refuses moduli outside these sizes; the JSON API then shows base64.
RSA_MIN_BITS = 512
RSA_MAX_BITS = 16384
_RSA_RESTRICTED_BITS = 3072  # above this, Java wants an exponent of at most 64 bits
_RSA_TRAILER = b"\x00\x00\x00\x00"
_P256_COORD = 32
_ED25519_LEN = 32

# Members that only a private JWK has: refused, so a private key is never published by mistake.
_PRIVATE_MEMBERS = {
    "RSA": ("d", "p", "q", "dp", "dq", "qi", "oth"),
    "DSA": ("x",),
    "EC": ("d",),
    "OKP": ("d",),
}
_B64_CHARS = re.compile(r"[A-Za-z0-9_\-+/]*={0,2}")


# --- blob primitives -------------------------------------------------------------------------


def _read_bytes(data: bytes, offset: int, what: str) -> tuple[bytes, int]:
    if offset + 4 > len(data):
        raise InvalidValue(f"Public key: truncated length of {what}")
    (length,) = struct.unpack_from(">i", data, offset)
    offset += 4
    if length < 0 or offset + length > len(data):
        raise InvalidValue(f"Public key: length of {what} points past the end of the data")
    return bytes(data[offset : offset + length]), offset + length


def _read_int(data: bytes, offset: int, what: str) -> tuple[int, int]:
    raw, offset = _read_bytes(data, offset, what)
    if not raw:
        raise InvalidValue(f"Public key: {what} is empty")
    return int.from_bytes(raw, "big"), offset


def _bytes_field(raw: bytes) -> bytes:
    return struct.pack(">i", len(raw)) + raw


def _java_bigint(value: int) -> bytes:
    """``BigInteger.toByteArray()`` of a non-negative number (two's complement, minimal)."""
    return value.to_bytes(value.bit_length() // 8 + 1, "big")


def _header(key_type: str) -> bytes:
    return _bytes_field(key_type.encode("ascii")) + b"\x00\x00"


# --- JWK primitives --------------------------------------------------------------------------


def _member(jwk: Mapping[str, Any], name: str, kty: str) -> bytes:
    if name not in jwk:
        raise InvalidValue(f"{kty} JWK is missing the {name!r} member")
    text = jwk[name]
    if not isinstance(text, str):
        raise InvalidValue(f"{kty} JWK member {name!r} must be a base64url string")
    if not text or _B64_CHARS.fullmatch(text) is None or len(text.rstrip("=")) % 4 == 1:
        raise InvalidValue(f"{kty} JWK member {name!r} is not valid base64url")
    body = text.rstrip("=").replace("+", "-").replace("/", "_")
    try:
        return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise InvalidValue(f"{kty} JWK member {name!r} is not valid base64url") from None


def _uint_member(jwk: Mapping[str, Any], name: str, kty: str) -> int:
    value = int.from_bytes(_member(jwk, name, kty), "big")
    if value == 0:
        raise InvalidValue(f"{kty} JWK member {name!r} must not be zero")
    return value


# --- per key type ----------------------------------------------------------------------------


def _check_rsa(n: int, e: int) -> None:
    bits = n.bit_length()
    if not RSA_MIN_BITS <= bits <= RSA_MAX_BITS:
        raise InvalidValue(
            f"RSA modulus has {bits} bits; it must have {RSA_MIN_BITS} to {RSA_MAX_BITS}"
        )
    if e < 1 or e >= n:
        raise InvalidValue("RSA public exponent is out of range")
    if bits > _RSA_RESTRICTED_BITS and e.bit_length() > 64:
        raise InvalidValue(f"RSA public exponent is too large for a {bits}-bit modulus")


def _check_p256(x: int, y: int) -> None:
    try:
        ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    except ValueError:
        raise InvalidValue("EC public key point is not on curve P-256") from None


def _rsa_to_jwk(data: bytes, offset: int) -> dict[str, Any]:
    e, offset = _read_int(data, offset, "RSA exponent")
    n, offset = _read_int(data, offset, "RSA modulus")
    _check_rsa(n, e)
    return {"kty": "RSA", "n": _b64url_uint(n), "e": _b64url_uint(e)}


def _dsa_to_jwk(data: bytes, offset: int) -> dict[str, Any]:
    q, offset = _read_int(data, offset, "DSA q")
    p, offset = _read_int(data, offset, "DSA p")
    g, offset = _read_int(data, offset, "DSA g")
    y, offset = _read_int(data, offset, "DSA y")
    if 0 in (q, p, g, y):
        raise InvalidValue("DSA public key has a zero parameter")
    return {
        "kty": "DSA",
        "y": _b64url_uint(y),
        "p": _b64url_uint(p),
        "q": _b64url_uint(q),
        "g": _b64url_uint(g),
    }


def _ed25519_to_jwk(data: bytes, offset: int) -> dict[str, Any]:
    raw, offset = _read_bytes(data, offset, "Ed25519 key")
    if len(raw) != _ED25519_LEN:
        raise InvalidValue(f"Ed25519 public key must be {_ED25519_LEN} bytes, not {len(raw)}")
    if offset != len(data):
        raise InvalidValue("Ed25519 public key blob has trailing bytes")
    return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw)}


def _ec_to_jwk(data: bytes, offset: int) -> dict[str, Any]:
    curve, offset = _read_bytes(data, offset, "EC curve")
    if curve != b"P-256":
        raise InvalidValue(f"Unsupported EC curve {curve.decode('utf-8', 'replace')!r}")
    point, offset = _read_bytes(data, offset, "EC point")
    if len(point) != 1 + 2 * _P256_COORD or point[0] != 0x04:
        raise InvalidValue("EC point must be an uncompressed SEC 1 point (65 bytes, 04 first)")
    if offset != len(data):
        raise InvalidValue("EC public key blob has trailing bytes")
    x_raw, y_raw = point[1 : 1 + _P256_COORD], point[1 + _P256_COORD :]
    _check_p256(int.from_bytes(x_raw, "big"), int.from_bytes(y_raw, "big"))
    return {"kty": "EC", "crv": "P-256", "x": _b64url(x_raw), "y": _b64url(y_raw)}


_DECODERS = {
    RSA_PUB_KEY.encode(): _rsa_to_jwk,
    DSA_PUB_KEY.encode(): _dsa_to_jwk,
    ED25519_PUB_KEY.encode(): _ed25519_to_jwk,
    EC_PUB_KEY.encode(): _ec_to_jwk,
}


# --- public API ------------------------------------------------------------------------------


def pubkey_type(data: bytes) -> str:
    """The key type string at the start of a blob (``RSA_PUB_KEY``, ...)."""
    raw, _ = _read_bytes(data, 0, "key type")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidValue("Public key type is not UTF-8") from None


def pubkey_to_jwk(data: bytes) -> dict[str, Any]:
    """The JWK of a Handle public key blob; :class:`InvalidValue` if it is none we can show."""
    key_type, offset = _read_bytes(data, 0, "key type")
    if offset + 2 > len(data):
        raise InvalidValue("Public key: truncated flags")
    decoder = _DECODERS.get(key_type)
    if decoder is None:
        shown = key_type.decode("utf-8", "replace")
        raise InvalidValue(f"Public key type {shown!r} has no JWK form")
    return decoder(data, offset + 2)


def pubkey_from_jwk(jwk: Mapping[str, Any]) -> bytes:
    """The Handle blob of a public JWK, byte for byte as Handle.Net's encoder writes it."""
    if not isinstance(jwk, Mapping):
        raise InvalidValue("A public key JWK must be a JSON object")
    kty = jwk.get("kty")
    if not isinstance(kty, str):
        raise InvalidValue("JWK is missing the 'kty' member")
    kty = kty.upper()  # Handle.Net compares kty ignoring case
    for name in _PRIVATE_MEMBERS.get(kty, ()):
        if name in jwk:
            raise InvalidValue(f"JWK member {name!r} is private key material: give a public key")
    if kty == "RSA":
        n = _uint_member(jwk, "n", kty)
        e = _uint_member(jwk, "e", kty)
        _check_rsa(n, e)
        return (
            _header(RSA_PUB_KEY)
            + _bytes_field(_java_bigint(e))
            + _bytes_field(_java_bigint(n))
            + _RSA_TRAILER
        )
    if kty == "DSA":
        y = _uint_member(jwk, "y", kty)
        p = _uint_member(jwk, "p", kty)
        q = _uint_member(jwk, "q", kty)
        g = _uint_member(jwk, "g", kty)
        return _header(DSA_PUB_KEY) + b"".join(_bytes_field(_java_bigint(v)) for v in (q, p, g, y))
    if kty == "OKP":
        if jwk.get("crv") != "Ed25519":
            raise InvalidValue("OKP JWK: only crv 'Ed25519' is supported")
        x = _member(jwk, "x", kty)
        if len(x) != _ED25519_LEN:
            raise InvalidValue(f"Ed25519 JWK member 'x' must be {_ED25519_LEN} bytes")
        return _header(ED25519_PUB_KEY) + _bytes_field(x)
    if kty == "EC":
        if jwk.get("crv") != "P-256":
            raise InvalidValue("EC JWK: only crv 'P-256' is supported")
        x = _member(jwk, "x", kty)
        y_raw = _member(jwk, "y", kty)
        if len(x) != _P256_COORD or len(y_raw) != _P256_COORD:
            raise InvalidValue(f"P-256 JWK members 'x' and 'y' must be {_P256_COORD} bytes each")
        _check_p256(int.from_bytes(x, "big"), int.from_bytes(y_raw, "big"))
        return _header(EC_PUB_KEY) + _bytes_field(b"P-256") + _bytes_field(b"\x04" + x + y_raw)
    raise InvalidValue(f"Unsupported JWK key type {jwk.get('kty')!r}")


def pubkey_json(data: bytes) -> dict[str, Any]:
    """Public key data as the JSON API shows it.

    ``{"format":"key","value":JWK}`` when the blob is a key whose JWK re-encodes to exactly
    these bytes, else ``{"format":"base64","value":...}`` (standard alphabet, padded), so that
    JSON never loses bytes. (Handle.Net shows any parsable key as a JWK, even a blob its own
    encoder would not have written, e.g. one without the RSA trailer.)
    """
    try:
        jwk = pubkey_to_jwk(data)
        if pubkey_from_jwk(jwk) == bytes(data):
            return {"format": "key", "value": jwk}
    except InvalidValue:
        pass
    return {"format": "base64", "value": base64.b64encode(data).decode("ascii")}
