"""Enterprise prefixes and their lifecycle: pure data, no I/O.

An enterprise applies for a prefix under one of the node's (``88.118.8`` under ``88.118``);
the node admin approves or rejects it; an approved prefix is *active* and may be suspended
and reactivated, or withdrawn for good::

    pending ──approve──▶ active ──suspend──▶ suspended ──reactivate──▶ active
       │                   │                     │
       └──reject──▶ rejected      active|suspended ──withdraw──▶ withdrawn

A rejected application may be made again (it becomes pending). Only an active prefix takes
writes and resolves. The registry keeps each enterprise as a record in its home prefix,
``<home>/ENTERPRISE.<prefix>`` (values readable by the node admin only), and the prefixes
that are not active, in one record per home, ``<home>/ENTERPRISE.STATES``: that one record is
what every resolution's check reads (:mod:`registry.prefixstates`), so a change of state is
one write of it, seen by every process and host through the record cache's generations.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from registry.errors import HandleError, InvalidValue, ProtocolError, WrongState
from registry.model.identifiers import check_prefix, handle_key, is_within
from registry.model.pubkey import pubkey_from_jwk, pubkey_to_jwk
from registry.model.values import PERM_SECRET, Value

PENDING, ACTIVE, SUSPENDED, REJECTED, WITHDRAWN = (
    "pending",
    "active",
    "suspended",
    "rejected",
    "withdrawn",
)
STATES = (PENDING, ACTIVE, SUSPENDED, REJECTED, WITHDRAWN)
BLOCKED = (SUSPENDED, WITHDRAWN)  # prefixes whose identifiers neither resolve nor change

# action -> (states it may start from, state it leads to)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "approve": ((PENDING,), ACTIVE),
    "reject": ((PENDING,), REJECTED),
    "suspend": ((ACTIVE,), SUSPENDED),
    "reactivate": ((SUSPENDED,), ACTIVE),
    "withdraw": ((ACTIVE, SUSPENDED), WITHDRAWN),
}
ACTIONS = tuple(TRANSITIONS)
NEEDS_REASON = ("reject", "suspend", "withdraw")

# The application's text fields and their greatest length (characters).
FIELDS: dict[str, int] = {"name": 200, "organisation": 200, "contact": 320, "industry": 100}
MAX_REASON = 500
MIN_SECRET, MAX_SECRET = 12, 256
MAX_HISTORY = 100  # transitions kept per enterprise (the oldest dropped)

RECORD_TYPE = "IDNODE_ENTERPRISE"
STATES_TYPE = "IDNODE_PREFIX_STATES"
_RECORD_PREFIX = "ENTERPRISE."
STATES_SUFFIX = "ENTERPRISE.STATES"


def record_handle(home: str, prefix: str) -> str:
    """The handle of ``prefix``'s enterprise record in its home prefix ``home``."""
    return f"{home}/{_RECORD_PREFIX}{prefix}"


def states_handle(home: str) -> str:
    return f"{home}/{STATES_SUFFIX}"


@dataclass(frozen=True, slots=True)
class Credential:
    """The enterprise admin's credential: a secret (sealed: never held in clear here) or
    an HS_PUBKEY blob."""

    sealed_secret: bytes | None = None
    public_key: bytes | None = None

    def to_json(self) -> dict[str, str]:
        if self.sealed_secret is not None:
            return {"sealedSecret": base64.b64encode(self.sealed_secret).decode("ascii")}
        if self.public_key is not None:
            return {"publicKey": base64.b64encode(self.public_key).decode("ascii")}
        return {}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Credential:
        if "sealedSecret" in obj:
            return cls(sealed_secret=base64.b64decode(obj["sealedSecret"]))
        if "publicKey" in obj:
            return cls(public_key=base64.b64decode(obj["publicKey"]))
        return cls()


@dataclass(frozen=True, slots=True)
class Enterprise:
    prefix: str
    name: str = ""
    organisation: str = ""
    contact: str = ""
    industry: str = ""
    state: str = PENDING
    reason: str = ""
    updated: int = 0
    history: tuple[dict[str, Any], ...] = ()
    credential: Credential = field(default_factory=Credential)

    def public(self) -> dict[str, Any]:
        """What the API shows (never the credential; only which kind it is)."""
        kind = (
            "secret"
            if self.credential.sealed_secret is not None
            else "publicKey"
            if self.credential.public_key is not None
            else None
        )
        return {
            "prefix": self.prefix,
            **{name: getattr(self, name) for name in FIELDS},
            "state": self.state,
            "reason": self.reason,
            "updated": self.updated,
            "credential": kind,
            "history": list(self.history),
        }

    def moved(self, action: str, reason: str, now: int, by: str) -> Enterprise:
        """This enterprise after ``action``; :class:`WrongState` if its state does not
        allow it."""
        sources, target = TRANSITIONS[action]
        if self.state not in sources:
            raise WrongState(f"prefix {self.prefix} is {self.state}: it cannot be {past(action)}")
        step = {"from": self.state, "to": target, "action": action, "at": now, "by": by}
        if reason:
            step["reason"] = reason
        history = (*self.history, step)[-MAX_HISTORY:]
        # Once approved the credential lives in the prefix handle; the application keeps none.
        cred = Credential() if action == "approve" else self.credential
        return dataclasses.replace(
            self, state=target, reason=reason, updated=now, history=history, credential=cred
        )


_PAST = {
    "approve": "approved",
    "reject": "rejected",
    "suspend": "suspended",
    "reactivate": "reactivated",
    "withdraw": "withdrawn",
}


