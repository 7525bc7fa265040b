"""A mutation's changes turned into what the PostgreSQL store writes, off the event loop.

:func:`run` is what a transaction hands its thread: decode the records read, run the
mutation, and check and encode its changes into a :class:`Plan` — every CPU-bound step,
so the event loop only sends statements. The plan keeps the changes' order where it
matters (a delete between puts of the same key) and folds the rest: runs of puts become
one statement, tallies of one interval one row, reports one insert in their order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from registry.model.wire import decode_values
from registry.store.base import (
    STAT_FIELDS,
    Audit,
    Change,
    Delete,
    Encoded,
    Mutation,
    Put,
    PutEncoded,
    Record,
    Report,
    Tally,
)


def upper(text: str) -> str:
    """Same ASCII-only folding as handle_key/type_key; surrogatepass so nothing can raise."""
    return text.encode("utf-8", "surrogatepass").upper().decode("utf-8", "surrogatepass")


def storable(text: str) -> bool:
    """Whether PostgreSQL text can hold ``text`` (no NUL, no lone surrogate). What it
    cannot hold was never stored, so a lookup of it finds nothing."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def prefix_of(key: str) -> str:
    return key.split("/", 1)[0]


def key_lock(key: str) -> int:
    """The advisory lock id (signed 64-bit) of ``key``: a write locks its keys by these, so
    writers of a key that does not exist yet serialise too (no row to lock)."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass(slots=True)
class PutRun:
    """Create or replace these records (key → encoded record), in key order."""

    keys: list[str]
    handles: list[str]
    prefixes: list[str]
    vals: list[bytes]
    # Reverse-lookup rows of all of them: types, data, keys, prefixes.
    lookup: tuple[list[str], list[str], list[str], list[str]]


@dataclass(slots=True)
class DeleteRun:
    keys: list[str]


@dataclass(slots=True)
class Plan:
    steps: list[PutRun | DeleteRun] = field(default_factory=list)
    # (prefix, start, seconds) → counts in STAT_FIELDS order.
    tallies: dict[tuple[str, int, int], list[int]] = field(default_factory=dict)
    reports: list[tuple[str, str, str]] = field(default_factory=list)  # prefix, kind, body
    audits: list[Audit] = field(default_factory=list)


def decode(rows: Sequence[tuple[str, str, bytes]]) -> dict[str, Record]:
    return {key: Record(handle, decode_values(vals)) for key, handle, vals in rows}


def run(rows: Sequence[tuple[str, str, bytes]], mutation: Mutation[Any]) -> tuple[Plan, Any]:
    """Decode ``rows``, run ``mutation`` on them; its plan and result (on a store thread)."""
    changes, result = mutation(decode(rows))
    return plan(changes), result


def plan(changes: Sequence[Change]) -> Plan:
    """The writes of ``changes``; raises ValueError for a put under a foreign key and
    TypeError for what is not a change, before anything is written."""
    out = Plan()
    puts: dict[str, Encoded] = {}  # the run of puts so far; the last put of a key wins
    deletes: list[str] = []
    for change in changes:
        if isinstance(change, Put):
            _flush_deletes(out, deletes)
            puts[change.key] = Encoded.of(change.record)
        elif isinstance(change, PutEncoded):
            _flush_deletes(out, deletes)
            puts[change.key] = change.encoded
        elif isinstance(change, Delete):
            _flush_puts(out, puts)
            deletes.append(change.key)
        elif isinstance(change, Tally):
            counts = out.tallies.setdefault((change.prefix, change.start, change.seconds), [0] * 4)
            for i, name in enumerate(STAT_FIELDS):
                counts[i] += getattr(change, name)
        elif isinstance(change, Report):
            out.reports.append((change.prefix, change.kind, json.dumps(dict(change.body))))
        elif isinstance(change, Audit):
            out.audits.append(change)
        else:
            raise TypeError(f"Not a store change: {change!r}")
    _flush_puts(out, puts)
    _flush_deletes(out, deletes)
    return out


def _flush_deletes(out: Plan, deletes: list[str]) -> None:
    if deletes:
        out.steps.append(DeleteRun(sorted(set(deletes))))
        deletes.clear()


def _flush_puts(out: Plan, puts: dict[str, Encoded]) -> None:
    if not puts:
        return
    keys = sorted(puts)  # rows locked in key order: concurrent writers do not deadlock
    handles, prefixes, vals = [], [], []
    seen: set[tuple[str, str, str]] = set()
    lookup: tuple[list[str], list[str], list[str], list[str]] = ([], [], [], [])
    for key in keys:
        encoded = puts[key]
        if upper(encoded.handle) != key:
            raise ValueError(f"Put key {key!r} is not the key of {encoded.handle!r}")
        prefix = prefix_of(key)
        handles.append(encoded.handle)
        prefixes.append(prefix)
        vals.append(encoded.vals)
        for vtype, text in encoded.lookup:
            # Two values of one record may share type and data; NUL cannot be text here.
            if (vtype, text, key) in seen or "\x00" in text or "\x00" in vtype:
                continue
            seen.add((vtype, text, key))
            for column, item in zip(lookup, (vtype, text, key, prefix), strict=True):
                column.append(item)
    out.steps.append(PutRun(keys, handles, prefixes, vals, lookup))
    puts.clear()


def merge_counts(deltas: Mapping[str, int]) -> tuple[list[str], list[int]]:
    """Non-zero prefix count changes as sorted columns (rows locked in one order)."""
    items = sorted((p, n) for p, n in deltas.items() if n)
    return [p for p, _ in items], [n for _, n in items]
