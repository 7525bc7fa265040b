"""Base64url without padding (RFC 7515 §2), decoded strictly.

Strict because a JWS or JWK has exactly one spelling: accepting padding, the standard
alphabet or stray characters would let two different texts carry the same signature.
"""

from __future__ import annotations

import base64
import binascii
import re

_URLSAFE = re.compile(r"[A-Za-z0-9_-]*")


_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")


def b64url_bytes(raw: bytes) -> bytes:
    """:func:`b64url_encode`, as ASCII bytes."""
    return binascii.b2a_base64(raw, newline=False).translate(_TO_URLSAFE).rstrip(b"=")


def b64url_encode(raw: bytes) -> str:
    return b64url_bytes(raw).decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url; :class:`ValueError` on anything else."""
    if _URLSAFE.fullmatch(text) is None or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        raise ValueError("not unpadded base64url") from None
    if b64url_encode(raw) != text:  # non-zero trailing bits: a second spelling of raw
        raise ValueError("not canonical base64url")
    return raw


def uint_to_b64url(value: int) -> str:
    """A non-negative integer, big-endian and minimal (zero is ``AA``), as JWKs write them."""
    return b64url_encode(value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))
