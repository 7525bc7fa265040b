"""Tests for the SQLite store (registry.store.sqlite)."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from registry.model.identifiers import handle_key
from registry.model.values import Reference, Value
from registry.store.base import Change, Delete, Encoded, Put, Record
from registry.store.migrations import MIGRATIONS, SCHEMA_VERSION, SchemaTooNew, migrate
from registry.store.sqlite import SQLiteStore, StoreClosed, _reverse_lookup_query

T = TypeVar("T")

# A safety net so a broken store fails the test instead of hanging it; never used to order
# events.
TIMEOUT = 30


def url(index: int, text: str, vtype: str = "URL") -> Value:
    return Value(index=index, type=vtype, data=text.encode("utf-8"))


def record(handle: str, *values: Value) -> Record:
    return Record(handle, tuple(values))


async def put(store: SQLiteStore, *records: Record) -> None:
    def mutation(_: Mapping[str, Record]) -> tuple[Sequence[Change], None]:
        return [Put(handle_key(r.handle), r) for r in records], None

    await store.transact([handle_key(r.handle) for r in records], mutation)


async def delete(store: SQLiteStore, *handles: str) -> None:
    def mutation(_: Mapping[str, Record]) -> tuple[Sequence[Change], None]:
        return [Delete(handle_key(h)) for h in handles], None

    await store.transact([handle_key(h) for h in handles], mutation)


def trace_statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement the stores opened from now on execute, in order."""
    statements: list[str] = []
    connect = SQLiteStore._connect

    def traced(self: SQLiteStore) -> sqlite3.Connection:
        conn = connect(self)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(SQLiteStore, "_connect", traced)
    return statements


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "reg.db", readers=2)
    await s.open()
    yield s
    await s.close()


async def test_put_get_round_trip(store: SQLiteStore) -> None:
    rec = record(
        "88.118.8/Abc",
        url(1, "https://example.org/a"),
        Value(
            index=100,
            type="HS_ADMIN",
            data=b"\x00\x01\xff binary",
            ttl=3600,
            ttl_type=1,
            timestamp=1_700_000_000,
            permissions=0x0C,
            references=(Reference("0.NA/88.118.8", 200), Reference("88.118.8/x", 3)),
        ),
        Value(index=2, type="EMAIL", data="ü@example.org".encode()),
    )
    await put(store, rec)
    assert await store.get("88.118.8/ABC") == rec
    assert await store.get("88.118.8/Abc") is None  # addressed by key only
    assert await store.count() == 1


async def test_get_many(store: SQLiteStore) -> None:
    recs = [record(f"88.1/h{i}", url(1, f"u{i}")) for i in range(1200)]
    await put(store, *recs)
    keys = [handle_key(r.handle) for r in recs] + ["88.1/MISSING", "88.1/H0"]
    got = await store.get_many(keys)
    assert got == {handle_key(r.handle): r for r in recs}
    assert await store.get_many([]) == {}