def past(action: str) -> str:
    return _PAST[action]


def encode(ent: Enterprise) -> bytes:
    obj = ent.public()
    del obj["credential"]
    obj["credentialData"] = ent.credential.to_json()
    return orjson.dumps(obj)


def decode(data: bytes) -> Enterprise:
    """An enterprise record's value; a damaged one is :class:`InvalidValue`."""
    try:
        obj = orjson.loads(data)
        return Enterprise(
            prefix=str(obj["prefix"]),
            **{name: str(obj.get(name, "")) for name in FIELDS},
            state=obj["state"] if obj["state"] in STATES else PENDING,
            reason=str(obj.get("reason", "")),
            updated=int(obj.get("updated", 0)),
            history=tuple(h for h in obj.get("history", []) if isinstance(h, dict)),
            credential=Credential.from_json(obj.get("credentialData") or {}),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, binascii.Error):
        raise InvalidValue("damaged enterprise record") from None


def record_value(ent: Enterprise) -> Value:
    return Value(1, RECORD_TYPE, encode(ent), permissions=PERM_SECRET)


def from_values(values: Sequence[Value]) -> Enterprise | None:
    for v in values:
        if v.type == RECORD_TYPE:
            return decode(v.data)
    return None


# ------------------------------------------------------------------ the states record


def decode_states(values: Sequence[Value]) -> dict[str, str]:
    """A home's states record: prefix key -> state of each prefix that is not active. A
    damaged one holds nothing (it is rewritten whole by the next change)."""
    for v in values:
        if v.type == STATES_TYPE:
            try:
                obj = orjson.loads(v.data)
            except orjson.JSONDecodeError:
                return {}
            if isinstance(obj, dict):
                return {str(k): str(s) for k, s in obj.items() if s in BLOCKED}
    return {}


def states_value(states: Mapping[str, str]) -> Value:
    data = orjson.dumps(dict(sorted(states.items())))
    return Value(1, STATES_TYPE, data, permissions=PERM_SECRET)


def blocked_state(prefix_key: str, blocked: Mapping[str, str]) -> str | None:
    """The state that blocks ``prefix_key``: its own or an ancestor's (a derived prefix of
    a suspended enterprise is suspended with it)."""
    state = blocked.get(prefix_key)
    if state is not None:
        return state
    for key, s in blocked.items():
        if is_within(prefix_key, key):
            return s
    return None


# ------------------------------------------------------------------ applications


@dataclass(frozen=True, slots=True)
class Application:
    """A checked application; ``secret`` is in clear only until the registry seals it."""

    prefix: str
    fields: dict[str, str]
    secret: str | None
    public_key: bytes | None


def _text(body: Mapping[str, Any], name: str, limit: int, required: bool = True) -> str:
    raw = body.get(name)
    if raw is None and not required:
        return ""
    if not isinstance(raw, str) or not raw.strip():
        raise ProtocolError(f"{name} is required (a non-empty string)")
    if len(raw) > limit:
        raise ProtocolError(f"{name} is longer than {limit} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in raw):
        raise ProtocolError(f"{name} contains control characters")
    return raw.strip()


def reason_of(body: Any, action: str) -> str:
    """The reason a transition's body gives (required for some actions)."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ProtocolError('the body must be a JSON object, e.g. {"reason": "..."}')
    return _text(body, "reason", MAX_REASON, required=action in NEEDS_REASON)


def parse_application(body: Any, homed: Sequence[str]) -> Application:
    """An application's body checked: a prefix strictly under one of ``homed``, the text
    fields within their sizes, and exactly one credential."""
    if not isinstance(body, dict):
        raise ProtocolError("the application must be a JSON object")
    unknown = set(body) - {"prefix", "secret", "publicKey", *FIELDS}
    if unknown:
        raise ProtocolError(f"unknown field {sorted(unknown)[0]!r}"[:200])
    prefix = _text(body, "prefix", 255)
    try:
        check_prefix(prefix)
    except HandleError as exc:
        raise ProtocolError(f"prefix: {exc.message}") from None
    key = handle_key(prefix)
    if not any(key != h and is_within(key, handle_key(h)) for h in homed):
        raise ProtocolError(f"prefix {prefix} is not under this node's {', '.join(homed)}")
    fields = {name: _text(body, name, limit) for name, limit in FIELDS.items()}
    secret, public = body.get("secret"), body.get("publicKey")
    if (secret is None) == (public is None):
        raise ProtocolError("give exactly one credential: secret or publicKey")
    if secret is not None:
        if not isinstance(secret, str) or not MIN_SECRET <= len(secret) <= MAX_SECRET:
            raise ProtocolError(f"secret must be {MIN_SECRET} to {MAX_SECRET} characters")
        return Application(prefix, fields, secret, None)
    return Application(prefix, fields, None, public_key_blob(public))


def public_key_blob(public: Any) -> bytes:
    """An HS_PUBKEY blob from a JWK object or the blob in base64."""
    try:
        if isinstance(public, dict):
            return pubkey_from_jwk(public)
        if isinstance(public, str) and len(public) <= 8192:
            blob = base64.b64decode(public, validate=True)
            pubkey_to_jwk(blob)  # refuses a blob that is no key
            return blob
    except (InvalidValue, binascii.Error, ValueError) as exc:
        raise ProtocolError(f"publicKey: {exc}"[:300]) from None
    raise ProtocolError("publicKey must be a JWK object or an HS_PUBKEY blob in base64")
