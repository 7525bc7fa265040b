"""The audit log in every store backend (tests/store_contract.py's BACKENDS): entries appended
in the transaction of their change and chained by hash, the chain linear under concurrent
writers (two stores on one database: two hosts), tampering and removal found by
verification, queries, and retention that keeps the chain verifiable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from registry import auditlog
from registry.store.base import Audit, Change, Put, Record, Store
from registry.store.chain import GENESIS, AuditQuery, link
from registry.store.factory import make_store
from tests.store_contract import BACKENDS, TIMEOUT, Backend, raw_sql, record, url


@pytest.fixture(params=BACKENDS, ids=lambda b: b.name)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    backend: Backend = request.param
    with backend.location(tmp_path) as where:
        yield where


@pytest.fixture
async def store(location: str) -> AsyncIterator[Store]:
    s = make_store(location, readers=2)
    await s.open()
    yield s
    await s.close()


def entry(
    n: int, at: float = 1_700_000_000.0, identity: str = "300:0.NA/88.118", **kw: str
) -> Audit:
    fields = {"prefix": "88.118.8", "handle": f"88.118.8/h{n}", "action": "create"}
    fields.update(kw)
    return Audit(
        at + n,
        "http",
        identity,
        "127.0.0.1",
        fields["action"],
        fields["prefix"],
        fields["handle"],
        "",
        f"{n:064x}",
        fields.get("detail", ""),
    )


async def append(store: Store, *audits: Change, fail: bool = False) -> None:
    def mutation(_: Mapping[str, Record]) -> tuple[Sequence[Change], None]:
        if fail:
            raise RuntimeError("refused")
        return audits, None

    await store.transact([], mutation)


async def test_entries_are_numbered_and_chained(store: Store) -> None:
    assert (await store.audit_head()).seq == 0
    await append(store, entry(1), entry(2))
    await append(store, entry(3))
    entries = await store.audit_entries(AuditQuery(), 0, 10)
    assert [e.seq for e in entries] == [1, 2, 3]
    previous = GENESIS
    for e, n in zip(entries, (1, 2, 3), strict=True):
        assert (e.handle, e.identity, e.after) == (f"88.118.8/h{n}", "300:0.NA/88.118", f"{n:064x}")
        assert e.hash == link(previous, e.seq, e)
        previous = e.hash
    head = await store.audit_head()
    assert (head.seq, head.hash) == (3, previous)
    result = await auditlog.verify(store)
    assert (result.broken, result.checked) == (None, 3)


async def test_an_entry_commits_with_its_change_or_not_at_all(store: Store) -> None:
    rec = record("88.118.8/x", url(1, "u"))
    await append(store, Put("88.118.8/X", rec), entry(1))
    with pytest.raises(RuntimeError):
        await append(store, entry(2), fail=True)
    with pytest.raises(ValueError):  # a put under a foreign key fails the transaction
        await append(store, Put("88.118.8/OTHER", rec), entry(3))
    assert [e.seq for e in await store.audit_entries(AuditQuery(), 0, 10)] == [1]
    await append(store, entry(4))
    assert [e.handle for e in await store.audit_entries(AuditQuery(), 0, 10)] == [
        "88.118.8/h1",
        "88.118.8/h4",
    ]
    assert (await auditlog.verify(store)).broken is None


async def test_an_altered_entry_is_found(store: Store, location: str) -> None:
    await append(store, *(entry(n) for n in range(1, 6)))
    await raw_sql(location, "UPDATE audit SET identity = 'someone else' WHERE seq = 3")
    result = await auditlog.verify(store)
    assert (result.broken, result.checked) == (3, 2)
    assert "altered" in result.reason


async def test_a_removed_entry_is_found(store: Store, location: str) -> None:
    await append(store, *(entry(n) for n in range(1, 6)))
    await raw_sql(location, "DELETE FROM audit WHERE seq = 2")
    result = await auditlog.verify(store)
    assert (result.broken, result.reason) == (2, "missing")


async def test_a_removed_tail_is_found(store: Store, location: str) -> None:
    await append(store, *(entry(n) for n in range(1, 6)))
    await raw_sql(location, "DELETE FROM audit WHERE seq >= 4")
    result = await auditlog.verify(store)
    assert (result.broken, result.reason) == (4, "missing")


async def test_a_rehashed_entry_still_breaks_the_next(store: Store, location: str) -> None:
    """Who alters an entry and recomputes its hash breaks the link of the one after."""
    await append(store, *(entry(n) for n in range(1, 4)))
    entries = await store.audit_entries(AuditQuery(), 0, 10)
    forged = link(entries[0].hash, 2, entry(2, identity="forger"))
    await raw_sql(
        location, f"UPDATE audit SET identity = 'forger', hash = '{forged}' WHERE seq = 2"
    )
    assert (await auditlog.verify(store)).broken == 3


async def test_the_chain_stays_linear_under_concurrent_writers(location: str) -> None:
    """Two stores on one database (two hosts, or processes), many writers each."""
    a, b = make_store(location, readers=2), make_store(location, readers=2)
    await a.open()
    await b.open()
    try:
        writes = [
            append(
                (a, b)[n % 2],
                Put(f"88.118.8/W{n}", record(f"88.118.8/w{n}", url(1, "u"))),
                entry(n),
            )
            for n in range(60)
        ]
        async with asyncio.timeout(TIMEOUT):
            await asyncio.gather(*writes)
        result = await auditlog.verify(a)
        assert (result.broken, result.checked) == (None, 60)
        entries = await b.audit_entries(AuditQuery(), 0, 100)
        assert [e.seq for e in entries] == list(range(1, 61))
        assert sorted(e.handle for e in entries) == sorted(f"88.118.8/h{n}" for n in range(60))
    finally:
        await a.close()
        await b.close()


async def test_queries_filter_and_page(store: Store) -> None:
    await append(store, entry(1), entry(2, identity="300:0.NA/88.118.9", prefix="88.118.9"))
    await append(store, entry(3), entry(4, action="delete"))
    t0 = 1_700_000_000.0

    async def seqs(query: AuditQuery, after: int = 0, limit: int = 10) -> list[int]:
        return [e.seq for e in await store.audit_entries(query, after, limit)]

    assert await seqs(AuditQuery(prefix="88.118.9")) == [2]
    assert await seqs(AuditQuery(identity="300:0.NA/88.118")) == [1, 3, 4]
    assert await seqs(AuditQuery(action="delete")) == [4]
    assert await seqs(AuditQuery(since=t0 + 2, until=t0 + 4)) == [2, 3]
    assert await seqs(AuditQuery(prefix="88.118.8", identity="300:0.NA/88.118")) == [1, 3, 4]
    assert await seqs(AuditQuery(), after=1, limit=2) == [2, 3]
    assert await seqs(AuditQuery(), after=3, limit=2) == [4]


async def test_pruning_keeps_the_chain_verifiable(store: Store) -> None:
    old, new = 1_000_000.0, 2_000_000.0
    await append(store, *(entry(n, at=old) for n in range(1, 8)))
    await append(store, *(entry(n, at=new) for n in range(8, 11)))
    assert await auditlog.prune(store, days=1, now=new - 86400 + 1, batch=3) == 7
    head = await store.audit_head()
    assert (head.anchor_seq, head.seq) == (7, 10)
    assert [e.seq for e in await store.audit_entries(AuditQuery(), 0, 100)] == [8, 9, 10]
    result = await auditlog.verify(store)
    assert (result.broken, result.checked) == (None, 3)
    await append(store, entry(11, at=new))  # the chain goes on from the head
    assert (await auditlog.verify(store)).checked == 4
    assert await auditlog.prune(store, days=1, now=new - 86400 + 1) == 0


async def test_pruning_everything_leaves_an_empty_verifiable_log(
    store: Store, location: str
) -> None:
    await append(store, *(entry(n, at=1_000.0) for n in range(1, 4)))
    assert await auditlog.prune(store, days=1, now=10_000_000.0) == 3
    assert (await auditlog.verify(store)).broken is None
    await append(store, entry(4))
    assert (await auditlog.verify(store)).checked == 1
    # The anchor is what the rest hangs from: altering it breaks the first entry after.
    await raw_sql(location, f"UPDATE audit_head SET anchor_hash = '{'1' * 64}'")
    assert (await auditlog.verify(store)).broken == 4
