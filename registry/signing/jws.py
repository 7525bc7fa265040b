"""Compact JWS (RFC 7515) as HS_SIGNATURE and HS_CERT values hold it: ``header.payload.sig``.

Handle.Net writes the protected header as exactly ``{"alg":"RS256"}`` (no ``kid``, no
``typ``), the payload as compact JSON, all three parts base64url without padding; so do we.
Decoding is strict: any deviation is a :class:`JwsError` whose message says what is wrong,
because these texts come from records anyone may have written.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from registry.signing._b64 import b64url_bytes, b64url_decode
from registry.signing.keys import SigningKey

MAX_JWS_CHARS = 64 * 1024  # far above any signature or certificate; a bound on the work


class JwsError(ValueError):
    """A text that is not a well-formed compact JWS; the message names the defect."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Jws:
    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: bytes  # ``b64(header) "." b64(payload)``: what the signature covers
    signature: bytes

    @property
    def alg(self) -> str:
        alg: str = self.header["alg"]
        return alg


def encode(header: dict[str, Any], payload: dict[str, Any], key: SigningKey) -> str:
    """Sign ``payload`` with ``key``; the header starts with ``alg`` (the key's) as Handle's
    does, followed by any other members given."""
    return encode_bytes(header, payload, key).decode("ascii")


def encode_bytes(header: dict[str, Any], payload: dict[str, Any], key: SigningKey) -> bytes:
    """:func:`encode`, as ASCII bytes (as values hold it)."""
    if not header:  # as record signatures and certificates have it: just the key's alg
        protected = _alg_only(key.alg)
    else:
        if header.get("alg", key.alg) != key.alg:
            raise ValueError(f"header alg {header['alg']!r} does not match the {key.alg} key")
        members = {"alg": key.alg, **{k: v for k, v in header.items() if k != "alg"}}
        protected = b64url_bytes(orjson.dumps(members))
    return _signed(protected, orjson.dumps(payload), key)


def encode_json_bytes(payload: bytes, key: SigningKey) -> bytes:
    """:func:`encode_bytes` with the default header, of a payload already serialised."""
    return _signed(_alg_only(key.alg), payload, key)


def _signed(protected: bytes, payload: bytes, key: SigningKey) -> bytes:
    signing_input = b"%s.%s" % (protected, b64url_bytes(payload))
    return b"%s.%s" % (signing_input, b64url_bytes(key.sign(signing_input)))


@lru_cache(maxsize=8)
def _alg_only(alg: str) -> bytes:
    """The encoded protected header ``{"alg": alg}``, made once per algorithm."""
    return b64url_bytes(orjson.dumps({"alg": alg}))


def _json_object(part: str, what: str) -> dict[str, Any]:
    try:
        raw = b64url_decode(part)
    except ValueError as exc:
        raise JwsError(f"JWS {what} is {exc}") from None
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise JwsError(f"JWS {what} is not JSON") from None
    if not isinstance(obj, dict):
        raise JwsError(f"JWS {what} is not a JSON object")
    return obj


def decode(text: str) -> Jws:
    """Parse a compact JWS (surrounding whitespace ignored); does not check the signature."""
    if len(text) > MAX_JWS_CHARS:
        raise JwsError(f"JWS longer than {MAX_JWS_CHARS} characters")
    parts = text.strip().split(".")
    if len(parts) != 3:
        raise JwsError(f"JWS has {len(parts)} parts, not 3 (header.payload.signature)")
    header = _json_object(parts[0], "header")
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise JwsError("JWS header has no 'alg'")
    if "crit" in header:
        raise JwsError("JWS header has 'crit' extensions, which are not supported")
    payload = _json_object(parts[1], "payload")
    try:
        signature = b64url_decode(parts[2])
    except ValueError as exc:
        raise JwsError(f"JWS signature is {exc}") from None
    if not signature:
        raise JwsError("JWS signature is empty")
    signing_input = (parts[0] + "." + parts[1]).encode("ascii")
    return Jws(header, payload, signing_input, signature)
