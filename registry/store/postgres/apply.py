"""The statements that write a :class:`.plan.Plan` inside the store's transaction.

Records whose absence the transaction knows (keys it read and found missing, holding their
locks) are copied in with COPY, the fastest path PostgreSQL has, when there are many (bulk
import); other puts are one ``INSERT ... ON CONFLICT`` per run that reports which rows it
created. Prefix counts, statistics and outbox rows are written last, once per transaction,
in sorted order so concurrent transactions lock their shared rows in one order; audit
entries after everything else (:mod:`.audit`).
"""

from __future__ import annotations

import time
from collections import Counter

import asyncpg

from registry.store.postgres import audit
from registry.store.postgres.plan import DeleteRun, Plan, PutRun, merge_counts

# From this many new records on, a put run is written with COPY.
COPY_FROM = 64

_UPSERT = (
    "INSERT INTO handles (key, handle, prefix, vals)"
    " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[])"
    " ON CONFLICT (key) DO UPDATE SET handle = excluded.handle, vals = excluded.vals"
    # xmax is 0 exactly on rows this statement inserted (an update sets it).
    " RETURNING key, xmax = 0"
)
_INSERT = (
    "INSERT INTO handles (key, handle, prefix, vals)"
    " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[])"
)
_LOOKUP = (
    "INSERT INTO lookup (type, data, key, prefix)"
    " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])"
    " ON CONFLICT DO NOTHING"
)
_DROP_LOOKUP = "DELETE FROM lookup WHERE key = ANY($1::text[])"
_DELETE = "DELETE FROM handles WHERE key = ANY($1::text[]) RETURNING prefix"
_COUNTS = (
    "INSERT INTO prefix_counts (prefix, n) SELECT * FROM unnest($1::text[], $2::bigint[])"
    " ON CONFLICT (prefix) DO UPDATE SET n = prefix_counts.n + excluded.n"
)
_EMPTY_COUNTS = "DELETE FROM prefix_counts WHERE prefix = ANY($1::text[]) AND n <= 0"
_TALLY = (
    "INSERT INTO stats (prefix, start, seconds, registrations, updates, deletions, resolutions)"
    " SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[],"
    " $5::bigint[], $6::bigint[], $7::bigint[])"
    " ON CONFLICT (prefix, start, seconds) DO UPDATE SET"
    " registrations = stats.registrations + excluded.registrations,"
    " updates = stats.updates + excluded.updates,"
    " deletions = stats.deletions + excluded.deletions,"
    " resolutions = stats.resolutions + excluded.resolutions,"
    " reported = false"
)
_REPORTS = (
    "INSERT INTO outbox (prefix, kind, body, created)"
    " SELECT p, k, b, $4 FROM unnest($1::text[], $2::text[], $3::text[])"
    " WITH ORDINALITY AS r(p, k, b, i) ORDER BY i"
)


async def apply(conn: asyncpg.Connection, plan: Plan, exists: dict[str, bool]) -> None:
    """Write ``plan``. ``exists``: whether each key the transaction holds the lock of
    exists now (kept up to date as the plan runs); other keys are found out by upsert."""
    counts: Counter[str] = Counter()
    for step in plan.steps:
        if isinstance(step, PutRun):
            await _put(conn, step, exists, counts)
        else:
            await _delete(conn, step, exists, counts)
    if counts:
        prefixes, deltas = merge_counts(counts)
        if prefixes:
            await conn.execute(_COUNTS, prefixes, deltas)
            emptied = [p for p, n in zip(prefixes, deltas, strict=True) if n < 0]
            if emptied:
                await conn.execute(_EMPTY_COUNTS, emptied)
    if plan.tallies:
        rows = sorted(plan.tallies.items())
        columns: list[list[object]] = [[] for _ in range(7)]
        for (prefix, start, seconds), stat in rows:
            for column, item in zip(columns, (prefix, start, seconds, *stat), strict=True):
                column.append(item)
        await conn.execute(_TALLY, *columns)
    if plan.reports:
        prefixes_, kinds, bodies = (list(c) for c in zip(*plan.reports, strict=True))
        await conn.execute(_REPORTS, prefixes_, kinds, bodies, time.time())
    await audit.append(conn, plan.audits)  # last: the chain's lock is held the least


async def _put(
    conn: asyncpg.Connection, run: PutRun, exists: dict[str, bool], counts: Counter[str]
) -> None:
    new = [i for i, key in enumerate(run.keys) if exists.get(key) is False]
    if len(new) >= COPY_FROM:
        rows = [(run.keys[i], run.handles[i], run.prefixes[i], run.vals[i]) for i in new]
        await conn.copy_records_to_table(
            "handles", records=rows, columns=("key", "handle", "prefix", "vals")
        )
    elif new:
        await conn.execute(_INSERT, *_columns(run, new))
    counts.update(run.prefixes[i] for i in new)
    fresh = {run.keys[i] for i in new}
    rest = [i for i in range(len(run.keys)) if run.keys[i] not in fresh]
    replaced: list[str] = []
    if rest:
        for key, created in await conn.fetch(_UPSERT, *_columns(run, rest)):
            if created:
                counts[key.split("/", 1)[0]] += 1
            else:
                replaced.append(key)
    if replaced:
        await conn.execute(_DROP_LOOKUP, replaced)
    for key in run.keys:
        exists[key] = True
    types, data, keys, prefixes = run.lookup
    if not types:
        return
    if len(fresh) == len(run.keys) and len(types) >= COPY_FROM:
        # Only new records: none has lookup rows yet, and the plan holds no duplicates.
        await conn.copy_records_to_table(
            "lookup",
            records=zip(types, data, keys, prefixes, strict=True),
            columns=("type", "data", "key", "prefix"),
        )
    else:
        await conn.execute(_LOOKUP, types, data, keys, prefixes)


def _columns(run: PutRun, rows: list[int]) -> tuple[list[str], list[str], list[str], list[bytes]]:
    return (
        [run.keys[i] for i in rows],
        [run.handles[i] for i in rows],
        [run.prefixes[i] for i in rows],
        [run.vals[i] for i in rows],
    )


async def _delete(
    conn: asyncpg.Connection, run: DeleteRun, exists: dict[str, bool], counts: Counter[str]
) -> None:
    if not any(exists.get(key) is not False for key in run.keys):
        return  # none of them exists: nothing to do
    for (prefix,) in await conn.fetch(_DELETE, run.keys):
        counts[prefix] -= 1
    await conn.execute(_DROP_LOOKUP, run.keys)
    for key in run.keys:
        exists[key] = False
