"""Versioned schema of the PostgreSQL store.

``MIGRATIONS[i]`` brings the schema from version ``i`` to ``i + 1`` (its own numbering, not
SQLite's). Never edit a released migration: append a new one. :func:`migrate` applies the
pending ones, each in its own transaction that also records the new version in
``schema_version`` and holds an advisory lock, so a crash leaves the database at a whole
version and serving hosts starting together cannot apply one twice.

Text that is compared or ordered (keys, prefixes, lookup data) is ``COLLATE "C"``: byte
order of UTF-8, which is code point order, as SQLite compares, whatever the database's
own collation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import asyncpg

from registry.store.chain import GENESIS
from registry.store.migrations import SchemaTooNew

log = logging.getLogger("idnode.store")

# pg_advisory_xact_lock(MIGRATION_LOCK): one migrating session at a time (the two-int key
# space, apart from the store's key locks).
MIGRATION_LOCK = (0x1D40DE, 1)

_V1 = (
    # Records: key (upper-cased handle), handle as first written, prefix key, the values'
    # wire encoding.
    'CREATE TABLE handles (key text COLLATE "C" PRIMARY KEY, handle text NOT NULL,'
    ' prefix text COLLATE "C" NOT NULL, vals bytea NOT NULL)',
    # Counting a prefix's rows by scanning is too slow at 10 million rows, so keep counts.
    'CREATE TABLE prefix_counts (prefix text COLLATE "C" PRIMARY KEY, n bigint NOT NULL)',
    'CREATE TABLE lookup (type text COLLATE "C" NOT NULL, data text COLLATE "C" NOT NULL,'
    ' key text COLLATE "C" NOT NULL, prefix text COLLATE "C" NOT NULL,'
    " PRIMARY KEY (type, data, key))",
    # Rewriting or deleting a record removes its lookup rows by key.
    "CREATE INDEX lookup_key ON lookup (key)",
    # Patterns with a leading '*' (no literal head to range-scan the primary key by) are
    # served by trigrams: LIKE '%...%' over this index.
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX lookup_data_trgm ON lookup USING gin (data gin_trgm_ops)",
    # The outbox: an identity is never reused (a sequence does not roll back), so a seq
    # stays a unique part of the idempotency key the top-level deduplicates by.
    "CREATE TABLE outbox (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " prefix text NOT NULL, kind text NOT NULL, body text NOT NULL,"
    " created double precision NOT NULL)",
    "CREATE TABLE outbox_dead (seq bigint PRIMARY KEY, prefix text NOT NULL,"
    " kind text NOT NULL, body text NOT NULL, created double precision NOT NULL,"
    " reason text NOT NULL, died double precision NOT NULL)",
    # Statistics per prefix and interval; ``reported`` is cleared whenever counts change.
    'CREATE TABLE stats (prefix text COLLATE "C" NOT NULL, start bigint NOT NULL,'
    " seconds bigint NOT NULL, registrations bigint NOT NULL DEFAULT 0,"
    " updates bigint NOT NULL DEFAULT 0, deletions bigint NOT NULL DEFAULT 0,"
    " resolutions bigint NOT NULL DEFAULT 0, reported boolean NOT NULL DEFAULT false,"
    " PRIMARY KEY (prefix, start, seconds))",
    "CREATE INDEX stats_unreported ON stats (reported, start)",
)

_V2 = (
    # The serving processes of every host and how long each may use its cache
    # (registry/store/postgres/channel.py).
    "CREATE TABLE cache_members (member text PRIMARY KEY, host bigint NOT NULL,"
    " lease_until timestamptz NOT NULL)",
)

_V3 = (
    # The audit log (registry/store/chain.py; the same tables as on SQLite). The head row is
    # locked FOR UPDATE by every append, which makes the chain linear across hosts.
    "CREATE TABLE audit (seq bigint PRIMARY KEY, at double precision NOT NULL,"
    ' transport text NOT NULL, identity text COLLATE "C" NOT NULL, address text NOT NULL,'
    ' action text COLLATE "C" NOT NULL, prefix text COLLATE "C" NOT NULL,'
    " handle text NOT NULL, before_digest text NOT NULL, after_digest text NOT NULL,"
    " detail text NOT NULL, hash text NOT NULL)",
    "CREATE INDEX audit_at ON audit (at)",
    "CREATE INDEX audit_prefix ON audit (prefix, seq)",
    "CREATE INDEX audit_identity ON audit (identity, seq)",
    "CREATE INDEX audit_action ON audit (action, seq)",
    "CREATE TABLE audit_head (id integer PRIMARY KEY CHECK (id = 1), seq bigint NOT NULL,"
    " hash text NOT NULL, anchor_seq bigint NOT NULL, anchor_hash text NOT NULL)",
    f"INSERT INTO audit_head VALUES (1, 0, '{GENESIS}', 0, '{GENESIS}')",
)

MIGRATIONS: Sequence[Sequence[str]] = (_V1, _V2, _V3)
SCHEMA_VERSION = len(MIGRATIONS)

_VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)"


async def schema_version(conn: asyncpg.Connection) -> int:
    """The version recorded in ``schema_version`` (0 for a database without one)."""
    if not await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL"):
        return 0
    version = await conn.fetchval("SELECT max(version) FROM schema_version")
    return int(version or 0)


async def migrate(
    conn: asyncpg.Connection, migrations: Sequence[Sequence[str]] = MIGRATIONS
) -> int:
    """Apply pending migrations on ``conn``; return the final version.

    Raises :class:`SchemaTooNew` when the database is ahead of ``migrations``.
    """
    found: int | None = None  # the version the database had when opened
    while True:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", *MIGRATION_LOCK)
            await conn.execute(_VERSION_TABLE)
            version = await schema_version(conn)
            found = version if found is None else found
            if version > len(migrations):
                raise SchemaTooNew(
                    f"Database schema version {version} is newer than this code's {len(migrations)}"
                )
            if version == len(migrations):
                return version
            if found > 0:
                log.warning("store schema: migrating from version %d to %d", version, version + 1)
            for statement in migrations[version]:
                await conn.execute(statement)
            await conn.execute("DELETE FROM schema_version")
            await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version + 1)
