"""The changes of a client's writes — create or replace a record, add or replace values,
delete a record or values — each as the mutation its store transaction runs.

Each function checks what it can before the transaction and returns the mutation, which
authorises the caller on exactly the records it reads (so a concurrent change of HS_ADMIN
values can never be raced) and returns the changes to make, none when nothing changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from registry.authz import Principal
from registry.errors import (
    HandleExists,
    HandleNotFound,
    InvalidValue,
    NotResponsible,
    ValueExists,
    ValuesNotFound,
)
from registry.model import admin as adm
from registry.model.identifiers import Identifier, handle_key, prefix_handle
from registry.model.values import MAX_VALUES, Value
from registry.store.base import Change, Delete, Mutation, Put, Record
from registry.writes.access import access_of, right_for
from registry.writes.values import Preparer, unchanged


@dataclass(frozen=True, slots=True)
class WriteResult:
    handle: str
    created: bool  # nothing existed before (HTTP 201)


def not_allocated(prefix: str) -> str:
    return f"Prefix {prefix} is not allocated on this node"


def check_allocated(ident: Identifier, records: Mapping[str, object]) -> None:
    """A handle may be created only under a prefix whose prefix handle exists."""
    if ident.is_prefix_handle:
        return
    if handle_key(prefix_handle(ident.prefix)) not in records:
        raise NotResponsible(not_allocated(ident.prefix))


def put_record(
    ident: Identifier,
    values: Sequence[Value],
    overwrite: bool,
    who: Principal | None,
    now: int,
    prep: Preparer,
) -> Mutation[WriteResult]:
    """Create ``ident`` with ``values`` (the client's) or (``overwrite``) replace its values
    whole."""

    def mutate(records: Mapping[str, Record]) -> tuple[list[Change], WriteResult]:
        existing = records.get(ident.key)
        access = access_of(ident, records, who)
        if existing is None:
            check_allocated(ident, records)
            access.require(adm.ADD_HANDLE)
            new = [prep.value(v, now, None, False) for v in values]
            sealed = prep.sign(ident.text, new, now)
            return [Put(ident.key, Record(ident.text, sealed))], WriteResult(ident.text, True)
        if not overwrite:
            raise HandleExists()
        access.require_some_value_right()
        current = prep.user(ident.key, existing.values)
        olds = {v.index: v for v in current}
        # Every value named is authorised, changed or not, before any is compared.
        for v in values:
            access.require(right_for(olds.get(v.index), v))
        kept = {v.index for v in values}
        for old in current:
            if old.index not in kept:
                access.require(right_for(old, None))
        new = [prep.value(v, now, olds.get(v.index), False) for v in values]
        if unchanged(new, current):
            return [], WriteResult(ident.text, False)
        new += prep.system(ident.key, existing.values)
        record = Record(existing.handle, prep.sign(existing.handle, new, now))
        return [Put(ident.key, record)], WriteResult(ident.text, False)

    return mutate


def put_values(
    ident: Identifier,
    values: Sequence[Value],
    overwrite: bool,
    who: Principal | None,
    now: int,
    prep: Preparer,
) -> Mutation[WriteResult]:
    """Add or replace just ``values`` (the client's) in an existing record."""

    def mutate(records: Mapping[str, Record]) -> tuple[list[Change], WriteResult]:
        existing = records.get(ident.key)
        if existing is None:
            raise HandleNotFound()
        access = access_of(ident, records, who)
        access.require_some_value_right()
        by_index = {v.index: v for v in prep.user(ident.key, existing.values)}
        # Every value named is authorised, changed or not, before the record tells
        # anything more (an index conflict, whether a value is the same).
        for v in values:
            access.require(right_for(by_index.get(v.index) if overwrite else None, v))
        olds = [by_index.get(v.index) for v in values]
        if not overwrite:
            taken = [v.index for v, old in zip(values, olds, strict=True) if old is not None]
            if taken:
                raise ValueExists(f"Index conflict for {taken[0]}")
        new = [prep.value(v, now, o, False) for v, o in zip(values, olds, strict=True)]
        if unchanged(new, olds):
            return [], WriteResult(ident.text, False)
        created = all(old is None for old in olds)
        by_index.update((v.index, v) for v in new)
        if len(by_index) > MAX_VALUES:
            raise InvalidValue(f"A record holds at most {MAX_VALUES} values")
        # The reference re-sorts the whole record by index after an add.
        merged = [by_index[i] for i in sorted(by_index)]
        merged += prep.system(ident.key, existing.values)
        sealed = prep.sign(existing.handle, merged, now)
        return [Put(ident.key, Record(existing.handle, sealed))], WriteResult(ident.text, created)

    return mutate


def delete_record(ident: Identifier, who: Principal | None) -> Mutation[None]:
    """Delete ``ident``."""

    def mutate(records: Mapping[str, Record]) -> tuple[list[Change], None]:
        if ident.key not in records:
            raise HandleNotFound()
        access_of(ident, records, who).require(adm.DELETE_HANDLE)
        return [Delete(ident.key)], None

    return mutate


def delete_values(
    ident: Identifier, indexes: Sequence[int], who: Principal | None, now: int, prep: Preparer
) -> Mutation[None]:
    """Remove the values at ``indexes`` from ``ident``, all or nothing."""
    wanted = set(indexes)

    def mutate(records: Mapping[str, Record]) -> tuple[list[Change], None]:
        existing = records.get(ident.key)
        if existing is None:
            raise HandleNotFound()
        access = access_of(ident, records, who)
        access.require_some_value_right()
        current = prep.user(ident.key, existing.values)
        present = {v.index: v for v in current}
        # Rights first: only then may the answer tell which indexes exist.
        for i in sorted(wanted & present.keys()):
            access.require(right_for(present[i], None))
        if wanted - present.keys():
            raise ValuesNotFound()
        if not wanted:
            return [], None
        kept = [v for v in current if v.index not in wanted]
        kept += prep.system(ident.key, existing.values)
        sealed = prep.sign(existing.handle, kept, now)
        return [Put(ident.key, Record(existing.handle, sealed))], None

    return mutate
