"""The store contract: what every backend (tests/store_contract.py's BACKENDS) must do, checked
through the public Store interface only — records, transactions, listings, reverse lookup,
batches, the outbox, statistics, lifecycle and schema version."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from registry.model.identifiers import handle_key
from registry.model.values import Reference, Value
from registry.store.base import (
    Change,
    Delete,
    Encoded,
    Put,
    PutEncoded,
    Record,
    Report,
    Store,
    StoreClosed,
    Tally,
)
from registry.store.factory import StoreConfigError, make_store
from tests.store_contract import (
    BACKENDS,
    TIMEOUT,
    Backend,
    delete,
    put,
    record,
    started,
    url,
)

Fresh = Callable[[], Store]


@pytest.fixture(params=BACKENDS, ids=lambda b: b.name)
def backend(request: pytest.FixtureRequest) -> Backend:
    b: Backend = request.param
    return b


@pytest.fixture
def fresh(backend: Backend, tmp_path: Path) -> Iterator[Fresh]:
    """Makes a new, unopened store over the test's one location (reopening: call again)."""
    with backend.location(tmp_path) as location:
        yield lambda: make_store(location, readers=2)


@pytest.fixture
async def store(fresh: Fresh) -> AsyncIterator[Store]:
    s = fresh()
    await s.open()
    yield s
    await s.close()


async def transact_changes(store: Store, *changes: Change) -> None:
    def mutation(_: Mapping[str, Record]) -> tuple[Sequence[Change], None]:
        return changes, None

    await store.transact([], mutation)


# -- records ----------------------------------------------------------------------------------


async def test_put_get_round_trip(store: Store) -> None:
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


async def test_get_many(store: Store) -> None:
    recs = [record(f"88.1/h{i}", url(1, f"u{i}")) for i in range(1200)]
    await put(store, *recs)
    keys = [handle_key(r.handle) for r in recs] + ["88.1/MISSING", "88.1/H0"]
    got = await store.get_many(keys)
    assert got == {handle_key(r.handle): r for r in recs}
    assert await store.get_many([]) == {}


async def test_concurrent_gets_each_get_their_own_answer(store: Store) -> None:
    recs = [record(f"88.1/h{i}", url(1, f"u{i}")) for i in range(40)]
    await put(store, *recs)
    keys = [handle_key(f"88.1/h{i % 45}") for i in range(90)]  # 5 absent, each twice
    got = await asyncio.gather(*(store.get(k) for k in keys))
    assert got == [recs[i % 45] if i % 45 < 40 else None for i in range(90)]
    assert await store.get(handle_key("88.1/h7")) == recs[7]  # and alone


async def test_a_cancelled_get_leaves_the_others_their_answers(store: Store) -> None:
    recs = [record(f"88.1/c{i}", url(1, f"u{i}")) for i in range(3)]
    await put(store, *recs)
    tasks = await started([store.get(handle_key(r.handle)) for r in recs])
    tasks[1].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert done[0] == recs[0] and done[2] == recs[2]
    assert isinstance(done[1], asyncio.CancelledError)


async def test_scan_paging(store: Store) -> None:
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


# -- transactions -----------------------------------------------------------------------------


async def test_transact_passes_current_records_and_returns_result(store: Store) -> None:
    a = record("88.1/a", url(1, "x"))
    await put(store, a)
    seen: list[Mapping[str, Record]] = []

    def mutation(records: Mapping[str, Record]) -> tuple[Sequence[Change], str]:
        seen.append(dict(records))
        return [], "ok"

    assert await store.transact(["88.1/A", "88.1/B", "88.1/A"], mutation) == "ok"
    assert seen == [{"88.1/A": a}]


