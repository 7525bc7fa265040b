"""``idnode migrate``: a node's registry moved from SQLite to PostgreSQL and back, as
stored, resumable after an interruption."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from registry.model.identifiers import parse
from registry.model.values import Value
from registry.store.base import Record, Store
from registry.store.copy import copy_records
from registry.store.factory import open_store
from resolver.config import load
from resolver.node import Node
from tests.conftest import ENT8, init_node
from tests.pgserver import fresh_database
from tests.procs import cli
from tests.test_cli import fails, ok

N = 2500


@pytest.fixture
def dsn() -> Iterator[str]:
    with fresh_database() as location:
        yield location


async def filled_node(data: Path) -> None:
    """The test node on SQLite with N signed records besides its prefixes."""
    await init_node(data)
    node = await Node.open(load(data, env={}), serving=False)
    try:
        items = [
            (parse(f"{ENT8}/M{i:05d}"), [Value(1, "URL", f"https://e.org/{i}".encode())])
            for i in range(N)
        ]
        await node.registry.import_records(items)
    finally:
        await node.close()


async def everything(location: str) -> list[tuple[str, Record]]:
    store = await open_store(location, readers=1)
    try:
        return await store.scan(None, 10 * N)
    finally:
        await store.close()


async def test_a_node_moves_to_postgresql_and_back(tmp_path: Path, dsn: str) -> None:
    data = tmp_path / "node"
    await filled_node(data)
    before = json.loads(ok(await asyncio.to_thread(cli, "get", f"{ENT8}/M00042", "--data", data)))
    done = await asyncio.to_thread(cli, "migrate", "--from", f"sqlite:{data}", "--to", dsn)
    out = ok(done)
    assert f"Copied {N + 3} records" in out and "(0 there already)" in out
    assert "100%" in done.stderr  # the progress bar
    source = await everything(f"sqlite:{data / 'registry.sqlite3'}")
    assert await everything(dsn) == source  # as stored: signatures, sealed secrets
    # The node runs on the copy: resolution, and its admins' sealed secrets still work.
    flags = ["--data", data, "--store", dsn]
    got = json.loads(ok(await asyncio.to_thread(cli, "get", f"{ENT8}/M00042", *flags)))
    assert got == before
    ok(await asyncio.to_thread(cli, "put", f"{ENT8}/NEW", *flags, "--value", "URL=https://n"))
    # Again: nothing to copy. And back into a new SQLite file (a backup).
    again = ok(await asyncio.to_thread(cli, "migrate", "--from", data, "--to", dsn, "--quiet"))
    assert "Copied 0 records" in again and f"({N + 3} there already)" in again
    backup = tmp_path / "backup.sqlite3"
    ok(await asyncio.to_thread(cli, "migrate", "--from", dsn, "--to", backup, "--quiet"))
    assert await everything(str(backup)) == await everything(dsn)
    assert len(await everything(str(backup))) == N + 4


class Interrupted(Exception):
    pass


class FailingAfter:
    """A source store whose scans fail after ``pages`` pages (a copy cut short)."""

    def __init__(self, store: Store, pages: int) -> None:
        self.store = store
        self.pages = pages

    async def scan(self, after_key: str | None, limit: int) -> list[tuple[str, Record]]:
        if self.pages == 0:
            raise Interrupted()
        self.pages -= 1
        return await self.store.scan(after_key, limit)

    async def get_many(self, keys: Sequence[str]) -> dict[str, Record]:
        return await self.store.get_many(keys)


async def test_an_interrupted_copy_resumes_where_it_stopped(tmp_path: Path, dsn: str) -> None:
    data = tmp_path / "node"
    await filled_node(data)
    source = await open_store(f"sqlite:{data / 'registry.sqlite3'}", readers=1)
    target = await open_store(dsn, readers=1)
    try:
        with pytest.raises(Interrupted):
            await copy_records(FailingAfter(source, 3), target, batch=500)  # type: ignore[arg-type]
        assert await target.count() == 1500
        report = await copy_records(source, target, batch=500)
        assert (report.copied, report.unchanged, report.read) == (N + 3 - 1500, 1500, N + 3)
        assert await target.scan(None, 10 * N) == await source.scan(None, 10 * N)
    finally:
        await source.close()
        await target.close()


def test_migrate_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    err = fails(cli("migrate", "--from", tmp_path / "none", "--to", "postgresql://h/db"))
    assert "no such registry file" in err
    err = fails(cli("migrate", "--from", tmp_path, "--to", f"sqlite:{tmp_path}"))
    assert "the same store" in err
    err = fails(cli("migrate", "--from", "mysql://x/y", "--to", tmp_path / "b.db"))
    assert "unknown store scheme" in err
