"""Imports: many records created or replaced in one transaction by the trusted local
operator, idempotently — re-importing the same content changes nothing (timestamps
included), so a batch retried after a timeout counts as success."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from registry.bulk import Prepared
from registry.errors import (
    HandleError,
    NotResponsible,
    PrefixSuspended,
    PrefixWithdrawn,
    TemplateViolation,
)
from registry.model.identifiers import Identifier, handle_key, is_within, prefix_handle
from registry.model.values import Value
from registry.store.base import Change, Encoded, Mutation, Put, PutEncoded, Record
from registry.writes.edits import check_allocated, not_allocated
from registry.writes.values import Preparer, unchanged


@dataclass(frozen=True, slots=True)
class ImportResult:
    created: int = 0
    replaced: int = 0
    unchanged: int = 0


class ImportItemError(HandleError):
    """Item ``position`` of an import batch failed (``error``); nothing of the batch was
    written."""

    def __init__(self, position: int, error: HandleError) -> None:
        super().__init__(error.message)
        self.position = position
        self.error = error
        self.response_code = error.response_code


@contextlib.contextmanager
def item_errors(positions: Mapping[str, int]) -> Iterator[None]:
    """Tell a record the write guard refused (:mod:`registry.writes.guard`) as the failing
    item of the batch, by its position (``positions``: key -> position): the record at
    fault, or the first of a prefix that is not active."""
    try:
        yield
    except TemplateViolation as exc:
        raise ImportItemError(positions.get(handle_key(exc.handle), 0), exc) from None
    except (PrefixSuspended, PrefixWithdrawn) as exc:
        prefix = handle_key(exc.prefix)
        within = [n for key, n in positions.items() if is_within(key.partition("/")[0], prefix)]
        raise ImportItemError(min(within, default=0), exc) from None


def import_one(
    view: dict[str, Record | Encoded],
    ident: Identifier,
    values: Sequence[Value],
    now: int,
    prep: Preparer,
    changes: list[Change],
    counts: list[int],
) -> None:
    """Import one record (its client values) inside the transaction: append its change,
    count it as created, replaced or unchanged; ``view`` shows the records as changed so
    far (later items see earlier ones: a prefix, then its handles)."""
    existing = view.get(ident.key)
    if isinstance(existing, Encoded):
        existing = existing.record()
    if existing is None:
        check_allocated(ident, view)
        new = [prep.value(v, now, None, True) for v in values]
        record = Record(ident.text, prep.sign(ident.text, new, now))
        counts[0] += 1
    else:
        current = prep.user(ident.key, existing.values)
        olds = {v.index: v for v in current}
        new = [prep.value(v, now, olds.get(v.index), True) for v in values]
        if unchanged(new, current):
            counts[2] += 1
            return
        new += prep.system(ident.key, existing.values)
        record = Record(existing.handle, prep.sign(existing.handle, new, now))
        counts[1] += 1
    view[ident.key] = record
    changes.append(Put(ident.key, record))


def import_records(
    items: Sequence[tuple[Identifier, Sequence[Value]]], now: int, prep: Preparer
) -> Mutation[ImportResult]:
    """Import ``items`` (their client values)."""

    def mutate(records: Mapping[str, Record]) -> tuple[list[Change], ImportResult]:
        view: dict[str, Record | Encoded] = dict(records)
        changes: list[Change] = []
        counts = [0, 0, 0]
        for ident, values in items:
            import_one(view, ident, values, now, prep, changes, counts)
        return changes, ImportResult(*counts)

    return mutate


def prepared_keys(batch: Prepared) -> tuple[list[str], dict[str, str]]:
    """The keys a prepared batch's transaction reads (its records and their prefix
    handles), and each prefix's handle key."""
    prefixes = {i.prefix for i in batch.items if i.prefix is not None}
    prefix_keys = {p: handle_key(prefix_handle(p)) for p in prefixes}
    keys = {i.key for i in batch.items} | set(prefix_keys.values())
    return sorted(keys), prefix_keys


def import_prepared(
    batch: Prepared, ahead: bool, prefix_keys: Mapping[str, str], prep: Preparer
) -> Mutation[ImportResult]:
    """Import a batch :mod:`registry.bulk` made ready: new records as prepared when they
    were signed ``ahead`` with the current key, every other one as :func:`import_records`
    does. A failing item raises :class:`ImportItemError`."""
    now = batch.now

    def mutate(records: Mapping[str, Record]) -> tuple[list[Change], ImportResult]:
        view: dict[str, Record | Encoded] = dict(records)
        changes: list[Change] = []
        counts = [0, 0, 0]
        for position, item in enumerate(batch.items):
            try:
                if ahead and item.vals is not None and item.key not in view:
                    if item.prefix is not None and prefix_keys[item.prefix] not in view:
                        raise NotResponsible(not_allocated(item.prefix))
                    encoded = Encoded(item.handle, item.vals, item.lookup)
                    view[item.key] = encoded
                    changes.append(PutEncoded(item.key, encoded))
                    counts[0] += 1
                else:
                    ident, values = batch.parsed(position)
                    values = prep.user(ident.key, values)
                    import_one(view, ident, values, now, prep, changes, counts)
            except HandleError as exc:
                raise ImportItemError(position, exc) from None
        return changes, ImportResult(*counts)

    return mutate