async def test_failing_mutation_writes_nothing(store: Store) -> None:
    def mutation(_: Mapping[str, Record]) -> tuple[Sequence[Change], None]:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        await store.transact(["88.1/A"], mutation)

    # Changes applied before a failure inside the same transaction are rolled back too.
    good = record("88.1/a", url(1, "x"))

    def half_applied(_: Mapping[str, Record]) -> tuple[Sequence[Change], None]:
        bad = Put("88.1/NOT-THE-KEY", record("88.1/b"))
        report = Report("88.1", "prefix", {"op": "create", "prefix": "88.1"})
        return [Put("88.1/A", good), report, Tally("88.1", 0, 60, registrations=1), bad], None

    with pytest.raises(ValueError):
        await store.transact(["88.1/A"], half_applied)
    assert await store.get("88.1/A") is None
    assert await store.count() == 0
    assert await store.list_handles("88.1") == (0, [])
    assert await store.reverse_lookup("URL", "x", 10) == []
    assert await store.outbox_peek(10) == []
    assert await store.stats_totals() == {}


async def test_failures_among_concurrent_transactions_are_isolated(store: Store) -> None:
    def make(i: int) -> Coroutine[Any, Any, int]:
        rec = record(f"88.1/h{i}", url(1, f"v{i}"))

        def mutation(_: Mapping[str, Record]) -> tuple[Sequence[Change], int]:
            if i % 3 == 0:
                # Half-applied before failing: the first Put must be undone.
                return [Put(handle_key(rec.handle), rec), Put("88.1/WRONG", rec)], i
            if i % 3 == 1:
                raise RuntimeError(f"fail {i}")
            return [Put(handle_key(rec.handle), rec)], i

        return store.transact([handle_key(rec.handle)], mutation)

    tasks = await started([make(i) for i in range(60)])
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), TIMEOUT)
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


async def test_concurrent_increments_lose_nothing(store: Store) -> None:
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


async def test_delete_then_put_and_repeated_changes_in_one_mutation(store: Store) -> None:
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


async def test_event_loop_runs_while_a_transaction_is_in_progress(store: Store) -> None:
    # The mutation blocks until a coroutine on the loop releases it: if transact ran it on
    # the loop, the release could never happen.
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
    # Reads keep being served meanwhile (and see the old state).
    assert await store.get("88.1/A") is None
    release.set()
    assert await asyncio.wait_for(task, TIMEOUT) == "done"
    assert await store.get("88.1/A") == record("88.1/a")


async def test_bad_changes_fail_only_their_transaction(store: Store) -> None:
    def bad(_: Mapping[str, Record]) -> tuple[Sequence[Change], None]:
        return ["not a change"], None  # type: ignore[list-item]

    with pytest.raises(TypeError):
        await store.transact([], bad)
    await put(store, record("88.1/a"))
    assert await store.count() == 1


# -- batches (bulk import) --------------------------------------------------------------------


async def test_a_batch_of_encoded_records_commits_as_one(store: Store) -> None:
    """Bulk import writes records encoded ahead of the transaction, many per transaction;
    plain and encoded puts of one key in one batch: the last wins."""
    recs = [record(f"88.1/b{i:04d}", url(1, f"https://e.org/{i}")) for i in range(1200)]
    await put(store, recs[5])  # one exists already: replaced, not counted twice
    encoded = [PutEncoded(handle_key(r.handle), Encoded.of(r)) for r in recs]
    last = record("88.1/b0007", url(1, "https://e.org/last"))
    from_values = Encoded.from_values(last.handle, last.values)
    changes: list[Change] = [
        *encoded,
        Put(handle_key(last.handle), recs[0]),
        Put("88.1/B0007", last),
    ]
    changes.append(PutEncoded("88.1/B0007", from_values))
    await transact_changes(store, *changes)
    assert await store.count() == 1200
    assert (await store.list_handles("88.1"))[0] == 1200
    got = await store.get_many([handle_key(r.handle) for r in recs])
    assert got == {handle_key(r.handle): (last if r.handle == last.handle else r) for r in recs}
    assert await store.reverse_lookup("URL", "https://e.org/1199", 5) == ["88.1/b1199"]
    assert await store.reverse_lookup("URL", "https://e.org/7", 5) == []
    assert await store.reverse_lookup("URL", "https://e.org/last", 5) == ["88.1/b0007"]


