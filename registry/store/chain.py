"""The audit log's hash chain: pure, shared by every store backend.

Each entry is numbered (``seq``, from 1, no gaps) and carries
``hash = SHA-256(previous hash ‖ canonical(entry))``, the previous hash of entry 1 being
:data:`GENESIS`. Changing, removing or reordering any entry therefore breaks every hash from
it on, which :func:`verify` finds. The store keeps a head (the newest number and hash, so a
removed tail shows too) and an anchor (number and hash of the last entry pruned by
retention), and appends under a lock that makes the chain linear whichever host writes.

The canonical form of an entry is the JSON array of its fields in a fixed order, compact
and UTF-8: stable across backends (text in, the same text out; times are IEEE doubles in
both).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class Audit:
    """Append an entry to the audit log, in the transaction of the change it records (so an
    entry exists exactly for what was committed). The store numbers it and chains it to the
    entry before; its text must be :func:`clean` (what every backend can store)."""

    at: float  # seconds since the epoch
    transport: str  # http, cli, import, native, admin-console, serve, ...
    identity: str  # an identity ``index:handle``, or ``operator...`` for the local CLI
    address: str  # the client's address ("local" for the CLI)
    action: str  # create, update, delete, import, refused, key.publish, config, ...
    prefix: str  # the prefix key the entry is filed under ("" if none)
    handle: str
    before: str  # SHA-256 (hex) of the record before, "" if there was none
    after: str  # SHA-256 (hex) of the record after, "" if there is none
    detail: str = ""  # never a secret


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A stored entry: an :class:`Audit` with its number and chained hash."""

    seq: int
    at: float
    transport: str
    identity: str
    address: str
    action: str
    prefix: str
    handle: str
    before: str
    after: str
    detail: str
    hash: str

    def as_json(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "at": self.at,
            "transport": self.transport,
            "identity": self.identity,
            "address": self.address,
            "action": self.action,
            "prefix": self.prefix,
            "handle": self.handle,
            "before": self.before,
            "after": self.after,
            "detail": self.detail,
            "hash": self.hash,
        }


FIELDS = tuple(AuditEntry.__dataclass_fields__)  # column order of stores and exports


@dataclass(frozen=True, slots=True)
class AuditHead:
    seq: int  # the newest entry's number (0: none yet)
    hash: str
    anchor_seq: int  # entries up to this one were pruned (0: none)
    anchor_hash: str


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which entries: each filter that is set must match (``prefix`` and ``identity``
    exactly, as stored; times in seconds since the epoch, ``until`` excluded)."""

    prefix: str | None = None
    identity: str | None = None
    action: str | None = None
    since: float | None = None
    until: float | None = None


def clean(text: str) -> str:
    """``text`` as every backend stores it unchanged: NUL and lone surrogates (which
    PostgreSQL text cannot hold) escaped."""
    if text.isascii() and "\x00" not in text:
        return text
    text = text.replace("\x00", "\\x00")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def canonical(seq: int, audit: Audit | AuditEntry) -> bytes:
    a = audit
    row = [seq, a.at, a.transport, a.identity, a.address, a.action, a.prefix, a.handle]
    row += [a.before, a.after, a.detail]
    return json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def link(previous: str, seq: int, audit: Audit | AuditEntry) -> str:
    """The hash of entry ``seq`` holding ``audit`` after an entry hashed ``previous``."""
    return hashlib.sha256(bytes.fromhex(previous) + canonical(seq, audit)).hexdigest()


def chained(head: AuditHead, audits: Iterable[Audit]) -> list[AuditEntry]:
    """``audits`` numbered and chained after ``head``."""
    out = []
    seq, previous = head.seq, head.hash
    for a in audits:
        seq += 1
        previous = link(previous, seq, a)
        fields = (a.at, a.transport, a.identity, a.address, a.action, a.prefix, a.handle)
        out.append(AuditEntry(seq, *fields, a.before, a.after, a.detail, previous))
    return out


@dataclass(slots=True)
class Verifier:
    """Walks the log in order (fed page by page, so millions of entries stream) and
    remembers the first entry that breaks the chain."""

    head: AuditHead
    seq: int = 0
    previous: str = ""
    checked: int = 0
    broken: int | None = None  # the first bad entry's number
    reason: str = ""

    def __post_init__(self) -> None:
        self.seq, self.previous = self.head.anchor_seq, self.head.anchor_hash

    def feed(self, entries: Iterable[AuditEntry]) -> bool:
        """Check these entries (the next in number order); False once the chain broke."""
        for e in entries:
            if self.broken is not None or e.seq > self.head.seq:
                break
            if e.seq != self.seq + 1:
                return self._break(self.seq + 1, "missing")
            if link(self.previous, e.seq, e) != e.hash:
                return self._break(e.seq, "altered (its hash does not match its content)")
            self.seq, self.previous = e.seq, e.hash
            self.checked += 1
        return self.broken is None

    def finish(self) -> bool:
        """After the last page: the log must reach the head, whose hash it must end with."""
        if self.broken is None and self.seq < self.head.seq:
            return self._break(self.seq + 1, "missing")
        if self.broken is None and self.previous != self.head.hash:
            return self._break(self.seq, "does not end in the recorded head")
        return self.broken is None

    def _break(self, seq: int, reason: str) -> bool:
        self.broken, self.reason = seq, reason
        return False
