"""Per-value digests: what a signature covers, one digest per value.

A value's digest is SHA-256 over its wire encoding without index and timestamp (Handle.Net's
``HandleValueDigester``), written in standard base64 with padding, keyed by the value's index
in the payload. Per-value digests let a client that received only some values (a filtered
answer) still check those.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from typing import Any

from registry.model import wire
from registry.model.values import Value, type_key

DIGEST_ALG = "SHA-256"
HS_SIGNATURE = "HS_SIGNATURE"


def value_digest(v: Value) -> str:
    return base64.b64encode(hashlib.sha256(wire.digest_input(v)).digest()).decode("ascii")


def is_signature(v: Value) -> bool:
    return type_key(v.type) == HS_SIGNATURE


def signed_values(values: Iterable[Value]) -> list[Value]:
    """The values a signature covers: the publicly readable ones except HS_SIGNATURE values
    (Handle's signer drops old signatures before digesting; its verifier skips them)."""
    return [v for v in values if v.public_read and not is_signature(v)]


def digests_claim(values: Iterable[Value]) -> dict[str, Any]:
    """The payload's ``digests`` member, in Handle's member order."""
    return {
        "alg": DIGEST_ALG,
        "digests": [{"index": v.index, "digest": value_digest(v)} for v in values],
    }
