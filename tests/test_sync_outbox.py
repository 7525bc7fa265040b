"""The outbox and the statistics: written in the transaction of the change that causes them,
derived purely from the changes, closed into reports per interval, delivered or set aside."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from registry.errors import HandleExists
from registry.model.identifiers import handle_key, parse
from registry.model.values import Value
from registry.reporting import interval_start, reports_for
from registry.store.base import Change, Delete, Put, Record, Report, Tally
from registry.store.sqlite import SQLiteStore
from resolver.config import load
from resolver.node import Node
from sync.sender import backoff, batch_body
from tests.conftest import ENT8, init_node

HOMED = (handle_key("88.118"),)


def rec(handle: str) -> Record:
    return Record(handle, (Value(1, "URL", b"https://example.org/"),))


def test_enterprise_prefix_changes_become_prefix_reports() -> None:
    put = Put(handle_key("0.NA/88.118.20"), rec("0.NA/88.118.20"))
    (report,) = reports_for({}, [put], HOMED, 1000, 300)
    assert report == Report("88.118.20", "prefix", {"op": "create", "prefix": "88.118.20"})
    existing = {put.key: rec("0.NA/88.118.20")}
    (report,) = reports_for(existing, [put], HOMED, 1000, 300)
    assert isinstance(report, Report) and report.body["op"] == "update"
    (report,) = reports_for(existing, [Delete(put.key)], HOMED, 1000, 300)
    assert isinstance(report, Report) and report.body == {"op": "delete", "prefix": "88.118.20"}


def test_own_and_foreign_prefix_handles_are_not_reported() -> None:
    own = Put(handle_key("0.NA/88.118"), rec("0.NA/88.118"))
    foreign = Put(handle_key("0.NA/99.1"), rec("0.NA/99.1"))
    assert reports_for({}, [own, foreign], HOMED, 1000, 300) == []


def test_identifier_writes_are_tallied_per_prefix_and_interval() -> None:
    a, b, c = (handle_key(f"88.118.8/{n}") for n in "abc")
    d = handle_key("88.118.9/d")
    records = {b: rec("88.118.8/b"), c: rec("88.118.8/c")}
    changes: list[Change] = [
        Put(a, rec("88.118.8/a")),  # new
        Put(a, rec("88.118.8/a")),  # the same key again in the batch: now an update
        Put(b, rec("88.118.8/b")),  # existed: update
        Delete(c),
        Put(d, rec("88.118.9/d")),
    ]
    out = reports_for(records, changes, HOMED, 1234, 300)
    assert sorted(out, key=lambda t: t.prefix) == [  # type: ignore[union-attr]
        Tally("88.118.8", 1200, 300, registrations=1, updates=2, deletions=1),
        Tally("88.118.9", 1200, 300, registrations=1),
    ]
    assert interval_start(1234, 60) == 1200


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    assert backoff(0, lambda: 0.0) == pytest.approx(0.25)
    assert backoff(3, lambda: 1.0) == pytest.approx(4.0)
    assert backoff(3, lambda: 0.0) == pytest.approx(2.0)
    assert backoff(40, lambda: 1.0) == pytest.approx(60.0)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    data = tmp_path / "node"
    await init_node(data, stats_interval="60")
    n = await Node.open(load(data))
    yield n
    await n.close()


async def test_writes_commit_their_reports_and_failures_leave_none(node: Node) -> None:
    # init_node imported the enterprise prefixes 88.118.8 and 88.118.9: both queued.
    items = await node.store.outbox_peek(100)
    assert [(i.kind, i.body) for i in items] == [
        ("prefix", {"op": "create", "prefix": "88.118.8"}),
        ("prefix", {"op": "create", "prefix": "88.118.9"}),
    ]
    ident = parse(f"{ENT8}/item-1")
    await node.registry.put_record(ident, [Value(1, "URL", b"https://example.org/1")])
    await node.registry.put_record(ident, [Value(1, "URL", b"https://example.org/2")])
    with pytest.raises(HandleExists):
        await node.registry.put_record(ident, [Value(1, "URL", b"x")], overwrite=False)
    await node.registry.delete_record(ident)
    totals = await node.store.stats_totals()
    assert totals["88.118.8"] == {
        "registrations": 1,
        "updates": 1,
        "deletions": 1,
        "resolutions": 0,
    }
    # Key publication and re-signing are the node's own business: no reports.
    assert len(await node.store.outbox_peek(100)) == 2


async def test_closed_intervals_become_stats_items_and_late_counts_report_again(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:

        async def tally(t: Tally) -> None:
            def mutate(_: Mapping[str, Record]) -> tuple[list[Change], None]:
                return [t], None

            await store.transact([], mutate)

        await tally(Tally("88.118.8", 600, 60, registrations=3))
        await tally(Tally("88.118.8", 600, 60, resolutions=5))
        await tally(Tally("88.118.8", 660, 60, registrations=1))  # still open at 700
        assert await store.stats_close(700) == 1
        assert await store.stats_close(700) == 0  # reported once
        (item,) = await store.outbox_peek(10)
        assert item.kind == "stats"
        assert item.body == {
            "prefix": "88.118.8",
            "start": 600,
            "seconds": 60,
            "registrations": 3,
            "updates": 0,
            "deletions": 0,
            "resolutions": 5,
        }
        await tally(Tally("88.118.8", 600, 60, resolutions=1))  # late: report the new total
        assert await store.stats_close(700) == 1
        later = (await store.outbox_peek(10))[1]
        assert later.seq > item.seq and later.body["resolutions"] == 6
        body = batch_body("app", [item])
        assert body["items"] == [{**item.body, "id": f"app:{item.seq}", "kind": "stats"}]

        await store.outbox_done([item.seq], {later.seq: "refused"})
        summary = await store.outbox_summary()
        assert (summary.pending, summary.dead, summary.oldest) == (0, 1, None)
    finally:
        await store.close()


async def test_sequence_numbers_are_never_reused(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()

    def add(_: Mapping[str, Record]) -> tuple[list[Change], None]:
        return [Report("88.118.8", "prefix", {"op": "create", "prefix": "88.118.8"})], None

    await store.transact([], add)
    (first,) = await store.outbox_peek(10)
    await store.outbox_done([first.seq], {})
    await store.close()
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    await store.transact([], add)
    (second,) = await store.outbox_peek(10)
    await store.close()
    assert second.seq > first.seq  # the id the top-level deduplicates by stays unique
