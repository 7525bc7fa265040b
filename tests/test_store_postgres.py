"""What the PostgreSQL store does beyond the contract (tests/test_store_contract.py runs that
on it too): writers in separate stores (hosts) on one database, the bulk path, lost
connections, the schema, and the trigram index behind reverse lookup."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence

import asyncpg
import pytest

from registry.model.identifiers import handle_key
from registry.store.base import (
    Change,
    Put,
    Record,
    StoreConfigError,
    StoreDamaged,
    StoreUnavailable,
)
from registry.store.factory import make_store, open_store
from registry.store.postgres import PostgresStore, lookup, schema
from registry.store.postgres.errors import redact
from tests.pgserver import database_url, fresh_database, terminate_backends
from tests.store_contract import TIMEOUT, put, record, started, url


@pytest.fixture
def dsn() -> Iterator[str]:
    with fresh_database() as location:
        yield location


@pytest.fixture
async def store(dsn: str) -> AsyncIterator[PostgresStore]:
    s = make_store(dsn, readers=2)
    assert isinstance(s, PostgresStore)
    await s.open()
    yield s
    await s.close()


def increment(key: str) -> object:
    def mutation(records: Mapping[str, Record]) -> tuple[Sequence[Change], int]:
        current = records.get(key)
        values = current.values if current else ()
        nxt = len(values) + 1
        return [Put(key, Record(key, (*values, url(nxt, str(nxt)))))], nxt

    return mutation


async def test_writers_in_two_stores_serialise_on_a_key_that_does_not_exist_yet(dsn: str) -> None:
    """Two hosts' stores on one database: read-modify-write of one absent key from both
    loses nothing (the key's lock covers a row that is not there yet)."""
    a, b = await open_store(dsn, readers=2), await open_store(dsn, readers=2)
    try:
        key = "88.1/COUNTER"
        calls = [s.transact([key], increment(key)) for s in (a, b) for _ in range(40)]
        results = await asyncio.wait_for(asyncio.gather(*calls), TIMEOUT)  # type: ignore[arg-type]
        assert sorted(results) == list(range(1, 81))
        rec = await b.get(key)
        assert rec is not None and [v.index for v in rec.values] == list(range(1, 81))
    finally:
        await a.close()
        await b.close()


async def test_a_blind_write_waits_for_a_writer_that_read_the_key(store: PostgresStore) -> None:
    """A write that did not read a key (an import's put, a tally) still waits for one that
    did: the reader's decision stays based on what it read."""
    loop = asyncio.get_running_loop()
    inside = asyncio.Event()
    release = threading.Event()

    def reader(records: Mapping[str, Record]) -> tuple[Sequence[Change], bool]:
        loop.call_soon_threadsafe(inside.set)
        if not release.wait(TIMEOUT):
            raise TimeoutError("never released")
        absent = "88.1/K" not in records
        return [Put("88.1/K", record("88.1/k", url(1, "from-reader")))], absent

    def blind(_: Mapping[str, Record]) -> tuple[Sequence[Change], None]:
        return [Put("88.1/K", record("88.1/k", url(1, "blind")))], None

    first = asyncio.create_task(store.transact(["88.1/K"], reader))
    await asyncio.wait_for(inside.wait(), TIMEOUT)
    second = asyncio.create_task(store.transact([], blind))
    # The blind write reached the server and waits there: the reader is still running.
    await _wait_for_lock_waiter(store.dsn)
    release.set()
    assert await asyncio.wait_for(first, TIMEOUT) is True
    await asyncio.wait_for(second, TIMEOUT)
    rec = await store.get("88.1/K")
    assert rec is not None and rec.values[0].data == b"blind"  # applied after, not lost
    assert await store.count() == 1


async def _wait_for_lock_waiter(dsn: str) -> None:
    """Poll the server's view of sessions until one waits for a lock (with a deadline)."""
    conn = await asyncpg.connect(dsn)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    try:
        while True:
            waiting = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"
            )
            if waiting:
                return
            assert loop.time() < deadline, "no session waits for a lock"
            await asyncio.sleep(0.01)
    finally:
        await conn.close()


