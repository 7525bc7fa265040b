"""The intake protocol between a secondary node and its top-level node: pure, no I/O.

Both sides import this module, so what one signs the other checks byte for byte.

Every intake request is signed by the node's root key (the key the top-level certifies)::

    Authorization: IDNODE-SIG app="<app id>", ts="<epoch s>", nonce="<b64url>", sig="<b64url>"

over the string-to-sign (lines joined by "\\n")::

    IDNODE-SIG-V1, METHOD, path with query, app id, ts, nonce, hex SHA-256 of the body

The top-level refuses a request whose app id it does not know, whose signature does not verify
with the key registered for that app, whose timestamp is more than :data:`MAX_SKEW` seconds
away from its clock, or whose nonce it has seen within the skew window (a replay).

Batches (``POST /intake/v1/batches``) carry at most :data:`MAX_BATCH` items; each item has an
``id`` (its idempotency key, unique per node forever) and a ``kind``:

- ``prefix``: ``{"op": "create"|"update"|"delete", "prefix": "88.118.8"}`` — an enterprise
  prefix allocated (or changed, or withdrawn) under the node's prefix, so the top-level routes
  it to the node; ``{"op": "suspend"|"reactivate", "prefix", "reason"}`` — a routed prefix
  suspended by the node admin (still routed: the node answers that it is suspended) or
  active again;
- ``stats``: ``{"prefix", "start", "seconds", "registrations", "updates", "deletions",
  "resolutions"}`` — counts for one prefix over ``[start, start + seconds)``.

The top-level answers every item: ``accepted``, ``duplicate`` (its id was seen: a retry,
counted once) or ``rejected`` (with ``error``; permanent, retrying will not help).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from registry.signing._b64 import b64url_encode
from registry.signing.keys import JwkError, SigningKey, verify_signature

SCHEME = "IDNODE-SIG"
VERSION_LINE = "IDNODE-SIG-V1"
MAX_SKEW = 300  # seconds a request's timestamp may differ from the receiver's clock
MAX_BATCH = 100  # items per batch
MAX_BODY = 1 << 20  # bytes of an intake request body
MAX_COUNT = 2**63 - 1  # largest stats number (a signed 64-bit integer, as SQL stores it)

ITEM_KINDS = ("prefix", "stats")
PREFIX_OPS = ("create", "update", "delete", "suspend", "reactivate")
STATS_COUNTS = ("registrations", "updates", "deletions", "resolutions")

# Paths of the intake API (``sync/openapi.yaml`` documents them).
REGISTER_PATH = "/intake/v1/register"
BATCH_PATH = "/intake/v1/batches"
HEARTBEAT_PATH = "/intake/v1/heartbeat"

_PARAM = re.compile(r'\s*([a-z]+)="([^"]*)"\s*(?:,|$)')
_TS = re.compile(r"[0-9]{1,12}")
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_PREFIX = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,254}")


class ProtocolError(ValueError):
    """A request or item that does not follow this protocol; the text says why."""


@dataclass(frozen=True, slots=True)
class SigAuth:
    """The parsed ``Authorization`` header of an intake request."""

    app: str
    ts: int
    nonce: str
    sig: bytes


def _unb64url(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise ProtocolError("signature is not base64url") from None


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


def string_to_sign(method: str, path: str, app: str, ts: int, nonce: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join((VERSION_LINE, method.upper(), path, app, str(ts), nonce, digest)).encode()


def sign_request(
    key: SigningKey,
    app: str,
    method: str,
    path: str,
    body: bytes,
    now: int,
    nonce: str | None = None,
) -> str:
    """The ``Authorization`` header value for a request."""
    nonce = nonce or new_nonce()
    sig = key.sign(string_to_sign(method, path, app, now, nonce, body))
    return f'{SCHEME} app="{app}", ts="{now}", nonce="{nonce}", sig="{b64url_encode(sig)}"'


def parse_auth(header: str | None) -> SigAuth:
    """Parse an ``Authorization`` header; :class:`ProtocolError` says what is wrong."""
    if not header:
        raise ProtocolError("missing Authorization header")
    scheme, _, rest = header.strip().partition(" ")
    if scheme != SCHEME:
        raise ProtocolError(f"Authorization scheme must be {SCHEME}")
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if m is None or m.end() == pos:
            raise ProtocolError("malformed Authorization parameters")
        params[m.group(1)] = m.group(2)
        pos = m.end()
    missing = [p for p in ("app", "ts", "nonce", "sig") if not params.get(p)]
    if missing:
        raise ProtocolError(f"Authorization lacks {', '.join(missing)}")
    if not _TS.fullmatch(params["ts"]):  # ASCII digits only: str.isdigit() takes "²"
        raise ProtocolError("ts must be epoch seconds")
    if not _NONCE.fullmatch(params["nonce"]):
        raise ProtocolError("nonce must be 16-64 base64url characters")
    return SigAuth(params["app"], int(params["ts"]), params["nonce"], _unb64url(params["sig"]))


def check_signature(
    auth: SigAuth, jwk: Mapping[str, Any], alg: str, method: str, path: str, body: bytes
) -> bool:
    """Whether ``auth`` is a valid signature by ``jwk`` over this request."""
    data = string_to_sign(method, path, auth.app, auth.ts, auth.nonce, body)
    try:
        return verify_signature(jwk, alg, data, auth.sig)
    except JwkError:
        return False


def check_fresh(auth: SigAuth, now: int) -> None:
    if abs(now - auth.ts) > MAX_SKEW:
        raise ProtocolError(f"stale request: timestamp {now - auth.ts} s from the server's clock")


def alg_of_jwk(jwk: Mapping[str, Any]) -> str:
    """The JWS algorithm idnode uses with a key of this type."""
    kty = jwk.get("kty")
    if kty == "OKP":
        return "EdDSA"
    if kty == "EC":
        return "ES256"
    if kty == "RSA":
        return "RS256"
    raise ProtocolError(f"unsupported key type {kty!r}")


def valid_prefix(text: object) -> bool:
    """A prefix such as ``88.118.8``: dot-separated non-empty labels, no ``/``."""
    return (
        isinstance(text, str)
        and _PREFIX.fullmatch(text) is not None
        and ".." not in text
        and not text.endswith(".")
    )


def is_under(prefix: str, parent: str) -> bool:
    """``prefix`` equals ``parent`` or is derived from it (``88.118.8`` under ``88.118``)."""
    p, q = prefix.upper(), parent.upper()
    return p == q or p.startswith(q + ".")


def check_item(item: object) -> dict[str, Any]:
    """Validate one batch item's shape (not its authorisation); returns it."""
    if not isinstance(item, dict):
        raise ProtocolError("item is not an object")
    ident = item.get("id")
    if not isinstance(ident, str) or not 1 <= len(ident) <= 200:
        raise ProtocolError("item id must be a string of 1-200 characters")
    kind = item.get("kind")
    if kind not in ITEM_KINDS:
        raise ProtocolError(f"item kind must be one of {', '.join(ITEM_KINDS)}")
    if not valid_prefix(item.get("prefix")):
        raise ProtocolError("item prefix is missing or invalid")
    if kind == "prefix":
        if item.get("op") not in PREFIX_OPS:
            raise ProtocolError(f"prefix op must be one of {', '.join(PREFIX_OPS)}")
    else:
        for name in ("start", "seconds", *STATS_COUNTS):
            v = item.get(name)
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= MAX_COUNT:
                raise ProtocolError(f"stats {name} must be an integer from 0 to {MAX_COUNT}")
        if item["seconds"] == 0:
            raise ProtocolError("stats seconds must be positive")
    return item


def check_batch(body: object) -> list[dict[str, Any]]:
    """The items of a batch body ``{"items": [...]}`` (shape only; per-item errors are the
    caller's to report item by item)."""
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise ProtocolError('batch body must be {"items": [...]}')
    items: list[Any] = body["items"]
    if not 1 <= len(items) <= MAX_BATCH:
        raise ProtocolError(f"a batch has 1-{MAX_BATCH} items")
    return items
