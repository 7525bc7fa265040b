"""Copying a registry from one store to another (``idnode migrate``): SQLite to PostgreSQL,
and back for backups, through the public :class:`registry.store.base.Store` interface only.

Records are read in key order, a batch at a time (:meth:`Store.scan`), and each batch is
written in one transaction of the target, as stored: values, signatures and sealed secrets
byte for byte. A record the target already holds as it is is left alone, so a copy that was
interrupted is simply run again: the batches done before are read, found equal and skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from registry.store.base import Change, Encoded, PutEncoded, Record, Store


@dataclass
class CopyReport:
    read: int = 0
    copied: int = 0  # written to the target (new there, or different)
    unchanged: int = 0  # the target had them already, as they are
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else 0.0


async def copy_records(
    source: Store,
    target: Store,
    *,
    batch: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> CopyReport:
    """Copy every record of ``source`` into ``target``; ``progress`` is told how many
    records each batch read."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    report = CopyReport()
    started = time.monotonic()
    after: str | None = None
    while page := await source.scan(after, batch):
        after = page[-1][0]
        records = dict(page)
        report.read += len(records)
        have = await target.get_many(list(records))
        if all(have.get(key) == record for key, record in records.items()):
            report.unchanged += len(records)  # a batch copied before (a resumed copy)
        else:
            copied = await target.transact(list(records), _put_missing(records))
            report.copied += copied
            report.unchanged += len(records) - copied
        if progress is not None:
            progress(len(records))
    report.seconds = time.monotonic() - started
    return report


def _put_missing(
    records: Mapping[str, Record],
) -> Callable[[Mapping[str, Record]], tuple[list[Change], int]]:
    def mutation(existing: Mapping[str, Record]) -> tuple[list[Change], int]:
        changes: list[Change] = [
            PutEncoded(key, Encoded.of(record))
            for key, record in records.items()
            if existing.get(key) != record
        ]
        return changes, len(changes)

    return mutation