# -- listings ---------------------------------------------------------------------------------


async def test_list_handles_counts_and_paging(store: Store) -> None:
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
    with pytest.raises(ValueError):
        await store.list_handles("88.1", -1, 10)

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


async def test_iter_handles_keyset_paging(store: Store) -> None:
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


# -- reverse lookup ---------------------------------------------------------------------------


async def test_reverse_lookup_patterns(store: Store) -> None:
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
    # Pattern metacharacters of the backend's own matching are literal in our patterns.
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


async def test_reverse_lookup_within(store: Store) -> None:
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


async def test_reverse_lookup_skips_hs_binary_and_long_values(store: Store) -> None:
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


# -- the outbox -------------------------------------------------------------------------------


def prefix_report(prefix: str, op: str = "create") -> Report:
    return Report(prefix, "prefix", {"op": op, "prefix": prefix})


async def test_outbox_items_commit_with_their_change_in_order(store: Store) -> None:
    """Appended by the transaction of the change that caused them; claimed oldest first;
    acknowledged ones leave, refused ones are set aside (and counted)."""

    def create(handle: str) -> Callable[[Mapping[str, Record]], tuple[Sequence[Change], None]]:
        def mutation(_: Mapping[str, Record]) -> tuple[Sequence[Change], None]:
            return [Put(handle_key(handle), record(handle)), prefix_report(handle[5:])], None

        return mutation

    empty = await store.outbox_summary()
    assert (empty.pending, empty.oldest, empty.dead) == (0, None, 0)
    for n in range(5):
        await store.transact([], create(f"0.NA/88.118.{n}"))
    items = await store.outbox_peek(10)
    assert [i.body["prefix"] for i in items] == [f"88.118.{n}" for n in range(5)]
    assert [i.kind for i in items] == ["prefix"] * 5
    assert [i.seq for i in items] == sorted({i.seq for i in items})
    assert await store.outbox_peek(2) == items[:2]
    summary = await store.outbox_summary()
    assert (summary.pending, summary.dead) == (5, 0)
    assert summary.oldest == items[0].created

    await store.outbox_done([items[0].seq, items[2].seq], {items[1].seq: "refused: bad"})
    assert await store.outbox_peek(10) == items[3:]
    summary = await store.outbox_summary()
    assert (summary.pending, summary.dead, summary.oldest) == (2, 1, items[3].created)
    await store.outbox_done([], {})  # nothing to do
    await store.outbox_done([items[3].seq, items[4].seq], {})
    summary = await store.outbox_summary()
    assert (summary.pending, summary.dead, summary.oldest) == (0, 1, None)


async def test_outbox_sequence_numbers_are_never_reused(fresh: Fresh) -> None:
    store = fresh()
    await store.open()
    await transact_changes(store, prefix_report("88.118.8"))
    (first,) = await store.outbox_peek(10)
    await store.outbox_done([first.seq], {})  # the newest item is gone
    await store.close()
    store = fresh()
    await store.open()
    try:
        await transact_changes(store, prefix_report("88.118.8"))
        (second,) = await store.outbox_peek(10)
    finally:
        await store.close()
    assert second.seq > first.seq  # the id the top-level deduplicates by stays unique


# -- statistics -------------------------------------------------------------------------------


