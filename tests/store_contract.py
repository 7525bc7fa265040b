"""The store backends the contract suite (tests/test_store_contract.py) runs against, and the
helpers its tests share with the backend-specific ones.

A backend is a name, a way to get a fresh, empty store location for one test (what the
node's configuration would name: a path, a URL) and the schema version its migrations end
at. Adding a backend is one more entry in :data:`BACKENDS`; the suite reaches stores only
through :func:`registry.store.factory.make_store` and the public
:class:`registry.store.base.Store` interface. PostgreSQL runs on a database of its own per
test (tests/pgserver.py: how the server is found, and when its tests skip).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from registry.model.identifiers import handle_key
from registry.model.values import Value
from registry.store import migrations
from registry.store.base import Change, Delete, Put, Record, Store
from registry.store.postgres import schema as pg_schema
from tests.pgserver import fresh_database

T = TypeVar("T")

# A safety net so a broken store fails the test instead of hanging it; never used to order
# events.
TIMEOUT = 30


@dataclass(frozen=True)
class Backend:
    name: str
    # A fresh store location for one test, inside the test's temporary directory; the
    # context ends after the test (a database server's backend drops what it made).
    location: Callable[[Path], contextlib.AbstractContextManager[str]]
    schema_version: int  # where the backend's migrations end


def _sqlite_location(tmp_path: Path) -> contextlib.AbstractContextManager[str]:
    return contextlib.nullcontext(f"sqlite:{tmp_path / 'registry.sqlite3'}")


def _postgres_location(_tmp_path: Path) -> contextlib.AbstractContextManager[str]:
    return fresh_database()


BACKENDS = (
    Backend("sqlite", _sqlite_location, migrations.SCHEMA_VERSION),
    Backend("postgresql", _postgres_location, pg_schema.SCHEMA_VERSION),
)


def url(index: int, text: str, vtype: str = "URL") -> Value:
    return Value(index=index, type=vtype, data=text.encode("utf-8"))


def record(handle: str, *values: Value) -> Record:
    return Record(handle, tuple(values))


async def put(store: Store, *records: Record) -> None:
    def mutation(_: Mapping[str, Record]) -> tuple[Sequence[Change], None]:
        return [Put(handle_key(r.handle), r) for r in records], None

    await store.transact([handle_key(r.handle) for r in records], mutation)


async def delete(store: Store, *handles: str) -> None:
    def mutation(_: Mapping[str, Record]) -> tuple[Sequence[Change], None]:
        return [Delete(handle_key(h)) for h in handles], None

    await store.transact([handle_key(h) for h in handles], mutation)


async def raw_sql(location: str, sql: str) -> None:
    """Run ``sql`` on the store at ``location`` behind the store's back (as someone with
    access to the database would: tampering, in the audit log's tests)."""
    if location.startswith("postgresql://"):
        conn = await asyncpg.connect(location)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()
        return

    def run() -> None:
        conn = sqlite3.connect(location.removeprefix("sqlite:"))
        try:
            conn.execute(sql)
            conn.commit()
        finally:
            conn.close()

    await asyncio.to_thread(run)


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
