"""Writes of the node's own key operations: records signed afresh with the current key
(rotation), and the node's published keys replaced in its prefix handle."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from registry.errors import HandleNotFound, InvalidValue
from registry.model.values import Value
from registry.store.base import Change, Mutation, Put, Record
from registry.writes.values import Preparer


def resign(now: int, prep: Preparer) -> Mutation[int]:
    """Sign every record the transaction reads afresh; how many."""

    def mutate(records: Mapping[str, Record]) -> tuple[list[Change], int]:
        changes: list[Change] = []
        for key, record in records.items():
            values = prep.user(key, record.values) + prep.system(key, record.values)
            sealed = prep.sign(record.handle, values, now)
            changes.append(Put(key, Record(record.handle, sealed)))
        return changes, len(changes)

    return mutate


def publish_keys(key: str, values: Sequence[Value], now: int, prep: Preparer) -> Mutation[None]:
    """Put the node's HS_PUBKEY/HS_CERT ``values`` into its prefix handle (key ``key``) in
    place of the previous set, and sign it."""

    def mutate(records: Mapping[str, Record]) -> tuple[list[Change], None]:
        existing = records.get(key)
        if existing is None:
            raise HandleNotFound("The node's prefix handle does not exist")
        user = prep.user(key, existing.values)
        taken = {v.index for v in user}
        clash = [v.index for v in values if v.index in taken]
        if clash:
            raise InvalidValue(f"Indexes {clash} of {existing.handle} are taken")
        sealed = prep.sign(existing.handle, [*user, *values], now)
        return [Put(key, Record(existing.handle, sealed))], None

    return mutate
