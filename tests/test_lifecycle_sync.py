"""The lifecycle's reports: each state change of an enterprise prefix lands in the outbox in
its own transaction (pending and rejected prefixes never do), and the mock top-level node
(a real ``idnode toplevel serve``) accepts and records them as the node's sender sends them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from registry.store.base import OutboxItem
from resolver.config import load
from resolver.node import Node
from sync.sender import batch_body
from sync.toplevel import store
from tests.conftest import init_node
from tests.toplevel_support import with_node

APP = {
    "name": "Motor works",
    "organisation": "Motor Works Ltd",
    "contact": "ops@motor.example",
    "industry": "machinery",
    "secret": "a-long-enough-secret",
}


async def _drain(node: Node) -> list[OutboxItem]:
    items = await node.store.outbox_peek(100)
    await node.store.outbox_done([i.seq for i in items], {})
    return [i for i in items if i.kind == "prefix"]


def _ops(items: list[OutboxItem]) -> list[tuple[str, str]]:
    return [(i.body["op"], i.prefix) for i in items]


async def test_state_changes_are_reported_and_the_toplevel_records_them(tmp_path: Path) -> None:
    await init_node(tmp_path / "node")
    node = await Node.open(load(tmp_path / "node"))
    ents = node.enterprises
    try:
        await _drain(node)  # what init_node reported
        await ents.apply({"prefix": "88.118.20", **APP})
        await ents.apply({"prefix": "88.118.21", **APP})
        await ents.act("88.118.21", "reject", "incomplete")
        assert await _drain(node) == []  # pending and rejected: never routed

        await ents.act("88.118.20", "approve")
        await ents.act("88.118.20", "suspend", "unpaid invoice")
        first = await _drain(node)
        assert _ops(first) == [("create", "88.118.20"), ("suspend", "88.118.20")]
        assert first[1].body["reason"] == "unpaid invoice"
        await ents.act("88.118.20", "reactivate")
        second = await _drain(node)
        await ents.act("88.118.20", "withdraw", "contract ended")
        third = await _drain(node)
        assert _ops(second) == [("reactivate", "88.118.20")]
        assert _ops(third) == [("delete", "88.118.20")]
    finally:
        await node.close()

    async with with_node(tmp_path / "tl") as (tl, app, key):

        async def send(items: list[OutboxItem]) -> Any:
            answer = await tl.batch(key, app, batch_body(app, items)["items"])
            assert answer.status == 200, answer
            assert {r["status"] for r in answer.body["results"]} == {"accepted"}, answer.body

        async def routed() -> dict[str, str]:
            rows = (await tl.view("prefixes"))["prefixes"]
            return {r["prefix"]: r["state"] for r in rows if r["kind"] == "enterprise"}

        await send(first)
        assert await routed() == {"88.118.20": "suspended"}
        await send(second)
        assert await routed() == {"88.118.20": "active"}
        await send(third)
        assert await routed() == {}
        events = (await tl.view("events"))["events"]
        assert [(e["op"], e["prefix"], e["reason"]) for e in events] == [
            ("create", "88.118.20", ""),
            ("suspend", "88.118.20", "unpaid invoice"),
            ("reactivate", "88.118.20", ""),
            ("delete", "88.118.20", ""),
        ]


async def test_the_toplevel_refuses_to_suspend_a_prefix_it_does_not_route(tmp_path: Path) -> None:
    async with with_node(tmp_path / "tl") as (tl, app, key):
        item = {"id": "x-1", "kind": "prefix", "op": "suspend", "prefix": "88.118.50"}
        answer = await tl.batch(key, app, [item])
        (result,) = answer.body["results"]
        assert result["status"] == "rejected"
        assert result["error"] == "prefix 88.118.50 is not routed to this node"
        assert (await tl.view("events"))["events"] == []  # a refused report records nothing


def test_a_version_1_toplevel_database_gains_the_events_table(tmp_path: Path) -> None:
    path = tmp_path / "toplevel.sqlite3"
    conn = store.connect(path, create=True)
    conn.executescript("DROP TABLE prefix_events; PRAGMA user_version = 1;")
    conn.close()
    conn = store.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION == 2
        assert conn.execute("SELECT count(*) FROM prefix_events").fetchone()[0] == 0
    finally:
        conn.close()
