"""The SQL of the outbox and the statistics on PostgreSQL (see
:mod:`registry.store.sqlite.reports` for what they hold; the tables are the same)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence

import asyncpg

from registry.store.base import STAT_FIELDS, STATS_RETENTION, OutboxItem, OutboxSummary


async def outbox_peek(conn: asyncpg.Connection, limit: int) -> list[OutboxItem]:
    rows = await conn.fetch(
        "SELECT seq, prefix, kind, body, created FROM outbox ORDER BY seq LIMIT $1", limit
    )
    return [OutboxItem(q, p, k, json.loads(b), c) for q, p, k, b, c in rows]


async def outbox_done(
    conn: asyncpg.Connection, delivered: Sequence[int], dead: Mapping[int, str]
) -> None:
    """In the caller's transaction."""
    if dead:
        seqs, reasons = list(dead), list(dead.values())
        await conn.execute(
            "INSERT INTO outbox_dead (seq, prefix, kind, body, created, reason, died)"
            " SELECT o.seq, o.prefix, o.kind, o.body, o.created, d.reason, $3"
            " FROM unnest($1::bigint[], $2::text[]) AS d(seq, reason)"
            " JOIN outbox AS o ON o.seq = d.seq ON CONFLICT DO NOTHING",
            seqs,
            reasons,
            time.time(),
        )
    await conn.execute("DELETE FROM outbox WHERE seq = ANY($1::bigint[])", [*delivered, *dead])


async def outbox_summary(conn: asyncpg.Connection) -> OutboxSummary:
    """In the caller's (snapshot) transaction."""
    pending, oldest = await conn.fetchrow("SELECT count(*), min(created) FROM outbox")
    dead = await conn.fetchval("SELECT count(*) FROM outbox_dead")
    return OutboxSummary(int(pending), oldest, int(dead))


async def close_stats(conn: asyncpg.Connection, before: int) -> int:
    """Turn the unreported intervals that ended by ``before`` into outbox items; how many.
    In the caller's transaction: its row locks make a concurrent closer (another host's
    sender) skip what this one reports."""
    await conn.execute("DELETE FROM stats WHERE reported AND start < $1", before - STATS_RETENTION)
    rows = await conn.fetch(
        "SELECT prefix, start, seconds, registrations, updates, deletions, resolutions"
        " FROM stats WHERE NOT reported AND start + seconds <= $1"
        " ORDER BY prefix, start, seconds FOR UPDATE",
        before,
    )
    if not rows:
        return 0
    prefixes, bodies, starts, seconds_ = [], [], [], []
    for prefix, start, seconds, *counts in rows:
        body = {"prefix": prefix, "start": start, "seconds": seconds}
        body.update(zip(STAT_FIELDS, counts, strict=True))
        prefixes.append(prefix)
        bodies.append(json.dumps(body))
        starts.append(start)
        seconds_.append(seconds)
    await conn.execute(
        "INSERT INTO outbox (prefix, kind, body, created)"
        " SELECT p, 'stats', b, $3 FROM unnest($1::text[], $2::text[])"
        " WITH ORDINALITY AS r(p, b, i) ORDER BY i",
        prefixes,
        bodies,
        time.time(),
    )
    await conn.execute(
        "UPDATE stats SET reported = true FROM unnest($1::text[], $2::bigint[], $3::bigint[])"
        " AS r(p, s, n) WHERE stats.prefix = r.p AND stats.start = r.s AND stats.seconds = r.n",
        prefixes,
        starts,
        seconds_,
    )
    return len(rows)


async def stats_totals(conn: asyncpg.Connection) -> dict[str, dict[str, int]]:
    rows = await conn.fetch(
        "SELECT prefix, sum(registrations), sum(updates), sum(deletions), sum(resolutions)"
        " FROM stats GROUP BY prefix ORDER BY prefix"
    )
    return {p: dict(zip(STAT_FIELDS, map(int, c), strict=True)) for p, *c in rows}
