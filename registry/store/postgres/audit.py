"""The SQL of the audit log on PostgreSQL (the tables of :mod:`registry.store.sqlite.audit`;
the chain is :mod:`registry.store.chain`).

An append locks the head row (``FOR UPDATE``) inside the transaction of the change it
records, as that transaction's last statements: appenders on every host queue there, so the
chain stays linear, while the record writes before it still run side by side. The lock is
taken after the key locks in every transaction, so it adds no deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from registry.store.chain import FIELDS, Audit, AuditEntry, AuditHead, AuditQuery, chained

_COLUMNS = (
    "seq, at, transport, identity, address, action, prefix, handle,"
    " before_digest, after_digest, detail, hash"
)
_HEAD = "SELECT seq, hash, anchor_seq, anchor_hash FROM audit_head"
_INSERT = (
    f"INSERT INTO audit ({_COLUMNS}) SELECT * FROM unnest($1::bigint[],"
    " $2::double precision[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],"
    " $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])"
)


def _head(row: asyncpg.Record) -> AuditHead:
    return AuditHead(int(row[0]), row[1], int(row[2]), row[3])


async def head(conn: asyncpg.Connection) -> AuditHead:
    return _head(await conn.fetchrow(_HEAD))


async def append(conn: asyncpg.Connection, audits: Sequence[Audit]) -> None:
    """Number and chain ``audits`` after the head, in the caller's transaction."""
    if not audits:
        return
    entries = chained(_head(await conn.fetchrow(_HEAD + " FOR UPDATE")), audits)
    columns = [[getattr(e, f) for e in entries] for f in FIELDS]
    await conn.execute(_INSERT, *columns)
    last = entries[-1]
    await conn.execute("UPDATE audit_head SET seq = $1, hash = $2", last.seq, last.hash)


async def entries(
    conn: asyncpg.Connection, query: AuditQuery, after: int, limit: int
) -> list[AuditEntry]:
    where, args = ["seq > $1"], list[object]([after])
    filters = (
        ("prefix = ", query.prefix),
        ("identity = ", query.identity),
        ("action = ", query.action),
        ("at >= ", query.since),
        ("at < ", query.until),
    )
    for test, value in filters:
        if value is not None:
            args.append(value)
            where.append(f"{test}${len(args)}")
    args.append(limit)
    sql = (
        f"SELECT {_COLUMNS} FROM audit WHERE {' AND '.join(where)} ORDER BY seq LIMIT ${len(args)}"
    )
    return [AuditEntry(*row) for row in await conn.fetch(sql, *args)]


async def prune(conn: asyncpg.Connection, before: float, limit: int) -> int:
    """In the caller's transaction: delete the oldest entries, up to ``limit`` and up to
    the first made at or after ``before``; the last one deleted becomes the anchor."""
    anchor = _head(await conn.fetchrow(_HEAD + " FOR UPDATE")).anchor_seq
    last = None
    for seq, hash_, at in await conn.fetch(
        "SELECT seq, hash, at FROM audit ORDER BY seq LIMIT $1", limit
    ):
        if at >= before:
            break
        last = (int(seq), hash_)
    if last is None:
        return 0
    await conn.execute("DELETE FROM audit WHERE seq <= $1", last[0])
    await conn.execute("UPDATE audit_head SET anchor_seq = $1, anchor_hash = $2", *last)
    return last[0] - anchor