async def test_bulk_batches_take_the_copy_path_and_count_right(store: PostgresStore) -> None:
    """An import batch (many keys read, most absent) is written by COPY; replaced ones by
    upsert; counts, listings and reverse lookup agree."""
    await put(store, record("88.1/b0003", url(1, "https://e.org/old")))
    recs = [record(f"88.1/b{i:04d}", url(1, f"https://e.org/{i}")) for i in range(500)]
    recs += [record(f"88.2/c{i:04d}", url(1, f"https://f.org/{i}")) for i in range(300)]
    keys = [handle_key(r.handle) for r in recs]

    def batch(existing: Mapping[str, Record]) -> tuple[Sequence[Change], int]:
        return [Put(handle_key(r.handle), r) for r in recs], len(existing)

    assert await store.transact(keys, batch) == 1
    assert await store.count() == 800
    assert (await store.list_handles("88.1"))[0] == 500
    assert (await store.list_handles("88.2"))[0] == 300
    assert await store.reverse_lookup("URL", "https://e.org/old", 5) == []
    assert await store.reverse_lookup("URL", "https://e.org/3", 5) == ["88.1/b0003"]
    assert await store.reverse_lookup("URL", "*f.org/29*", 20) == [
        "88.2/c0029",
        *(f"88.2/c{i:04d}" for i in range(290, 300)),
    ]
    # Importing the same batch again replaces every record and creates none.
    assert await store.transact(keys, batch) == 800
    assert await store.count() == 800


async def test_reads_and_writes_survive_a_lost_connection(dsn: str, store: PostgresStore) -> None:
    """Every pooled connection killed under the store (what a server restart does): the
    next read and write go through on fresh connections."""
    await put(store, record("88.1/a", url(1, "x")))
    assert await store.get("88.1/A") is not None
    assert await terminate_backends(dsn) >= 2
    assert await store.get("88.1/A") == record("88.1/a", url(1, "x"))
    await put(store, record("88.1/b", url(1, "y")))
    assert await store.count() == 2


