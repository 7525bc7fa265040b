"""Writing signatures and certificates: payloads as Handle.Net writes them, and the Signer.

Handle.Net serialises its ``HandleClaimsSet`` with Gson, which writes a subclass's fields
before its superclass's and omits nulls, so members come in this order:
``perms, digests, chain, publicKey`` then ``iss, sub, exp, nbf, iat``. We write the same
order (JSON readers do not care; byte-for-byte comparisons with Handle.Net output do).

A record signature (HS_SIGNATURE): ``{"digests", ["chain"], "iss", "sub", "exp", "nbf",
"iat"}``. A certificate (HS_CERT): ``{"perms", ["chain"], "publicKey", "iss", "sub", "exp",
"nbf", "iat"}``. ``iss`` and certificate ``sub`` are identities ``index:handle``; ``nbf`` is
ten minutes before ``iat`` (Handle's batch signer does the same) to absorb clock skew.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import orjson

from registry.model.values import DEFAULT_TTL, PERM_DEFAULT, TTL_RELATIVE, Reference, Value
from registry.model.wire import encode_value
from registry.signing import jws
from registry.signing.digests import (
    DIGEST_ALG,
    HS_SIGNATURE,
    digests_claim,
    encoded_digest_bytes,
    is_signature,
    is_signed,
    signed_values,
)
from registry.signing.keys import SigningKey, public_key_from_jwk
from registry.signing.payloads import identity_key, parse_identity
from registry.signing.perms import PERMS

__all__ = [
    "HS_CERT",
    "HS_SIGNATURE",
    "NBF_SKEW",
    "PERMS",
    "SIGNATURE_INDEX_BASE",
    "Signer",
    "cert_claims",
    "first_free_index",
    "identity_key",
    "issue_cert",
    "parse_identity",
    "sign_record",
    "signature_claims",
    "signature_issuer",
    "signing_rate",
]

HS_CERT = "HS_CERT"
SIGNATURE_INDEX_BASE = 400  # Handle's signer stores HS_SIGNATURE at the first free index ≥ 400
NBF_SKEW = 600

# The fixed parts of a signature payload's JSON (see Signer.payload_json).
_DIGESTS_HEAD = b'{"digests":{"alg":' + orjson.dumps(DIGEST_ALG) + b',"digests":['
_DIGEST_ITEM = b'{"index":%d,"digest":"%s"}'
_TIMES = b',"exp":%d,"nbf":%d,"iat":%d}'


# --- payloads --------------------------------------------------------------------------------


def _check_identity(text: str, what: str) -> None:
    index, handle = parse_identity(text)
    if index <= 0 or "/" not in handle:
        raise ValueError(f"{what} {text!r} is not an identity 'index:prefix/suffix'")


def _times(now: int, validity: int) -> dict[str, int]:
    if validity <= 0:
        raise ValueError("validity must be positive")
    return {"exp": now + validity, "nbf": now - NBF_SKEW, "iat": now}


def signature_claims(
    handle: str,
    values: Sequence[Value],
    issuer: str,
    now: int,
    validity: int,
    chain: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The payload of ``issuer``'s signature over ``handle``'s publicly readable values.

    ``chain`` (optional, Handle's ``chain`` claim) lists where the certificates are, nearest
    first, as handles or value references ``index:handle``; without it verifiers look for the
    issuer's certificate in the issuer's own handle.
    """
    _check_identity(issuer, "issuer")
    return _signature_payload(
        handle, digests_claim(signed_values(values)), issuer, now, validity, chain
    )


def _signature_payload(
    handle: str,
    digests: dict[str, Any],
    issuer: str,
    now: int,
    validity: int,
    chain: Sequence[str] | None,
) -> dict[str, Any]:
    claims: dict[str, Any] = {"digests": digests}
    if chain:
        claims["chain"] = list(chain)
    return claims | {"iss": issuer, "sub": handle} | _times(now, validity)


def sign_record(
    handle: str,
    values: Sequence[Value],
    key: SigningKey,
    issuer: str,
    now: int,
    validity: int,
    chain: Sequence[str] | None = None,
) -> str:
    """An HS_SIGNATURE's text (compact JWS)."""
    return jws.encode({}, signature_claims(handle, values, issuer, now, validity, chain), key)


