"""Answers to a challenge computed from an HS_SECKEY secret, as Handle.Net computes them
(``Util.doMac``): the ``Authorization: Handle`` scheme's ``type="HS_SECKEY"``.

By the Handle name of the algorithm: ``HMAC-SHA256``/``HMAC-SHA1`` are the HMAC of the data
under the secret; ``SHA256``/``SHA1`` hash ``secret ‖ data ‖ secret``; ``PBKDF2-HMAC-SHA1``
is the HMAC-SHA1 of the data under ``PBKDF2-HMAC-SHA1(secret, salt, iterations, bits/8)``
with the client's salt, iterations and key length in bits. MD5 is refused. PBKDF2 is slow by
design: call :func:`secret_mac` off the event loop.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

MAX_ITERATIONS = 100_000  # the client chooses the cost: bound what one attempt may spend
_NAMES = {
    "HMACSHA256": "hmac-sha256",
    "HMACSHA1": "hmac-sha1",
    "SHA256": "sha256",
    "SHA2": "sha256",
    "SHA1": "sha1",
    "SHA": "sha1",
    "PBKDF2HMACSHA1": "pbkdf2",
    "PBKDF2WITHHMACSHA1": "pbkdf2",
}


@dataclass(frozen=True, slots=True)
class SecretMac:
    """How a secret answers: the algorithm, and PBKDF2's parameters."""

    kind: str  # one of _NAMES' values
    salt: bytes = b""
    iterations: int = 0
    key_bits: int = 0


def parse_alg(alg: str, salt: bytes = b"", iterations: int = 0, key_bits: int = 0) -> SecretMac:
    """The answer a Handle algorithm name asks for (case and punctuation ignored, as the
    reference compares them); ValueError for one refused or unknown."""
    kind = _NAMES.get("".join(c for c in alg.upper() if c.isalnum()))
    if kind is None:
        raise ValueError(f"unsupported HS_SECKEY algorithm {alg!r}")
    if kind == "pbkdf2" and not (
        salt and 0 < iterations <= MAX_ITERATIONS and key_bits in range(8, 4097, 8)
    ):
        raise ValueError("PBKDF2-HMAC-SHA1 needs a salt, 1 to 100000 iterations, a length")
    return SecretMac(kind, salt, iterations, key_bits)


def secret_mac(how: SecretMac, secret: bytes, data: bytes) -> bytes:
    """The answer a holder of ``secret`` gives for ``data``."""
    if how.kind == "pbkdf2":
        key = hashlib.pbkdf2_hmac("sha1", secret, how.salt, how.iterations, how.key_bits // 8)
        return hmac.new(key, data, hashlib.sha1).digest()
    if how.kind.startswith("hmac-"):
        return hmac.new(secret, data, how.kind[5:]).digest()
    return hashlib.new(how.kind, secret + data + secret).digest()