class Stalling:
    """A mutation that stops on each run until the test lets it go on (after ending the
    store's connections under it)."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.inside = asyncio.Queue[int]()
        self.go = threading.Semaphore(0)
        self.runs = 0

    def __call__(self, _: Mapping[str, Record]) -> tuple[Sequence[Change], int]:
        self.runs += 1
        self.loop.call_soon_threadsafe(self.inside.put_nowait, self.runs)
        if not self.go.acquire(timeout=TIMEOUT):
            raise TimeoutError("never released")
        return [Put("88.1/A", record("88.1/a"))], self.runs


async def test_a_write_whose_connection_is_lost_before_commit_runs_again(
    dsn: str, store: PostgresStore
) -> None:
    mutation = Stalling()
    task = asyncio.create_task(store.transact(["88.1/A"], mutation))
    assert await asyncio.wait_for(mutation.inside.get(), TIMEOUT) == 1
    await terminate_backends(dsn)  # the transaction is rolled back with its connection
    mutation.go.release()
    assert await asyncio.wait_for(mutation.inside.get(), TIMEOUT) == 2
    mutation.go.release()
    assert await asyncio.wait_for(task, TIMEOUT) == 2
    assert await store.get("88.1/A") == record("88.1/a")


async def test_a_connection_lost_mid_write_twice_is_a_503_and_writes_nothing(
    dsn: str, store: PostgresStore
) -> None:
    mutation = Stalling()
    task = asyncio.create_task(store.transact(["88.1/A"], mutation))
    for _ in range(2):
        await asyncio.wait_for(mutation.inside.get(), TIMEOUT)
        await terminate_backends(dsn)
        mutation.go.release()
    with pytest.raises(StoreUnavailable) as caught:
        await asyncio.wait_for(task, TIMEOUT)
    assert caught.value.status == 503 and mutation.runs == 2
    assert await store.get("88.1/A") is None
    await put(store, record("88.1/a"))  # and the store goes on
    assert await store.count() == 1


async def test_an_unreachable_server_is_unavailable_and_names_no_password() -> None:
    s = PostgresStore("postgresql://idnode:s3cret@127.0.0.1:1/idnode")
    with pytest.raises(StoreUnavailable) as caught:
        await s.open()
    assert caught.value.status == 503
    assert "s3cret" not in str(caught.value) and "idnode:***@127.0.0.1:1" in str(caught.value)
    await s.close()
    assert redact("postgresql://u:p@h/db?x=1") == "postgresql://u:***@h/db?x=1"


async def test_a_missing_database_is_a_configuration_error() -> None:
    with fresh_database():  # the server is there (or the test skips)
        pass
    s = make_store(database_url("idnode_no_such_database"))
    with pytest.raises(StoreConfigError, match="does not exist"):
        await s.open()
    await s.close()


async def test_a_foreign_database_is_refused_as_damaged(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE handles (id integer)")
    finally:
        await conn.close()
    s = make_store(dsn)
    with pytest.raises(StoreDamaged, match="not an idnode registry database"):
        await s.open()
    await s.close()


async def test_hosts_opening_a_new_database_together_migrate_it_once(dsn: str) -> None:
    stores = [make_store(dsn, readers=1) for _ in range(4)]
    await asyncio.wait_for(asyncio.gather(*(s.open() for s in stores)), TIMEOUT)
    try:
        for s in stores:
            assert await s.schema_version() == schema.SCHEMA_VERSION
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetch("SELECT version FROM schema_version") == [
                (schema.SCHEMA_VERSION,)
            ]
        finally:
            await conn.close()
    finally:
        for s in stores:
            await s.close()


async def test_patterns_without_a_literal_head_use_the_trigram_index(store: PostgresStore) -> None:
    """At a size where reading every row costs more, a pattern starting with '*' is served
    by the trigram index."""
    await put(store, record("88.1/h123", url(1, "https://example.org/item/123")))
    conn = await asyncpg.connect(store.dsn)
    try:
        # 100,000 more rows as the store writes them, made by the server for speed.
        await conn.execute(
            "INSERT INTO lookup (type, data, key, prefix) SELECT 'URL',"
            " 'https://example.org/item/x' || i, '88.2/H' || i, '88.2'"
            " FROM generate_series(1, 100000) AS i"
        )
        await conn.execute("ANALYZE lookup")
        statement = lookup.query("URL", "*item/123*", 10, None)
        assert statement is not None
        sql, args = statement
        plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + sql, *args))
    finally:
        await conn.close()
    assert "lookup_data_trgm" in plan, plan
    assert await store.reverse_lookup("URL", "*item/123*", 5) == ["88.1/h123"]


async def test_text_postgresql_cannot_hold_finds_nothing(store: PostgresStore) -> None:
    await put(store, record("88.1/a", url(1, "a\x00b"), url(2, "ab")))
    assert await store.get("88.1/\x00") is None
    assert await store.get("88.1/\ud800") is None
    assert await store.reverse_lookup("URL", "a\x00*", 5) == []
    assert await store.reverse_lookup("URL", "a*", 5) == ["88.1/a"]
    assert await store.list_handles("88.\ud800") == (0, [])


async def test_close_lets_reads_already_asked_for_finish(store: PostgresStore) -> None:
    await put(store, record("88.1/a"))
    tasks = await started([store.get("88.1/A") for _ in range(5)])
    await store.close()
    assert [t.result() for t in tasks] == [record("88.1/a")] * 5


async def test_a_lease_has_one_holder_and_passes_on_when_its_session_ends(
    dsn: str, store: PostgresStore
) -> None:
    first, second = store.lease("role"), store.lease("role")
    other = store.lease("another role")
    try:
        assert await first.try_acquire() and await first.try_acquire()  # kept
        assert not await second.try_acquire()
        assert await other.try_acquire()  # a lease of another name is apart
        await terminate_backends(dsn, "application_name = 'idnode-lease-role'")
        assert not await first.try_acquire()  # its session ended: lost, and it says so
        assert await second.try_acquire()
        assert not await first.try_acquire()
        await second.release()
        assert await first.try_acquire()
    finally:
        for lease in (first, second, other):
            await lease.release()