async def test_concurrent_gets_share_one_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Single-record reads made in one event-loop pass go to a reader thread as one query;
    each caller gets its own record (or None), duplicates and absent keys included."""
    statements = trace_statements(monkeypatch)
    s = SQLiteStore(tmp_path / "reg.db", readers=2)
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


async def started(coros: Sequence[Coroutine[Any, Any, T]]) -> list[asyncio.Task[T]]:
    """A task per coroutine, returned once every one has run its first step: the last to
    start sets an event. The store's calls queue their work in that first step (before
    they first suspend), so on return every call has reached the store."""
    assert coros
    left = len(coros)
    all_started = asyncio.Event()

    async def run(coro: Coroutine[Any, Any, T]) -> T:
        nonlocal left
        left -= 1
        if not left:
            all_started.set()
        return await coro

    tasks = [asyncio.create_task(run(c)) for c in coros]
    await all_started.wait()
    return tasks


async def test_a_cancelled_get_leaves_the_others_their_answers(store: SQLiteStore) -> None:
    recs = [record(f"88.1/c{i}", url(1, f"u{i}")) for i in range(3)]
    await put(store, *recs)
    tasks = await started([store.get(handle_key(r.handle)) for r in recs])
    tasks[1].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert done[0] == recs[0] and done[2] == recs[2]
    assert isinstance(done[1], asyncio.CancelledError)


async def test_transact_passes_current_records_and_returns_result(store: SQLiteStore) -> None:
    a = record("88.1/a", url(1, "x"))
    await put(store, a)
    seen: list[Mapping[str, Record]] = []

    def mutation(records: Mapping[str, Record]) -> tuple[Sequence[Change], str]:
        seen.append(dict(records))
        return [], "ok"

    assert await store.transact(["88.1/A", "88.1/B", "88.1/A"], mutation) == "ok"
    assert seen == [{"88.1/A": a}]


async def test_failing_mutation_writes_nothing(store: SQLiteStore) -> None:
    def mutation(_: Mapping[str, Record]) -> tuple[Sequence[Change], None]:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        await store.transact(["88.1/A"], mutation)

    # Changes applied before a failure inside the same item are rolled back too.
    good = record("88.1/a", url(1, "x"))

    def half_applied(_: Mapping[str, Record]) -> tuple[Sequence[Change], None]:
        bad = Put("88.1/NOT-THE-KEY", record("88.1/b"))
        return [Put("88.1/A", good), bad], None

    with pytest.raises(ValueError):
        await store.transact(["88.1/A"], half_applied)
    assert await store.get("88.1/A") is None
    assert await store.count() == 0
    assert await store.list_handles("88.1") == (0, [])
    assert await store.reverse_lookup("URL", "x", 10) == []


async def test_group_failures_are_isolated(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    group_sizes: list[int] = []
    commit_group = SQLiteStore._commit_group

    def recording(self: SQLiteStore, conn: sqlite3.Connection, group: list[Any]) -> None:
        group_sizes.append(len(group))
        commit_group(self, conn, group)

    monkeypatch.setattr(SQLiteStore, "_commit_group", recording)

    # Hold the writer inside a first item so that everything below queues up and is
    # committed as one group.
    entered = asyncio.Event()
    release = threading.Event()
    loop = asyncio.get_running_loop()

    def gate(_: Mapping[str, Record]) -> tuple[Sequence[Change], None]:
        loop.call_soon_threadsafe(entered.set)
        if not release.wait(TIMEOUT):
            raise TimeoutError
        return [], None

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

    # Count what the store enqueues, to release the gate only once all 60 are queued.
    queued = asyncio.Event()
    real_queue = store._queue
    count = [0]

    class CountingQueue:
        def put(self, item: object) -> None:
            real_queue.put(item)
            count[0] += 1
            if count[0] == 60:
                queued.set()

        def __getattr__(self, name: str) -> Any:
            return getattr(real_queue, name)

    monkeypatch.setattr(store, "_queue", CountingQueue())
    tasks = [asyncio.create_task(make(i)) for i in range(60)]
    await asyncio.wait_for(queued.wait(), TIMEOUT)
    monkeypatch.setattr(store, "_queue", real_queue)
    release.set()
    await asyncio.wait_for(gate_task, TIMEOUT)
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), TIMEOUT)

    assert group_sizes == [1, 60]  # the gate alone, then all the others in one commit
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


async def test_concurrent_increments_lose_nothing(store: SQLiteStore) -> None:
    key = "88.1/COUNTER"

    def increment(records: Mapping[str, Record]) -> tuple[Sequence[Change], int]:
        current = records.get(key)
        values = current.values if current else ()
        nxt = len(values) + 1
        return [Put(key, Record("88.1/counter", (*values, url(nxt, str(nxt)))))], nxt

    results = await asyncio.gather(*(store.transact([key], increment) for _ in range(200)))
    assert sorted(results) == list(range(1, 201))
    rec = await store.get(key)
    assert rec is not None
    assert [v.index for v in rec.values] == list(range(1, 201))


async def test_delete_then_put_and_repeated_changes_in_one_mutation(store: SQLiteStore) -> None:
    await put(store, record("88.1/a", url(1, "old")))
    new = record("88.1/A", url(1, "new"))
    twice = record("88.1/b", url(1, "second"))

    def mutation(_: Mapping[str, Record]) -> tuple[Sequence[Change], None]:
        return [
            Delete("88.1/A"),
            Put("88.1/A", new),
            Put("88.1/B", record("88.1/b", url(1, "first"))),
            Put("88.1/B", twice),
        ], None

    await store.transact(["88.1/A", "88.1/B"], mutation)
    assert await store.get("88.1/A") == new
    assert await store.get("88.1/B") == twice
    assert await store.list_handles("88.1") == (2, ["88.1/A", "88.1/b"])
    assert await store.reverse_lookup("URL", "old", 10) == []
    assert await store.reverse_lookup("URL", "first", 10) == []
    assert await store.reverse_lookup("URL", "second", 10) == ["88.1/b"]


async def test_list_handles_counts_and_paging(store: SQLiteStore) -> None:
    await put(store, *(record(f"88.1/h{i:02d}") for i in range(25)))
    await put(store, record("88.10/other"), record("88.1.2/child"))
    assert await store.list_handles("88.1", 0, 10) == (25, [f"88.1/h{i:02d}" for i in range(10)])
    assert await store.list_handles("88.1", 20, 10) == (
        25,
        [f"88.1/h{i:02d}" for i in range(20, 25)],
    )
    assert await store.list_handles("88.1", 30, 10) == (25, [])
    total, all_handles = await store.list_handles("88.1")
    assert total == 25 and len(all_handles) == 25
    assert await store.list_handles("88.1", 24) == (25, ["88.1/h24"])
    assert await store.list_handles("88.1", 0, 0) == (25, [])
    assert await store.list_handles("88.2") == (0, [])

    await delete(store, "88.1/h00", "88.1/h05")
    await delete(store, "88.1/h05")  # already gone: no double decrement
    assert (await store.list_handles("88.1"))[0] == 23
    await put(store, record("88.1/H05"))  # re-put, displayed as written now
    total, handles = await store.list_handles("88.1", 0, 5)
    assert total == 24
    assert handles == ["88.1/h01", "88.1/h02", "88.1/h03", "88.1/h04", "88.1/H05"]
    await put(store, record("88.1/h05"))  # replace: count unchanged
    assert (await store.list_handles("88.1"))[0] == 24
    assert await store.count() == 26

    await delete(store, *(f"88.1/h{i:02d}" for i in range(25)))
    assert await store.list_handles("88.1") == (0, [])
    assert await store.count() == 2


async def test_iter_handles_keyset_paging(store: SQLiteStore) -> None:
    await put(store, *(record(f"88.1/h{i:02d}") for i in range(7)), record("88.1.2/child"))
    await put(store, record("88.10/other"), record("88.0/before"))
    seen: list[str] = []
    after: str | None = None
    while rows := await store.iter_handles("88.1", after, 3):
        assert len(rows) <= 3
        seen += [handle for _, handle in rows]
        after = rows[-1][0]
    assert seen == [f"88.1/h{i:02d}" for i in range(7)]  # no derived or neighbouring prefix
    assert await store.iter_handles("88.9", None, 3) == []


async def test_reverse_lookup_patterns(store: SQLiteStore) -> None:
    await put(
        store,
        record("88.1/a", url(1, "https://example.org/a"), url(2, "x@example.org", "EMAIL")),
        record("88.1/b", url(1, "https://example.org/b?q=[1]"), url(2, "https://example.org/a")),
        record("88.1/c", url(1, "http://other.net/a"), url(2, "tail", "url")),
        record("88.1/d", url(1, "https://example.org/b?q=1"), url(2, "https://example.org/bXq=1")),
        record("88.1/e", url(1, "HTTPS://EXAMPLE.ORG/A")),
    )

    async def rl(pattern: str, vtype: str = "URL", limit: int = 10) -> list[str]:
        return await store.reverse_lookup(vtype, pattern, limit)

    assert await rl("https://example.org/a") == ["88.1/a", "88.1/b"]  # exact, case-sensitive
    assert await rl("https://example.org/*") == ["88.1/a", "88.1/b", "88.1/d"]
    assert await rl("https://example.org/*", limit=2) == ["88.1/a", "88.1/b"]
    assert await rl("*/a") == ["88.1/a", "88.1/b", "88.1/c"]
    assert await rl("https://*.org/b*") == ["88.1/b", "88.1/d"]
    assert await rl("http*://*/a") == ["88.1/a", "88.1/b", "88.1/c"]
    # GLOB metacharacters in the data are literal in our patterns.
    assert await rl("https://example.org/b?q=[1]") == ["88.1/b"]
    assert await rl("*?q=[1]") == ["88.1/b"]
    assert await rl("https://example.org/b?q=*") == ["88.1/b", "88.1/d"]
    assert await rl("*[1*") == ["88.1/b"]
    assert await rl("*") == ["88.1/a", "88.1/b", "88.1/c", "88.1/d", "88.1/e"]
    # Types match ignoring case.
    assert await rl("tail", "Url") == ["88.1/c"]
    assert await rl("*", "email") == ["88.1/a"]
    assert await rl("nothing*") == []
    assert await rl("*", limit=0) == []


async def test_reverse_lookup_within(store: SQLiteStore) -> None:
    await put(
        store,
        record("88.1/a", url(1, "u")),
        record("88.1.2/b", url(1, "u")),
        record("88.10/c", url(1, "u")),
        record("88.2/d", url(1, "u")),
        record("ab.c/e", url(1, "u")),
    )
    assert await store.reverse_lookup("URL", "u", 10, ["88.1"]) == ["88.1.2/b", "88.1/a"]
    assert await store.reverse_lookup("URL", "u", 10, ["88.1", "88.2"]) == [
        "88.1.2/b",
        "88.1/a",
        "88.2/d",
    ]
    assert await store.reverse_lookup("URL", "u", 10, ["88"]) == [
        "88.1.2/b",
        "88.1/a",
        "88.10/c",
        "88.2/d",
    ]
    assert await store.reverse_lookup("URL", "u", 10, ["AB"]) == ["ab.c/e"]
    assert await store.reverse_lookup("URL", "u", 10, []) == []
    assert len(await store.reverse_lookup("URL", "u", 10, None)) == 5


async def test_reverse_lookup_skips_hs_binary_and_long_values(store: SQLiteStore) -> None:
    await put(
        store,
        record(
            "88.1/a",
            url(1, "secret", "HS_SECKEY"),
            url(2, "site", "hs_site"),
            Value(index=3, type="BIN", data=b"\xff\xfe"),
            url(4, "L" * 1025, "LONG"),
            url(5, "S" * 1024, "LONG"),
        ),
    )
    assert await store.reverse_lookup("HS_SECKEY", "*", 10) == []
    assert await store.reverse_lookup("HS_SITE", "site", 10) == []
    assert await store.reverse_lookup("BIN", "*", 10) == []
    assert await store.reverse_lookup("LONG", "L*", 10) == []
    assert await store.reverse_lookup("LONG", "S*", 10) == ["88.1/a"]


def test_reverse_lookup_query_is_index_backed(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "plan.db", isolation_level=None)
    migrate(conn)
    sql, params = _reverse_lookup_query("URL", "https://ex*/a", 10, ["88.1"])
    assert "data >= ?" in sql and "data < ?" in sql
    assert "https://ex" in params and "https://ey" in params
    plan = " ".join(str(r) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
    assert "SEARCH lookup USING PRIMARY KEY (type=? AND data>? AND data<?)" in plan
    sql, params = _reverse_lookup_query("URL", "exact", 10, None)
    assert "GLOB" not in sql
    plan = " ".join(str(r) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
    assert "PRIMARY KEY (type=? AND data=?)" in plan
    conn.close()


async def test_scan_paging(store: SQLiteStore) -> None:
    recs = {handle_key(f"88.{i % 3}/h{i}"): record(f"88.{i % 3}/h{i}") for i in range(23)}
    await put(store, *recs.values())
    seen: list[tuple[str, Record]] = []
    after: str | None = None
    while page := await store.scan(after, 5):
        assert len(page) <= 5
        seen += page
        after = page[-1][0]
    assert seen == sorted(recs.items())
    assert await store.scan(None, 0) == []


async def test_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "reg.db"
    s1 = SQLiteStore(path)
    await s1.open()
    rec = record("88.1/a", url(1, "https://example.org/"))
    await put(s1, rec)
    await s1.close()
    await s1.close()  # idempotent
    with pytest.raises(StoreClosed):
        await s1.get("88.1/A")
    with pytest.raises(StoreClosed):
        await put(s1, rec)

    s2 = SQLiteStore(str(path))
    await s2.open()
    try:
        assert await s2.get("88.1/A") == rec
        assert await s2.list_handles("88.1") == (1, ["88.1/a"])
        assert await s2.reverse_lookup("URL", "https://*", 5) == ["88.1/a"]
    finally:
        await s2.close()


async def test_close_drains_pending_transacts(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "reg.db")
    await s.open()
    tasks = await started([put(s, record(f"88.1/h{i}")) for i in range(50)])
    await s.close()
    assert all(t.done() and t.exception() is None for t in tasks)
    s2 = SQLiteStore(tmp_path / "reg.db")
    await s2.open()
    assert await s2.count() == 50
    await s2.close()


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


async def test_event_loop_runs_while_a_transaction_is_in_progress(store: SQLiteStore) -> None:
    # The mutation blocks its (store) thread until a coroutine on the loop releases it: if
    # transact ran SQLite on the loop, the release could never happen.
    loop = asyncio.get_running_loop()
    inside = asyncio.Event()
    release = threading.Event()

    def mutation(_: Mapping[str, Record]) -> tuple[Sequence[Change], str]:
        loop.call_soon_threadsafe(inside.set)
        if not release.wait(TIMEOUT):
            raise TimeoutError("the event loop was blocked")
        return [Put("88.1/A", record("88.1/a"))], "done"

    task = asyncio.create_task(store.transact(["88.1/A"], mutation))
    await asyncio.wait_for(inside.wait(), TIMEOUT)
    assert not task.done()
    # Reads keep being served by the reader threads meanwhile (and see the old state).
    assert await store.get("88.1/A") is None
    release.set()
    assert await asyncio.wait_for(task, TIMEOUT) == "done"
    assert await store.get("88.1/A") == record("88.1/a")


async def test_writer_survives_bad_changes(store: SQLiteStore) -> None:
    def bad(_: Mapping[str, Record]) -> tuple[Sequence[Change], None]:
        return ["not a change"], None  # type: ignore[list-item]

    with pytest.raises(TypeError):
        await store.transact([], bad)
    await put(store, record("88.1/a"))
    assert await store.count() == 1


async def test_unopened_store_refuses_work(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "reg.db")
    with pytest.raises(StoreClosed):
        await s.get("88.1/A")
    with pytest.raises(StoreClosed):
        await put(s, record("88.1/a"))
    await s.close()


async def test_every_query_is_index_backed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trace every SELECT the store issues for the user-facing reads and check SQLite's plan:
    no full scan of handles or lookup, so they stay fast at 10 million identifiers."""
    statements = trace_statements(monkeypatch)
    s = SQLiteStore(tmp_path / "plan.db", readers=1)
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
