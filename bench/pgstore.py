"""The PostgreSQL side of the benchmark: each cached SQLite registry copied once into a
database of its own (``idnode_bench_n<size>``) with the store copier ``idnode migrate``
uses, and reused while it holds that registry's build; fresh databases for imports.

The server is ``IDNODE_BENCH_POSTGRES`` (a URL of a role that may create databases; default
``postgresql://postgres@127.0.0.1:5432/postgres``).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bench.dataset import Dataset
from bench.procs import ProcError

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
_MARK = "CREATE TABLE IF NOT EXISTS idnode_bench (built text NOT NULL)"


def server() -> str:
    return os.environ.get("IDNODE_BENCH_POSTGRES") or DEFAULT_SERVER


def url(name: str) -> str:
    """The URL of the database ``name`` on the bench's server."""
    return urlunsplit(urlsplit(server())._replace(path="/" + name))


async def _admin(*statements: str) -> None:
    conn = await asyncpg.connect(server(), timeout=5)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def recreate(name: str) -> str:
    """A new, empty database ``name`` (any old one dropped); its URL."""
    try:
        asyncio.run(
            _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise ProcError(f"PostgreSQL at {server()}: {exc}") from exc
    return url(name)


def drop(name: str) -> None:
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def ensure(ds: Dataset, *, progress: bool, note: object = print) -> str:
    """The URL of a database holding the registry ``ds`` (copied now, unless a database
    holds this very build already)."""
    name = f"idnode_bench_n{ds.size}"
    built = json.loads((ds.path / "manifest.json").read_text())["built"]
    location = url(name)
    try:
        if asyncio.run(_built(location)) == built:
            return location
        note(f"copying the registry of {ds.size:,} into PostgreSQL ({name}), cached")  # type: ignore[operator]
        recreate(name)
        asyncio.run(_copy(ds, location, built, progress))
    except (OSError, asyncpg.PostgresError) as exc:
        raise ProcError(f"PostgreSQL at {server()}: {exc}") from exc
    return location


async def _built(location: str) -> str | None:
    try:
        conn = await asyncpg.connect(location, timeout=5)
    except asyncpg.InvalidCatalogNameError:
        return None
    try:
        if not await conn.fetchval("SELECT to_regclass('idnode_bench') IS NOT NULL"):
            return None
        value = await conn.fetchval("SELECT built FROM idnode_bench")
        return str(value) if value is not None else None
    finally:
        await conn.close()


async def _copy(ds: Dataset, location: str, built: str, progress: bool) -> None:
    from tqdm import tqdm

    from registry.store.copy import copy_records
    from registry.store.factory import open_store

    source = await open_store(f"sqlite:{ds.path / 'registry.sqlite3'}", readers=1)
    target = await open_store(location, readers=2)
    try:
        total = await source.count()
        with tqdm(total=total, unit="rec", disable=not progress, file=sys.stderr) as bar:
            report = await copy_records(source, target, batch=2000, progress=bar.update)
        if report.read != total:
            raise ProcError(f"copied {report.read} records of {total}")
    finally:
        await target.close()
        await source.close()
    conn = await asyncpg.connect(location, timeout=5)
    try:
        await conn.execute(_MARK)
        await conn.execute("INSERT INTO idnode_bench (built) VALUES ($1)", built)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
