"""Bulk import's CPU-bound half: JSON lines made into records ready for the store — parsed,
validated, stamped, signed and encoded — one batch at a time.

It runs in worker processes (``resolver.transfer`` spreads batches over a process pool), so
everything here is pure: no store, no files. The signing key reaches a worker once, in the
:class:`BulkSpec` its pool's initializer gets. What needs the store — does the record exist
already, is its prefix allocated — or the sealing key (HS_SECKEY values) is left to
:meth:`registry.service.Registry.import_prepared`, inside the batch's transaction, which
also takes over every record that exists already, so the outcome is exactly
:meth:`~registry.service.Registry.import_records`'s.
"""

from __future__ import annotations

import gc
import signal
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import orjson

from registry.errors import HandleError, NotResponsible, ProtocolError
from registry.model.identifiers import Identifier, homed_in, parse
from registry.model.jsonvalues import value_data, value_from_json
from registry.model.values import (
    DEFAULT_TTL,
    HS_SECKEY,
    MAX_INDEX,
    MAX_TYPE_BYTES,
    TTL_RELATIVE,
    Value,
    check_unique,
    is_type,
    restored,
)
from registry.model.wire import encode_values
from registry.signer import NodeSigner, SignerSpec
from registry.store.base import lookup_entries


@dataclass(frozen=True)
class BulkSpec:
    """What a worker needs to prepare batches as the node would write them."""

    homed_keys: tuple[str, ...]  # keys of the prefixes the node is home for
    signer: SignerSpec | None  # None: the node does not sign


class Item(NamedTuple):
    """One record of a batch, checked. ``vals`` is its signed record's wire encoding, to be
    written as is if the record does not exist yet; None leaves the record to the
    transaction (it holds secrets, or it is the node's prefix handle, which holds its keys).
    """

    key: str
    handle: str
    prefix: str | None  # the prefix whose handle must exist (None: a prefix handle itself)
    vals: bytes | None
    lookup: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Prepared:
    """A batch made ready at ``now`` and signed by ``issuer`` (None: unsigned), one item per
    line of ``lines``. On a bad line, ``error`` holds its position, and ``items`` stop there.

    Between processes the lines stay behind (the importer has them: :meth:`with_lines`)
    and the items travel as plain tuples, several times cheaper to pickle."""

    now: int
    issuer: str | None
    items: list[Item]
    error: tuple[int, HandleError] | None = None
    lines: Sequence[str | bytes] = ()

    def parsed(self, position: int) -> tuple[Identifier, list[Value]]:
        """The line of item ``position``, parsed again (for the transaction's own import)."""
        return parse_line(self.lines[position])

    def with_lines(self, lines: Sequence[str | bytes]) -> Prepared:
        return replace(self, lines=lines)

    def __getstate__(self) -> object:
        return (self.now, self.issuer, [tuple(i) for i in self.items], self.error)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        now, issuer, rows, error = state
        items = [tuple.__new__(Item, row) for row in rows]
        for name, value in zip(
            ("now", "issuer", "items", "error"), (now, issuer, items, error), strict=True
        ):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "lines", ())


def parse_line(text: str | bytes, now: int = 0) -> tuple[Identifier, list[Value]]:
    """One JSON line of an import: ``{"handle": ..., "values": [...]}``; values without a
    timestamp get ``now``."""
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"invalid JSON: {exc}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("handle"), str):
        raise ProtocolError('expected {"handle": "...", "values": [...]}')
    values = obj.get("values", [])
    if not isinstance(values, list):
        raise ProtocolError("values must be an array")
    return parse(obj["handle"]), [_value(v, now) for v in values]


_PLAIN = frozenset(("index", "type", "data"))


def _value(obj: Any, now: int) -> Value:
    """``value_from_json(obj, True, now)``, sooner for the shape most lines hold: just an
    int index, a type and string data, all in range (anything else takes the full way,
    which also words the errors)."""
    if type(obj) is dict and len(obj) == 3 and obj.keys() == _PLAIN:
        index, vtype, raw = obj["index"], obj["type"], obj["data"]
        if (
            type(index) is int
            and 0 < index <= MAX_INDEX
            and type(vtype) is str
            and len(vtype) > 0
            and len(vtype.encode("utf-8")) <= MAX_TYPE_BYTES
        ):
            return Value(index, vtype, value_data(raw, index), DEFAULT_TTL, TTL_RELATIVE, now)
    return value_from_json(obj, True, now)


class Preparer:
    def __init__(self, spec: BulkSpec) -> None:
        self.spec = spec
        self.homed_keys = spec.homed_keys
        self.signer = None if spec.signer is None else NodeSigner.from_spec(spec.signer)
        self.issuer = None if self.signer is None else self.signer.issuer
        self._homed_prefixes: dict[str, bool] = {}

    def prepare(self, lines: Sequence[str | bytes], now: int) -> Prepared:
        items: list[Item] = []
        for position, line in enumerate(lines):
            try:
                items.append(self.item(line, now))
            except HandleError as exc:
                return Prepared(now, self.issuer, items, (position, exc), lines)
        return Prepared(now, self.issuer, items, None, lines)

    def _homed(self, ident: Identifier) -> bool:
        if ident.is_prefix_handle:
            return homed_in(ident, self.homed_keys)
        homed = self._homed_prefixes.get(ident.prefix_key)
        if homed is None:  # remembered: a batch has a few prefixes, each many times
            if len(self._homed_prefixes) > 10_000:
                self._homed_prefixes.clear()
            homed = self._homed_prefixes[ident.prefix_key] = homed_in(ident, self.homed_keys)
        return homed

    def item(self, line: str | bytes, now: int) -> Item:
        ident, values = parse_line(line, now)
        if not self._homed(ident):
            raise NotResponsible()
        check_unique(values)
        prefix = None if ident.is_prefix_handle else ident.prefix
        signer = self.signer
        if (signer is not None and ident.key == signer.key_handle) or any(
            [is_type(v.type, HS_SECKEY) for v in values]
        ):
            return Item(ident.key, ident.text, prefix, None, ())
        # As Registry.import_records creates a record: the node's own values (an export's
        # signatures) dropped, timestamps kept or set, signed afresh.
        if signer is None:
            record = tuple(restored(v, now) for v in values)
            vals = encode_values(record)
        else:
            users = signer.user_part(ident.key, values)
            record, vals = signer.sign_encoded(ident.text, [restored(v, now) for v in users], now)
        return Item(ident.key, ident.text, prefix, vals, tuple(lookup_entries(record)))


# --- worker processes --------------------------------------------------------------------------

_worker: Preparer | None = None


def init_worker(spec: BulkSpec) -> None:
    """A process pool's initializer: the worker's :class:`Preparer`, made once."""
    global _worker
    _worker = Preparer(spec)
    # Ctrl-C reaches the whole process group: the importer handles it and stops the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Batches allocate many small containers and make no cycles worth a collection every
    # few hundred allocations.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def prepare_in_worker(lines: Sequence[str | bytes], now: int) -> Prepared:
    assert _worker is not None, "init_worker did not run in this process"
    return _worker.prepare(lines, now)