def cert_claims(
    issuer: str,
    subject: str,
    subject_jwk: Mapping[str, Any],
    perms: Sequence[tuple[str, str]],
    now: int,
    validity: int,
    chain: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The payload of a certificate: ``issuer`` vouches that ``subject`` holds the key
    ``subject_jwk`` and may sign what ``perms`` cover. Self-issued when issuer == subject."""
    _check_identity(issuer, "issuer")
    _check_identity(subject, "subject")
    for _, perm in perms:
        if perm not in PERMS:
            raise ValueError(f"unknown permission {perm!r}; choose one of {', '.join(PERMS)}")
    public_key_from_jwk(subject_jwk)  # never certify a key nobody could verify with
    claims: dict[str, Any] = {"perms": [{"handle": h, "perm": p} for h, p in perms]}
    if chain:
        claims["chain"] = list(chain)
    claims |= {"publicKey": dict(subject_jwk), "iss": issuer, "sub": subject}
    return claims | _times(now, validity)


def issue_cert(
    issuer: str,
    issuer_key: SigningKey,
    subject: str,
    subject_jwk: Mapping[str, Any],
    perms: Sequence[tuple[str, str]],
    now: int,
    validity: int,
    chain: Sequence[str] | None = None,
) -> str:
    """An HS_CERT's text (compact JWS signed by ``issuer_key``)."""
    payload = cert_claims(issuer, subject, subject_jwk, perms, now, validity, chain)
    return jws.encode({}, payload, issuer_key)


# --- the write path --------------------------------------------------------------------------


def first_free_index(values: Iterable[Value], base: int = SIGNATURE_INDEX_BASE) -> int:
    used = {v.index for v in values}
    index = base
    while index in used:
        index += 1
    return index


@lru_cache(maxsize=4096)
def signature_issuer(data: bytes) -> str | None:
    """The ``iss`` of an HS_SIGNATURE's data, or None if it is no readable signature."""
    try:
        iss = jws.decode(data.decode("utf-8")).payload.get("iss")
    except (jws.JwsError, UnicodeDecodeError):
        return None
    return iss if isinstance(iss, str) else None


class Signer:
    """Re-signs a record on every write: drops the signatures this node made (with the
    current key or any in ``own_issuers``, e.g. retired ones during a rotation) and appends
    a fresh HS_SIGNATURE. Others' signatures are kept untouched. Pure: no I/O, ``now`` given.
    """

    def __init__(
        self,
        key: SigningKey,
        issuer: str,
        validity: int,
        *,
        own_issuers: Iterable[str] = (),
        chain: Sequence[str] | None = None,
    ) -> None:
        _check_identity(issuer, "issuer")
        self.key = key
        self.issuer = issuer
        self.validity = validity
        self.chain = tuple(chain) if chain else None
        self._own = frozenset(identity_key(i) for i in (issuer, *own_issuers))
        # The payload's members between the digests and the subject, as orjson writes them.
        rest: dict[str, Any] = {"chain": list(self.chain)} if self.chain else {}
        rest["iss"] = issuer
        self._after_digests = b"]}," + orjson.dumps(rest)[1:-1] + b',"sub":'

    def owns(self, value: Value) -> bool:
        if not is_signature(value):
            return False
        iss = signature_issuer(value.data)
        return iss is not None and identity_key(iss) in self._own

    def sign_values(
        self, handle: str, values: Sequence[Value], now: int, *, timestamp: int = 0
    ) -> tuple[Value, ...]:
        """``values`` without our old signatures, plus a fresh one (stamped ``timestamp``)."""
        kept = [v for v in values if not self.owns(v)]
        signature = self.signature(handle, kept, now, timestamp=timestamp)
        return tuple(kept) if signature is None else (*kept, signature)

    def signature(
        self,
        handle: str,
        values: Sequence[Value],
        now: int,
        *,
        timestamp: int = 0,
        encoded: Sequence[bytes] | None = None,
    ) -> Value | None:
        """The HS_SIGNATURE value over ``values`` (which hold none of ours), at their first
        free index ≥ 400; None when none of them is public. ``encoded``: the values' wire
        encodings, one per value, when the caller has them already (bulk import)."""
        if encoded is None:
            signed = [(v.index, encode_value(v)) for v in values if is_signed(v)]
        else:
            signed = [(v.index, e) for v, e in zip(values, encoded, strict=True) if is_signed(v)]
        if not signed:
            return None  # nothing public to vouch for
        data = jws.encode_json_bytes(self.payload_json(handle, signed, now), self.key)
        index = first_free_index(values)
        return Value(index, HS_SIGNATURE, data, DEFAULT_TTL, TTL_RELATIVE, timestamp, PERM_DEFAULT)

    def payload_json(self, handle: str, signed: Sequence[tuple[int, bytes]], now: int) -> bytes:
        """``orjson.dumps`` of :func:`_signature_payload` for the signed values given as
        (index, wire encoding), byte for byte, from parts made once per signer: every write
        and every imported record signs, and building the claims as dicts cost as much as
        the rest of the signature but the Ed25519 operation (tests compare both forms)."""
        if self.validity <= 0:
            raise ValueError("validity must be positive")
        digests = b",".join([_DIGEST_ITEM % (i, encoded_digest_bytes(e)) for i, e in signed])
        times = _TIMES % (now + self.validity, now - NBF_SKEW, now)
        return b"".join((_DIGESTS_HEAD, digests, self._after_digests, orjson.dumps(handle), times))


def signing_rate(alg: str, n: int = 200) -> float:
    """Records signed per second by :class:`Signer` with a fresh ``alg`` key, for a typical
    small record (URL, EMAIL, HS_ADMIN-sized values). A bench helper, not a test."""
    signer = Signer(SigningKey.generate(alg), "300:0.NA/88.118", 86400)
    values = [
        Value(1, "URL", b"https://example.org/item/000000"),
        Value(2, "EMAIL", b"owner@example.org"),
        Value(100, "HS_ADMIN", bytes(40), references=(Reference("0.NA/88.118", 300),)),
    ]
    start = time.perf_counter()
    for i in range(n):
        signer.sign_values(f"88.118/{i}", values, 1_700_000_000 + i)
    return n / (time.perf_counter() - start)
