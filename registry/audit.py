"""What the audit log records of a write: who asked (:class:`Caller`), and the entries
(:class:`~registry.store.chain.Audit`) derived from the changes the write makes — pure.

A write of a few records gets one entry per record (create, update or delete, with the
SHA-256 of the record's stored form before and after: the values as stored, so secrets
only ever sealed, and only digested). An import batch gets one entry for the whole batch,
digesting its keys: an import of millions of records adds one row per batch, not per
record. Refusals (wrong credentials, a right the caller lacks) happen outside any write:
:class:`Refusals` bounds how many of them reach the log.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from registry.model.identifiers import NA_PREFIX, handle_key
from registry.store.base import Change, Delete, Encoded, Put, PutEncoded, Record
from registry.store.chain import Audit, clean

_NA_KEY = NA_PREFIX.upper() + "/"
_WRITES = (Put, PutEncoded, Delete)  # the changes that write records


@dataclass(frozen=True, slots=True)
class Caller:
    """Where a write comes from: the transport that carried it (``http``, ``cli``,
    ``import``, ``native``, ``admin-console``...), the client's address and, when no Handle
    identity authenticated it, who is trusted to make it (the local operator)."""

    transport: str
    address: str = ""
    identity: str = "operator"


OPERATOR = Caller("cli", "local")  # a write from the data directory's own commands
IMPORT = Caller("import", "local")  # an import, by the operator


def identity_key(text: str) -> str:
    """An identity as entries name it and filters match it: ``index:HANDLE`` with the
    handle's key (ASCII upper-cased); anything else (``operator:alice``) as it is."""
    head, sep, rest = text.partition(":")
    return f"{int(head)}:{handle_key(rest)}" if sep and head.isdigit() else text


def parse_time(text: str) -> float:
    """A time as filters take it: seconds since the epoch, or ISO 8601 (UTC unless it says
    otherwise); ValueError if neither."""
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise ValueError(f"not a time: {text!r}")
        return seconds
    when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def prefix_of(key: str) -> str:
    """The prefix key an entry about ``key`` is filed under: that of the handle, or the
    prefix a prefix handle (``0.NA/P``) stands for."""
    if key.startswith(_NA_KEY):
        return key[len(_NA_KEY) :]
    return key.split("/", 1)[0] if "/" in key else ""


def digest(record: Record | Encoded | None) -> str:
    """SHA-256 (hex) of a record as stored: its handle and its values' wire encoding."""
    if record is None:
        return ""
    encoded = Encoded.of(record) if isinstance(record, Record) else record
    head = encoded.handle.encode("utf-8", "surrogatepass") + b"\0"
    return hashlib.sha256(head + encoded.vals).hexdigest()


@dataclass(frozen=True, slots=True)
class Context:
    """Who a write's entries name, and when it was made."""

    caller: Caller
    identity: str
    at: float

    def entry(
        self,
        action: str,
        handle: str = "",
        prefix: str = "",
        before: str = "",
        after: str = "",
        detail: str = "",
    ) -> Audit:
        """The one line to append an entry, from any write (a mutation may return it among
        its changes) or on its own (:meth:`registry.service.Registry.audit_event`)."""
        c = self.caller
        return Audit(
            self.at,
            clean(c.transport),
            clean(self.identity),
            clean(c.address),
            action,
            clean(prefix),
            clean(handle),
            before,
            after,
            clean(detail),
        )


def record_entries(
    ctx: Context, records: Mapping[str, Record], changes: Sequence[Change], action: str | None
) -> list[Audit]:
    """An entry per record ``changes`` write over ``records`` (the state the write read);
    ``action`` names them all instead of create/update/delete."""
    out = []
    current: dict[str, Record | Encoded | None] = dict(records)
    for change in changes:
        after: Record | Encoded | None = None
        if isinstance(change, Put):
            after, verb = change.record, "create"
        elif isinstance(change, PutEncoded):
            after, verb = change.encoded, "create"
        elif isinstance(change, Delete):
            verb = "delete"
        else:
            continue
        key = change.key
        before = current.get(key)
        if before is not None:
            handle = before.handle
            verb = "update" if after is not None else verb
        elif after is not None:
            handle = after.handle
        else:
            continue  # a delete of nothing changes nothing
        current[key] = after
        out.append(ctx.entry(action or verb, handle, prefix_of(key), digest(before), digest(after)))
    return out


def batch_entry(
    ctx: Context, changes: Sequence[Change], action: str, detail: str = ""
) -> list[Audit]:
    """One entry for the records ``changes`` write (none if they write none): the SHA-256 of
    their sorted keys as the digest after, how many, and the first and last key."""
    keys = sorted({c.key for c in changes if isinstance(c, _WRITES)})
    if not keys:
        return []
    digest_ = hashlib.sha256("\n".join(keys).encode("utf-8", "surrogatepass")).hexdigest()
    prefixes = {k.partition("/")[0] for k in keys}  # the common case, quickly
    if _NA_KEY[:-1] in prefixes:
        prefixes = set(map(prefix_of, keys))
    prefix = prefixes.pop() if len(prefixes) == 1 else ""
    text = f"{len(keys)} records, {keys[0]} .. {keys[-1]}" + (f"; {detail}" if detail else "")
    return [ctx.entry(action, prefix=prefix, after=digest_, detail=text)]


def _source(address: str) -> str:
    """An address as refusals are coalesced by: IPv6 by its /64."""
    if ":" not in address:
        return address
    try:
        return str(ipaddress.IPv6Network((address.partition("%")[0], 64), strict=False))
    except ValueError:
        return address


class Refusals:
    """Bounds the refusals the log records, so failing on purpose cannot fill the disk: at
    most one entry per (identity, address source) per minute — the next one says how many
    were left out meanwhile — and at most ``per_minute`` entries a minute in all (the first
    after a full minute says how many went unrecorded)."""

    def __init__(self, per_minute: int = 120, max_entries: int = 10_000) -> None:
        self.per_minute = per_minute
        self._max = max_entries
        self._seen: OrderedDict[tuple[str, str], tuple[int, int]] = OrderedDict()
        self._minute = -1
        self._written = 0  # entries this minute
        self._dropped = 0  # refusals left out because the minute was full

    def admit(self, identity: str, address: str, now: float) -> str | None:
        """None: leave this refusal out; else record it, with this note (may be empty)."""
        minute = int(now // 60)
        if minute != self._minute:
            self._minute, self._written = minute, 0
        key = (identity, _source(address))
        last, skipped = self._seen.pop(key, (-1, 0))
        if last == minute:
            self._seen[key] = (last, skipped + 1)
            return None
        if self._written >= self.per_minute:
            self._seen[key] = (last, skipped)
            self._dropped += 1
            self._trim()
            return None
        notes = []
        if skipped:
            notes.append(f"{skipped} more from there before this one")
        if self._dropped:
            notes.append(f"{self._dropped} refusals unrecorded (rate bound)")
            self._dropped = 0
        self._seen[key] = (minute, 0)
        self._written += 1
        self._trim()
        return "; ".join(notes)

    def _trim(self) -> None:
        while len(self._seen) > self._max:
            self._seen.popitem(last=False)
