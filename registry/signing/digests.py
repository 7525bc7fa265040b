"""Per-value digests: what a signature covers, one digest per value.

A value's digest is SHA-256 over its wire encoding without index and timestamp (Handle.Net's
``HandleValueDigester``), written in standard base64 with padding, keyed by the value's index
in the payload. Per-value digests let a client that received only some values (a filtered
answer) still check those.
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from registry.model import wire
from registry.model.values import PERM_PUBLIC_READ, Value, is_type

DIGEST_ALG = "SHA-256"
HS_SIGNATURE = "HS_SIGNATURE"


def value_digest(v: Value) -> str:
    return encoded_digest(wire.encode_value(v))


def encoded_digest(encoded: bytes) -> str:
    """The digest of the value whose wire encoding is ``encoded`` (saves encoding it twice
    when the encoding is needed anyway)."""
    return encoded_digest_bytes(encoded).decode("ascii")


def encoded_digest_bytes(encoded: bytes) -> bytes:
    """:func:`encoded_digest` as ASCII bytes."""
    digest = hashlib.sha256(memoryview(encoded)[8:]).digest()  # without index and timestamp
    return binascii.b2a_base64(digest, newline=False)


def is_signature(v: Value) -> bool:
    return is_type(v.type, HS_SIGNATURE)


def signed_values(values: Iterable[Value]) -> list[Value]:
    """The values a signature covers: the publicly readable ones except HS_SIGNATURE values
    (Handle's signer drops old signatures before digesting; its verifier skips them)."""
    return [v for v in values if is_signed(v)]


def is_signed(v: Value) -> bool:
    """Whether a signature covers ``v`` (see :func:`signed_values`)."""
    # v.public_read, without the property call: this runs for every value of every record.
    return bool(v.permissions & PERM_PUBLIC_READ) and not is_signature(v)


def digests_claim(
    values: Sequence[Value], encoded: Sequence[bytes] | None = None
) -> dict[str, Any]:
    """The payload's ``digests`` member, in Handle's member order. ``encoded``: the values'
    wire encodings, one per value, when the caller has them already."""
    if encoded is None:
        encoded = [wire.encode_value(v) for v in values]
    return {
        "alg": DIGEST_ALG,
        "digests": [
            {"index": v.index, "digest": encoded_digest(e)}
            for v, e in zip(values, encoded, strict=True)
        ],
    }
