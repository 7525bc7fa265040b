"""What is particular to the SQLite store (registry.store.sqlite): batching and group commit,
query plans, the file's schema and its migrations. What every store does is checked by the
contract suite (test_store_contract.py)."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from registry.model.identifiers import handle_key
from registry.store.base import Change, Encoded, Put, Record
from registry.store.factory import open_store
from registry.store.migrations import MIGRATIONS, SCHEMA_VERSION, SchemaTooNew, migrate
from registry.store.sqlite import SQLiteStore
from registry.store.sqlite.lookup import reverse_lookup_query
from tests.store_contract import TIMEOUT, delete, put, record, started, url


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "reg.db", readers=2)
    await s.open()
    yield s
    await s.close()


async def test_concurrent_gets_share_one_read(tmp_path: Path) -> None:
    """Single-record reads made in one event-loop pass go to a reader thread as one query;
    each caller gets its own record (or None), duplicates and absent keys included."""
    statements: list[str] = []
    s = SQLiteStore(tmp_path / "reg.db", readers=2, trace=statements.append)
    await s.open()
    try:
        recs = [record(f"88.1/h{i}", url(1, f"u{i}")) for i in range(40)]
        await put(s, *recs)
        statements.clear()
        keys = [handle_key(f"88.1/h{i % 45}") for i in range(90)]  # 5 absent, each twice
        got = await asyncio.gather(*(s.get(k) for k in keys))
        assert got == [recs[i % 45] if i % 45 < 40 else None for i in range(90)]
        reads = [q for q in statements if q.lstrip().upper().startswith("SELECT")]
        assert len(reads) == 1, reads
        assert await s.get(handle_key("88.1/h7")) == recs[7]  # and alone
    finally:
        await s.close()


async def test_concurrent_transactions_commit_together_failures_apart(store: SQLiteStore) -> None:
    """Transactions queued while the writer is busy are committed as one group (one fsync),
    each in its own savepoint, so the failing ones roll back alone."""
    # Hold the writer inside a first transaction so that everything below queues up.
    entered = asyncio.Event()
    release = threading.Event()
    loop = asyncio.get_running_loop()

    def gate(_: Mapping[str, Record]) -> tuple[Sequence[Change], None]:
        loop.call_soon_threadsafe(entered.set)
        if not release.wait(TIMEOUT):
            raise TimeoutError
        return [], None

    commits = store.commits
    gate_task = asyncio.create_task(store.transact([], gate))
    await asyncio.wait_for(entered.wait(), TIMEOUT)

    def make(i: int) -> Coroutine[Any, Any, int]:
        rec = record(f"88.1/h{i}", url(1, f"v{i}"))

        def mutation(_: Mapping[str, Record]) -> tuple[Sequence[Change], int]:
            if i % 3 == 0:
                # Half-applied before failing: the savepoint must undo the first Put.
                return [Put(handle_key(rec.handle), rec), Put("88.1/WRONG", rec)], i
            if i % 3 == 1:
                raise RuntimeError(f"fail {i}")
            return [Put(handle_key(rec.handle), rec)], i

        return store.transact([handle_key(rec.handle)], mutation)

    tasks = await started([make(i) for i in range(60)])  # all 60 queued behind the gate
    release.set()
    await asyncio.wait_for(gate_task, TIMEOUT)
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), TIMEOUT)

    assert store.commits == commits + 2  # the gate alone, then all the others in one commit
    for i, res in enumerate(results):
        stored = await store.get(f"88.1/H{i}")
        if i % 3 == 2:
            assert res == i
            assert stored is not None
        else:
            assert isinstance(res, ValueError if i % 3 == 0 else RuntimeError)
            assert stored is None
    assert (await store.list_handles("88.1"))[0] == 20
    assert await store.count() == 20


def test_reverse_lookup_query_is_index_backed(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "plan.db", isolation_level=None)
    migrate(conn)
    sql, params = reverse_lookup_query("URL", "https://ex*/a", 10, ["88.1"])
    assert "data >= ?" in sql and "data < ?" in sql
    assert "https://ex" in params and "https://ey" in params
    plan = " ".join(str(r) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
    assert "SEARCH lookup USING PRIMARY KEY (type=? AND data>? AND data<?)" in plan
    sql, params = reverse_lookup_query("URL", "exact", 10, None)
    assert "GLOB" not in sql
    plan = " ".join(str(r) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
    assert "PRIMARY KEY (type=? AND data=?)" in plan
    conn.close()


async def test_v3_moves_records_into_a_rowid_table_keeping_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "reg.db"
    recs = [record(f"88.{i % 2}/h{i}", url(1, f"https://example.org/{i}")) for i in range(30)]
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, MIGRATIONS[:2])  # a database as version 2 left it
    assert "migrating" not in caplog.text  # a new database is made quietly
    for r in reversed(recs):  # rowids, once made, follow key order whatever came first
        enc = Encoded.of(r)
        conn.execute(
            "INSERT INTO handles(key, handle, prefix, vals) VALUES (?, ?, ?, ?)",
            (handle_key(r.handle), r.handle, handle_key(r.handle).split("/")[0], enc.vals),
        )
    conn.close()

    s = SQLiteStore(path)
    await s.open()
    assert "migrating from version 2 to 3" in caplog.text  # an upgrade that may take minutes
    try:
        assert await s.get("88.1/H7") == recs[7]
        assert await s.scan(None, 100) == sorted((handle_key(r.handle), r) for r in recs)
        await put(s, record("88.1/new", url(1, "x")))
        assert await s.get("88.1/NEW") == record("88.1/new", url(1, "x"))
    finally:
        await s.close()

    conn = sqlite3.connect(path)
    try:
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'handles'").fetchone()[0]
        keys = [r[0] for r in conn.execute("SELECT key FROM handles ORDER BY rowid")]
        indexes = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'handles'"
            )
        ]
        plan = " ".join(
            str(r)
            for r in conn.execute("EXPLAIN QUERY PLAN SELECT vals FROM handles WHERE key = 'K'")
        )
    finally:
        conn.close()
    assert "WITHOUT ROWID" not in sql.upper()
    assert keys[:-1] == sorted(handle_key(r.handle) for r in recs)  # then the new one
    assert "USING INDEX sqlite_autoindex_handles" in plan
    assert indexes == ["sqlite_autoindex_handles_1"]  # listings use key ranges instead


async def test_schema_version_and_idempotent_migrations(tmp_path: Path) -> None:
    path = tmp_path / "reg.db"
    for _ in range(3):
        s = SQLiteStore(path)
        await s.open()
        await put(s, record("88.1/a", url(1, "x")))
        await s.close()

    def inspect() -> tuple[str, str, list[str]]:
        conn = sqlite3.connect(path)
        try:
            version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            mode = conn.execute("PRAGMA journal_mode").fetchone()
            tables = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            return version[0], mode[0], sorted(tables)
        finally:
            conn.close()

    version, mode, tables = await asyncio.to_thread(inspect)
    assert version == str(SCHEMA_VERSION)
    assert mode == "wal"
    assert tables == [
        "audit",
        "audit_head",
        "handles",
        "lookup",
        "meta",
        "outbox",
        "outbox_dead",
        "prefix_counts",
        "sqlite_sequence",
        "stats",
    ]


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "reg.db"
    s = SQLiteStore(path)
    await s.open()
    await s.close()

    def bump() -> None:
        conn = sqlite3.connect(path)
        with conn:
            conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
        conn.close()

    await asyncio.to_thread(bump)
    s2 = SQLiteStore(path)
    with pytest.raises(SchemaTooNew):
        await s2.open()
    await s2.close()


async def test_every_query_is_index_backed(tmp_path: Path) -> None:
    """Trace every SELECT the store issues for the user-facing reads and check SQLite's plan:
    no full scan of handles or lookup, so they stay fast at 10 million identifiers."""
    statements: list[str] = []
    s = SQLiteStore(tmp_path / "plan.db", readers=1, trace=statements.append)
    await s.open()
    try:
        await put(s, *(record(f"88.1/h{i}", url(1, f"https://e.org/{i}")) for i in range(50)))
        statements.clear()
        await s.get(handle_key("88.1/h1"))
        await s.get_many([handle_key("88.1/h1"), handle_key("88.1/h2")])
        await s.list_handles("88.1", 10, 5)
        await s.iter_handles("88.1", handle_key("88.1/h3"), 5)
        await s.reverse_lookup("URL", "https://e.org/1*", 10, ["88.1"])
        await s.reverse_lookup("URL", "https://e.org/1", 10, None)
        await put(s, record("88.1/h1", url(1, "https://e.org/changed")))
        await delete(s, "88.1/h2")
    finally:
        await s.close()
    selects = [
        q
        for q in statements
        if q.lstrip().upper().startswith(("SELECT", "INSERT", "DELETE", "UPDATE"))
    ]
    assert len(selects) >= 8
    conn = sqlite3.connect(tmp_path / "plan.db")
    try:
        for sql in selects:
            plan = " | ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql))
            assert not re.search(r"\bSCAN (handles|lookup)\b", plan), (sql, plan)
    finally:
        conn.close()


async def test_the_factory_opens_sqlite_by_path_or_url(tmp_path: Path) -> None:
    path = tmp_path / "by-path.sqlite3"
    by_path = await open_store(path)
    try:
        assert isinstance(by_path, SQLiteStore)
        await put(by_path, record("88.1/a"))
    finally:
        await by_path.close()
    for location in (str(path), f"sqlite:{path}"):
        again = await open_store(location)
        try:
            assert await again.get("88.1/A") == record("88.1/a")
        finally:
            await again.close()
