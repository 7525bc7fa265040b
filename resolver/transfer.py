"""Bulk import and export as JSON Lines: one ``{"handle": ..., "values": [...]}`` per line.

Import commits one transaction per batch and is idempotent (unchanged records are left
alone), so an interrupted import is simply run again. Its CPU-bound half — parsing,
validating, signing and encoding each record (:mod:`registry.bulk`) — runs in a pool of
worker processes, one per core, several batches ahead of the transactions, which commit
in file order on the store's writer thread. Export writes secrets sealed.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sys
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import TextIO

import orjson
from tqdm import tqdm

from registry.audit import IMPORT, Caller
from registry.bulk import BulkSpec, Prepared, Preparer, init_worker, prepare_in_worker
from registry.errors import HandleError
from registry.model.jsonvalues import value_to_json
from registry.service import Registry
from registry.store.base import Store
from registry.writes.imports import ImportItemError, ImportResult


@dataclass
class ImportReport:
    lines: int = 0
    batches: int = 0
    created: int = 0
    replaced: int = 0
    unchanged: int = 0
    seconds: float = 0.0
    workers: int = 0  # worker processes that prepared batches (0: this process alone)

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


def default_workers() -> int:
    """Worker processes for an import: one per usable core (none on a single core)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return cores if cores and cores > 1 else 0


def _worker_context() -> multiprocessing.context.BaseContext:
    """How worker processes start. Never a fork of this process (its threads, the store's
    among them, would be copied mid-flight). A fork server where there is one: it starts
    once with the workers' modules imported, and each worker is a fork of it, ready ~0.1 s
    sooner than a spawned one that imports them itself before its first batch."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    # Process-wide, and only heeded before the fork server's first start. ("__main__": a
    # script's main module, which every worker would otherwise run again.)
    multiprocessing.set_forkserver_preload(["__main__", "registry.bulk"])
    return multiprocessing.get_context("forkserver")


class _Pipeline:
    """Batches through two stages: preparation (worker processes, or this process when
    ``workers`` is 0 or the input is one batch), then their transactions, one at a time and
    in order. A batch is committed only after every batch before it, and a bad line or a
    failing transaction stops everything behind it."""

    def __init__(
        self, registry: Registry, workers: int, report: ImportReport, bar: tqdm, caller: Caller
    ) -> None:
        self.registry = registry
        self.caller = caller
        self.workers = workers
        self.report = report
        self.bar = bar
        self.ahead = 2 * max(1, workers)  # batches prepared or preparing beyond the committing one
        self.pool: ProcessPoolExecutor | None = None
        self.pool_spec: BulkSpec | None = None
        self.retired: list[ProcessPoolExecutor] = []  # pools of an older key, finishing
        self.local: Preparer | None = None
        self.preparing: deque[tuple[list[int], list[str | bytes], asyncio.Future[Prepared]]] = (
            deque()
        )
        self.committing: tuple[list[int], asyncio.Task[ImportResult]] | None = None

    async def submit(self, numbers: list[int], lines: list[str | bytes], more: bool) -> None:
        """Prepare a batch (the lines ``numbers`` of the file); ``more``: batches follow."""
        spec = self.registry.bulk_spec()  # the current signing key: a rotation shows here
        now = int(self.registry.clock())
        loop = asyncio.get_running_loop()
        if self.workers and (more or self.pool is not None):
            if spec != self.pool_spec:
                if self.pool is not None:  # the key changed: its batches still complete
                    self.pool.shutdown(wait=False)
                    self.retired.append(self.pool)
                self.pool = ProcessPoolExecutor(
                    self.workers,
                    mp_context=_worker_context(),
                    initializer=init_worker,
                    initargs=(spec,),
                )
                self.pool_spec = spec
                self.report.workers = self.workers
            assert self.pool is not None
            future = loop.run_in_executor(self.pool, prepare_in_worker, lines, now)
        else:
            if self.local is None or self.local.spec != spec:
                self.local = Preparer(spec)
            future = loop.create_future()
            future.set_result(self.local.prepare(lines, now))
        self.preparing.append((numbers, lines, future))
        while len(self.preparing) > self.ahead:
            await self.advance()

    async def advance(self) -> None:
        """Hand the oldest prepared batch to its transaction, once the previous one is done."""
        numbers, lines, future = self.preparing.popleft()
        prepared = (await future).with_lines(lines)
        await self.settle()
        if prepared.error is not None:
            position, exc = prepared.error
            raise ImportLineError(numbers[position], exc)
        task = asyncio.create_task(self.registry.import_prepared(prepared, self.caller))
        self.committing = (numbers, task)

    async def settle(self) -> None:
        """Wait for the committing batch and count it."""
        if self.committing is None:
            return
        (numbers, task), self.committing = self.committing, None
        try:
            result = await task
        except ImportItemError as exc:
            raise ImportLineError(numbers[exc.position], exc.error) from None
        self.report.batches += 1
        self.report.created += result.created
        self.report.replaced += result.replaced
        self.report.unchanged += result.unchanged
        self.bar.update(result.created + result.replaced + result.unchanged)

    async def finish(self) -> None:
        while self.preparing:
            await self.advance()
        await self.settle()

    async def close(self) -> None:
        for _, _, future in self.preparing:
            future.cancel()
        if self.committing is not None:
            self.committing[1].cancel()  # the transaction itself still completes
        pools = [*self.retired, *([self.pool] if self.pool is not None else [])]
        self.pool, self.retired = None, []
        for pool in pools:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)


async def import_lines(
    registry: Registry,
    lines: Iterable[str | bytes],
    *,
    batch: int = 1000,
    progress: bool = False,
    total: int | None = None,
    workers: int | None = None,
    caller: Caller = IMPORT,
) -> ImportReport:
    """Import JSON lines, ``batch`` records per transaction, prepared by ``workers``
    processes (default: one per core; 0: in this process). The workers are not forks of
    this process, so they import the caller's main module again: a script calling this
    must keep its own work under ``if __name__ == "__main__":``, as multiprocessing
    requires. The audit log names ``caller`` (one entry per batch)."""
    report = ImportReport()
    started = time.perf_counter()
    bar = tqdm(total=total, unit="rec", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    count = default_workers() if workers is None else workers
    pipeline = _Pipeline(registry, count, report, bar, caller)
    numbers: list[int] = []
    pending: list[str | bytes] = []
    try:
        for number, text in enumerate(lines, start=1):
            if not text or text.isspace():  # blank (no copy made, unlike strip())
                continue
            if len(pending) >= batch:  # a full batch, and more follow
                await pipeline.submit(numbers, pending, more=True)
                numbers, pending = [], []
            numbers.append(number)
            pending.append(text)
            report.lines += 1
        if pending:
            await pipeline.submit(numbers, pending, more=False)
        await pipeline.finish()
    finally:
        await pipeline.close()
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
