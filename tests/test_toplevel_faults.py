"""The failures the top-level injects on demand: 503s that record nothing (a fraction of
intake requests, or all of them in a downtime window) and added latency. No sleep is used to
synchronise: each test waits on answers, with deadlines."""

from __future__ import annotations

import time
from pathlib import Path

from registry.signing.keys import SigningKey
from sync import protocol
from tests.syncprocs import until
from tests.toplevel_support import (
    TopLevel,
    new_app,
    prefix_item,
    serving,
    signed,
    with_node,
)


async def registered(data: Path) -> tuple[str, SigningKey]:
    """A top-level in ``data`` with one registered node."""
    async with with_node(data) as (_tl, app, key):
        return app, key


async def test_error_rate_one_fails_every_intake_request_and_records_nothing(
    tmp_path: Path,
) -> None:
    data = tmp_path / "tl"
    app, key = await registered(data)
    items = [prefix_item("p1", "88.118.8"), prefix_item("p2", "88.118.9")]
    req = signed(key, app, protocol.BATCH_PATH, {"items": items})
    other = new_app(data, prefix="88.200")
    async with serving(data, "--error-rate", "1.0") as tl:
        before = await tl.state()
        for answer in (
            await tl.send(req),
            await tl.register(other, SigningKey.generate(), prefix="88.200"),
            await tl.post(key, app, protocol.HEARTBEAT_PATH, {"status": {}}),
        ):
            assert answer.status == 503, answer
            assert answer.body == {"error": "injected failure"}
        # Reads are not intake: they still answer.
        assert (await tl.get("/api/handles/0.0/0.0")).status == 200
        assert await tl.state() == before
    async with serving(data) as tl:
        # The very same request (same nonce, same ids) is new to the top-level.
        answer = await tl.send(req)
        assert answer.status == 200, answer
        assert [r["status"] for r in answer.body["results"]] == ["accepted", "accepted"]


async def test_partial_error_rate_counts_only_answered_batches(tmp_path: Path) -> None:
    data = tmp_path / "tl"
    app, key = await registered(data)
    async with serving(data, "--error-rate", "0.5", "--seed", "7") as tl:
        statuses = []
        for i in range(30):
            answer = await tl.batch(key, app, [prefix_item(f"i{i}", f"88.118.{i}")])
            assert answer.status in (200, 503), answer
            statuses.append(answer.status)
        assert 200 in statuses and 503 in statuses
        counters = await tl.counters(app)
        assert counters["accepted"] == counters["ids"] == statuses.count(200)
        routed = (await tl.view("prefixes"))["prefixes"]
        assert len(routed) == 1 + statuses.count(200)
    # The same seed draws the same failures.
    async with serving(data, "--error-rate", "0.5", "--seed", "7") as tl:
        again = [
            (await tl.batch(key, app, [prefix_item(f"j{i}", f"88.118.{i}")])).status
            for i in range(30)
        ]
    assert again == statuses


async def _status_until(tl: TopLevel, want: int, app: str, key: SigningKey) -> list[int]:
    """Heartbeats (the shared poll with a deadline) until one is answered ``want``; all the
    statuses seen."""
    seen: list[int] = []

    async def heartbeat() -> int:
        answer = await tl.post(key, app, protocol.HEARTBEAT_PATH, {"status": {}})
        seen.append(answer.status)
        return answer.status

    await until(heartbeat, lambda status: status == want, f"a heartbeat answered {want}")
    return seen


async def test_downtime_window(tmp_path: Path) -> None:
    data = tmp_path / "tl"
    app, key = await registered(data)
    async with serving(data, "--down-after", "0", "--down-for", "3600") as tl:
        before = await tl.state()
        answer = await tl.batch(key, app, [prefix_item("p1", "88.118.8")])
        assert answer.status == 503, answer
        assert "injected downtime" in answer.body["error"]
        assert 3500 < int(answer.headers["Retry-After"]) <= 3600
        assert (await tl.get("/toplevel/v1/nodes")).status == 200
        assert (await tl.get("/")).status == 200
        assert await tl.state() == before

    # Up, then down for a while, then up again.
    async with serving(data, "--down-after", "2", "--down-for", "2") as tl:
        started = time.monotonic()
        first = await tl.post(key, app, protocol.HEARTBEAT_PATH, {"status": {}})
        assert first.status == 200, first
        down = await _status_until(tl, 503, app, key)
        went_down = time.monotonic()
        assert set(down[:-1]) <= {200}
        up = await _status_until(tl, 200, app, key)
        assert set(up[:-1]) <= {503}
        assert time.monotonic() - went_down >= 1.0  # most of the 2 s window remained
        assert time.monotonic() - started >= 2.0


async def test_latency_is_added_to_every_request(tmp_path: Path) -> None:
    async with with_node(tmp_path / "tl", "--latency-ms", "400") as (tl, app, key):
        view = await tl.get("/toplevel/v1/nodes")
        assert view.status == 200 and view.elapsed >= 0.4
        intake = await tl.post(key, app, protocol.HEARTBEAT_PATH, {"status": {}})
        assert intake.status == 200 and intake.elapsed >= 0.4
        record = await tl.get("/api/handles/0.0/0.0")
        assert record.status == 200 and record.elapsed >= 0.4
