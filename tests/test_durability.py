"""Durability (an acknowledged write survives SIGKILL of the server) and concurrency (no lost
update, no torn write)."""

from __future__ import annotations

import asyncio
import itertools
import re
from pathlib import Path
from typing import Any

import aiohttp

from tests import procs
from tests.conftest import (
    ENT8,
    ENT8_ADMIN,
    NODE_ADMIN,
    Server,
    assert_signed,
    client_view,
    init_node,
    node_signatures,
)

WORKERS = 16
KILL_AFTER = 40  # acknowledgements before SIGKILL


def record_url(n: int) -> str:
    return f"https://example.org/durable/{n}"


async def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    data = tmp_path / "node"
    await init_node(data)
    acked: dict[str, str] = {}
    unexpected: list[tuple[str, int, str]] = []
    failures: list[BaseException] = []
    enough = asyncio.Event()
    numbers = itertools.count(1)

    served = await procs.start("serve", "--data", data, "--http", "127.0.0.1:0")
    try:
        async with aiohttp.ClientSession() as session:

            async def writer() -> None:
                # Write until the server dies under us; a request cut off by the kill fails.
                while True:
                    n = next(numbers)
                    handle = f"{ENT8}/DUR-{n}"
                    body = {"values": [{"index": 1, "type": "URL", "data": record_url(n)}]}
                    try:
                        async with session.put(
                            served.api(handle), json=body, headers=ENT8_ADMIN
                        ) as r:
                            text = await r.text()
                            status = r.status
                    except (aiohttp.ClientError, ConnectionError) as exc:
                        failures.append(exc)
                        return
                    if status == 201:
                        acked[handle] = record_url(n)
                        if len(acked) >= KILL_AFTER:
                            enough.set()
                    else:
                        unexpected.append((handle, status, text))
                        enough.set()
                        return

            async def killer() -> None:
                await enough.wait()
                served.proc.kill()  # SIGKILL: no shutdown, no flush
                await served.proc.wait()

            await asyncio.wait_for(
                asyncio.gather(killer(), *(writer() for _ in range(WORKERS))), 60
            )
    finally:
        await procs.stop(served)

    assert unexpected == []
    assert served.proc.returncode == -9
    assert len(acked) >= KILL_AFTER
    # Every writer was stopped by the kill, i.e. had a request in flight or about to go.
    assert len(failures) == WORKERS

    async with procs.serving(data) as again, aiohttp.ClientSession() as session:
        lost: list[tuple[str, int, Any]] = []
        for handle, expected in sorted(acked.items()):
            async with session.get(again.api(handle)) as r:
                got = await r.json() if r.status == 200 else await r.text()
                # The write survives whole: the client's value and the node's signature.
                if (
                    r.status != 200
                    or [
                        (v["index"], v["type"], v["data"]["value"])
                        for v in client_view(got["values"], handle)
                    ]
                    != [(1, "URL", expected)]
                    or len(node_signatures(got["values"])) != 1
                ):
                    lost.append((handle, r.status, got))
        assert lost == [], f"{len(lost)} of {len(acked)} acknowledged writes lost: {lost[:5]}"


# ------------------------------------------------------------------ concurrency


async def put(
    server: Server, handle: str, values: list[dict[str, Any]], index: int | None = None
) -> tuple[int, Any]:
    params = {"index": str(index)} if index is not None else None
    async with server.session.put(
        server.api(handle), json={"values": values}, params=params, headers=ENT8_ADMIN
    ) as r:
        return r.status, await r.json()


async def get_values(server: Server, handle: str) -> list[tuple[int, str, str]]:
    async with server.session.get(server.api(handle), headers=NODE_ADMIN) as r:
        assert r.status == 200, await r.text()
        body = await r.json()
    assert_signed(body["values"], handle)  # every write left the record signed
    return [
        (v["index"], v["type"], v["data"]["value"]) for v in client_view(body["values"], handle)
    ]


async def test_100_concurrent_writers_distinct_identifiers(server: Server) -> None:
    def values(k: int) -> list[dict[str, Any]]:
        return [
            {"index": 1, "type": "URL", "data": f"https://example.org/c/{k}"},
            {"index": 2, "type": "DESC", "data": f"record {k}"},
        ]

    results = await asyncio.gather(*(put(server, f"{ENT8}/C-{k}", values(k)) for k in range(100)))
    assert [(s, b["responseCode"]) for s, b in results] == [(201, 1)] * 100
    got = await asyncio.gather(*(get_values(server, f"{ENT8}/C-{k}") for k in range(100)))
    for k, vals in enumerate(got):
        assert vals == [(1, "URL", f"https://example.org/c/{k}"), (2, "DESC", f"record {k}")]


async def test_100_concurrent_index_adds_to_one_identifier_lose_nothing(server: Server) -> None:
    handle = f"{ENT8}/SHARED"
    status, _ = await put(server, handle, [{"index": 1000, "type": "DESC", "data": "seed"}])
    assert status == 201

    results = await asyncio.gather(
        *(
            put(server, handle, [{"index": k, "type": "DESC", "data": f"writer {k}"}], index=k)
            for k in range(1, 101)
        )
    )
    assert [(s, b["responseCode"]) for s, b in results] == [(201, 1)] * 100
    assert await get_values(server, handle) == [
        *((k, "DESC", f"writer {k}") for k in range(1, 101)),
        (1000, "DESC", "seed"),
    ]


async def test_100_concurrent_full_replacements_leave_one_whole_body(server: Server) -> None:
    handle = f"{ENT8}/CONTENDED"

    def body(k: int) -> list[dict[str, Any]]:
        # Bodies differ in size too, so a mix of two bodies is visible in the index set.
        n = k % 7 + 1
        return [
            {"index": i, "type": "DESC" if i > 1 else "URL", "data": f"k={k} i={i}"}
            for i in range(1, n + 1)
        ]

    status, _ = await put(server, handle, body(1000))
    assert status == 201
    results = await asyncio.gather(*(put(server, handle, body(k)) for k in range(100)))
    assert [(s, b["responseCode"]) for s, b in results] == [(200, 1)] * 100

    got = await get_values(server, handle)
    m = re.fullmatch(r"k=(\d+) i=1", got[0][2])
    assert m, got
    winner = int(m.group(1))
    assert 0 <= winner < 100
    assert got == [(v["index"], v["type"], v["data"]) for v in body(winner)]
