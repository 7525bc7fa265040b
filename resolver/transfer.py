"""Bulk import and export as JSON Lines: one ``{"handle": ..., "values": [...]}`` per line.

Import commits one transaction per batch and is idempotent (unchanged records are left
alone), so an interrupted import is simply run again. Export writes secrets sealed.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TextIO

import orjson
from tqdm import tqdm

from registry.errors import HandleError, ProtocolError
from registry.model.identifiers import Identifier, parse
from registry.model.jsonvalues import value_from_json, value_to_json
from registry.model.values import Value
from registry.service import ImportResult, Registry
from registry.store.base import Store


@dataclass
class ImportReport:
    lines: int = 0
    batches: int = 0
    created: int = 0
    replaced: int = 0
    unchanged: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.lines / self.seconds if self.seconds > 0 else 0.0


class ImportLineError(HandleError):
    """A bad line; batches before it are committed (re-running the import is safe)."""

    def __init__(self, line: int, exc: HandleError) -> None:
        super().__init__(
            f"line {line}: {exc.message or type(exc).__name__} (records before "
            "this line's batch were imported; fix it and run the import again)"
        )
        self.response_code = exc.response_code


def parse_line(text: str) -> tuple[Identifier, list[Value]]:
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"invalid JSON: {exc}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("handle"), str):
        raise ProtocolError('expected {"handle": "...", "values": [...]}')
    values = obj.get("values", [])
    if not isinstance(values, list):
        raise ProtocolError("values must be an array")
    return parse(obj["handle"]), [value_from_json(v, keep_timestamp=True) for v in values]


async def import_lines(
    registry: Registry,
    lines: Iterable[str],
    *,
    batch: int = 1000,
    progress: bool = False,
    total: int | None = None,
) -> ImportReport:
    report = ImportReport()
    started = time.perf_counter()
    bar = tqdm(total=total, unit="rec", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    pending: list[tuple[Identifier, list[Value]]] = []
    # One batch commits (on the store's writer thread) while the next one is parsed here.
    in_flight: asyncio.Task[ImportResult] | None = None

    async def settle() -> None:
        nonlocal in_flight
        if in_flight is None:
            return
        task, in_flight = in_flight, None
        result = await task
        report.batches += 1
        report.created += result.created
        report.replaced += result.replaced
        report.unchanged += result.unchanged
        bar.update(result.created + result.replaced + result.unchanged)

    async def flush() -> None:
        nonlocal in_flight, pending
        await settle()
        if pending:
            in_flight = asyncio.create_task(registry.import_records(pending))
            pending = []

    try:
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            try:
                pending.append(parse_line(text))
            except HandleError as exc:
                await settle()  # the batches before this line are committed
                raise ImportLineError(number, exc) from None
            report.lines += 1
            if len(pending) >= batch:
                await flush()
        await flush()
        await settle()
    finally:
        if in_flight is not None:
            in_flight.cancel()
        bar.close()
    report.seconds = time.perf_counter() - started
    return report


async def export_records(store: Store, out: TextIO, page: int = 5000) -> int:
    count = 0
    after: str | None = None
    while True:
        rows = await store.scan(after, page)
        if not rows:
            return count
        for key, record in rows:
            line = {"handle": record.handle, "values": [value_to_json(v) for v in record.values]}
            out.write(orjson.dumps(line).decode("utf-8") + "\n")
            count += 1
            after = key
