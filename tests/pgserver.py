"""The PostgreSQL server the tests use, and a fresh database on it per test.

Tests find the server by ``IDNODE_TEST_POSTGRES`` (a URL of a role that may create
databases; default ``postgresql://postgres@127.0.0.1:5432/postgres``). Each test that asks
gets a database of its own, created empty and dropped after the test, so tests never see
each other's rows. Where no server answers, the PostgreSQL tests skip saying so — unless
``IDNODE_REQUIRE_POSTGRES=1`` (CI sets it), where that is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
T = TypeVar("T")


def admin_url() -> str:
    return os.environ.get("IDNODE_TEST_POSTGRES") or DEFAULT_URL


def _required() -> bool:
    return os.environ.get("IDNODE_REQUIRE_POSTGRES", "") not in ("", "0")


def _in_thread(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion on a loop of its own, in a thread: callable from sync
    fixtures whether or not the test's event loop is running."""
    out: list[T] = []
    err: list[BaseException] = []

    def main() -> None:
        try:
            out.append(asyncio.run(make()))  # type: ignore[arg-type]
        except BaseException as exc:
            err.append(exc)

    thread = threading.Thread(target=main)
    thread.start()
    thread.join()
    if err:
        raise err[0]
    return out[0]


async def _execute(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@functools.cache
def _unreachable() -> str | None:
    """Why the server cannot be used (None: it can), asked once per session."""
    try:
        _in_thread(lambda: _execute(admin_url(), "SELECT 1"))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def require_server() -> None:
    """Skip (fail, under IDNODE_REQUIRE_POSTGRES=1) a test no PostgreSQL server can serve."""
    why = _unreachable()
    if why is None:
        return
    message = (
        f"no PostgreSQL server at {admin_url()} ({why}); set IDNODE_TEST_POSTGRES to a "
        "server's URL to run the PostgreSQL tests"
    )
    if _required():
        pytest.fail(message + " (IDNODE_REQUIRE_POSTGRES=1: the PostgreSQL tests must run)")
    pytest.skip(message)


def database_url(name: str) -> str:
    parts = urlsplit(admin_url())
    return urlunsplit(parts._replace(path="/" + name))


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """The URL of a new, empty database, dropped (its connections ended) afterwards."""
    require_server()
    name = f"idnode_test_{os.getpid()}_{secrets.token_hex(4)}"
    _in_thread(lambda: _execute(admin_url(), f'CREATE DATABASE "{name}"'))
    try:
        yield database_url(name)
    finally:
        _in_thread(lambda: _execute(admin_url(), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def terminate_backends(dsn: str, where: str = "true") -> int:
    """End the other sessions on ``dsn``'s database matching the SQL condition ``where``
    over pg_stat_activity (what a server restart does to them); how many."""
    conn = await asyncpg.connect(dsn)
    try:
        ended = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            f" WHERE datname = current_database() AND pid <> pg_backend_pid() AND ({where})"
        )
        return int(ended)
    finally:
        await conn.close()