async def test_tallies_add_up_and_closed_intervals_become_outbox_items(store: Store) -> None:
    await transact_changes(store, Tally("88.118.8", 600, 60, registrations=3, updates=1))
    await transact_changes(store, Tally("88.118.8", 600, 60, resolutions=5, deletions=2))
    await transact_changes(store, Tally("88.118.8", 660, 60, registrations=1))  # open at 700
    await transact_changes(store, Tally("88.118.9", 600, 60, resolutions=4))
    assert await store.stats_close(659) == 0  # 600 + 60 > 659: not ended yet
    assert await store.stats_close(700) == 2
    assert await store.stats_close(700) == 0  # reported once
    items = await store.outbox_peek(10)
    assert [i.kind for i in items] == ["stats", "stats"]
    assert sorted((i.body for i in items), key=lambda b: str(b["prefix"])) == [
        {
            "prefix": "88.118.8",
            "start": 600,
            "seconds": 60,
            "registrations": 3,
            "updates": 1,
            "deletions": 2,
            "resolutions": 5,
        },
        {
            "prefix": "88.118.9",
            "start": 600,
            "seconds": 60,
            "registrations": 0,
            "updates": 0,
            "deletions": 0,
            "resolutions": 4,
        },
    ]
    # A late count reopens its interval: the new total is reported again.
    await transact_changes(store, Tally("88.118.8", 600, 60, resolutions=1))
    assert await store.stats_close(700) == 1
    later = (await store.outbox_peek(10))[2]
    assert later.seq > max(i.seq for i in items)
    assert (later.body["start"], later.body["resolutions"]) == (600, 6)
    # Totals cover every interval kept, reported or not.
    assert await store.stats_totals() == {
        "88.118.8": {"registrations": 4, "updates": 1, "deletions": 2, "resolutions": 6},
        "88.118.9": {"registrations": 0, "updates": 0, "deletions": 0, "resolutions": 4},
    }


# -- lifecycle and schema ---------------------------------------------------------------------


async def test_survives_close_and_reopen(fresh: Fresh) -> None:
    s1 = fresh()
    await s1.open()
    await s1.open()  # idempotent
    rec = record("88.1/a", url(1, "https://example.org/"))
    await put(s1, rec)
    await s1.close()
    await s1.close()  # idempotent
    with pytest.raises(StoreClosed):
        await s1.get("88.1/A")
    with pytest.raises(StoreClosed):
        await put(s1, rec)
    with pytest.raises(StoreClosed):
        await s1.open()  # a closed store is not reopened: make a new one

    s2 = fresh()
    await s2.open()
    try:
        assert await s2.get("88.1/A") == rec
        assert await s2.list_handles("88.1") == (1, ["88.1/a"])
        assert await s2.reverse_lookup("URL", "https://*", 5) == ["88.1/a"]
    finally:
        await s2.close()


async def test_close_drains_pending_transacts(fresh: Fresh) -> None:
    s = fresh()
    await s.open()
    tasks = await started([put(s, record(f"88.1/h{i}")) for i in range(50)])
    await s.close()
    assert all(t.done() and t.exception() is None for t in tasks)
    s2 = fresh()
    await s2.open()
    try:
        assert await s2.count() == 50
    finally:
        await s2.close()


async def test_unopened_store_refuses_work(fresh: Fresh) -> None:
    s = fresh()
    with pytest.raises(StoreClosed):
        await s.get("88.1/A")
    with pytest.raises(StoreClosed):
        await s.get_many(["88.1/A"])
    with pytest.raises(StoreClosed):
        await put(s, record("88.1/a"))
    with pytest.raises(StoreClosed):
        await s.outbox_peek(10)
    with pytest.raises(StoreClosed):
        await s.schema_version()
    await s.close()


async def test_open_migrates_to_the_newest_schema_once(fresh: Fresh, backend: Backend) -> None:
    """A new store is created at the newest version; reopening it (as every restart does)
    migrates nothing again and keeps what was written."""
    for n in range(3):
        s = fresh()
        await s.open()
        try:
            assert await s.schema_version() == backend.schema_version
            assert await s.count() == n
            await put(s, record(f"88.1/r{n}", url(1, "x")))
        finally:
            await s.close()


# -- the factory ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "says"),
    [
        ("", "no store location"),
        ("sqlite:", "needs a file path"),
        ("mysql://db/idnode", "unknown store scheme 'mysql'"),
    ],
)
def test_the_factory_refuses_what_it_cannot_open(location: str, says: str) -> None:
    with pytest.raises(StoreConfigError, match=says):
        make_store(location)
