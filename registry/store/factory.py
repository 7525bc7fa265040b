"""The one place a store backend is chosen: from a location the configuration gives.

- a plain path (``/var/lib/idnode/registry.sqlite3``) or ``sqlite:PATH``: :class:`SQLiteStore`;
- ``postgresql://...`` (or ``postgres://``): :class:`PostgresStore` (asyncpg, imported only
  then);
- any other ``SCHEME://`` is refused with :class:`StoreConfigError`.

Read replicas (``postgresql://`` URLs of streaming standbys) go with a PostgreSQL store only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

from registry.store.base import Store, StoreConfigError
from registry.store.sqlite import SQLiteStore
from registry.store.sqlite.threads import sqlite_location_problem

__all__ = [
    "StoreConfigError",
    "check_location",
    "check_replicas",
    "make_store",
    "open_store",
    "redact_location",
    "sqlite_problem",
    "without_password",
]

SQLITE_SCHEME = "sqlite:"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")  # a location with a scheme


def check_location(location: str) -> str:
    """The backend ``location`` names (``sqlite`` or ``postgresql``); raises
    :class:`StoreConfigError` when it names none this node has."""
    if not location:
        raise StoreConfigError("no store location given")
    if location.startswith(SQLITE_SCHEME):
        if not location[len(SQLITE_SCHEME) :]:
            raise StoreConfigError("sqlite: needs a file path, e.g. sqlite:/var/lib/idnode/reg.db")
        return "sqlite"
    if location.startswith(POSTGRES_SCHEMES):
        return "postgresql"
    if URL.match(location):
        scheme = location.split(":", 1)[0]
        raise StoreConfigError(
            f"unknown store scheme {scheme!r}: give a file path, sqlite:PATH or postgresql://..."
        )
    return "sqlite"


def make_store(
    location: str | os.PathLike[str], *, readers: int = 4, replicas: Sequence[str] = ()
) -> Store:
    """The store at ``location``, not opened yet (call :meth:`Store.open`). ``readers``: the
    reader threads or connections a backend keeps (PostgreSQL: as many writer connections
    too); ``replicas``: read replicas of a PostgreSQL store (URLs)."""
    if replicas:
        check_replicas(location, replicas)
    if not isinstance(location, str):
        return SQLiteStore(location, readers=readers)
    if check_location(location) == "postgresql":
        from registry.store.postgres import PostgresStore  # asyncpg only when asked for

        return PostgresStore(location, readers=readers, replicas=replicas)
    if location.startswith(SQLITE_SCHEME):
        location = location[len(SQLITE_SCHEME) :]
    return SQLiteStore(location, readers=readers)


def sqlite_problem(location: str) -> str | None:
    """For a SQLite ``location``: what keeps its file from being made there (its directory
    missing or not writable), before anything is opened; None for other backends."""
    if check_location(location) != "sqlite":
        return None
    return sqlite_location_problem(location.removeprefix(SQLITE_SCHEME))


def check_replicas(location: str | os.PathLike[str], replicas: Sequence[str]) -> None:
    """Refuse read replicas of a store that cannot have them, or that are not PostgreSQL."""
    if not (isinstance(location, str) and location.startswith(POSTGRES_SCHEMES)):
        raise StoreConfigError("read replicas need a PostgreSQL store (store = postgresql://...)")
    for replica in replicas:
        if not replica.startswith(POSTGRES_SCHEMES):
            shown = redact_location(replica)
            raise StoreConfigError(f"a read replica is a postgresql:// URL, not {shown!r}")


async def open_store(
    location: str | os.PathLike[str], *, readers: int = 4, replicas: Sequence[str] = ()
) -> Store:
    """:func:`make_store`, opened (its schema migrated to the newest version)."""
    store = make_store(location, readers=readers, replicas=replicas)
    await store.open()
    return store


def _with_password(location: str, password: str | None) -> str:
    if not URL.match(location):
        return location
    try:
        parts = urlsplit(location)
        if parts.password is None:
            return location
        netloc = parts.hostname or ""
        if ":" in netloc:  # an IPv6 address
            netloc = f"[{netloc}]"
        if parts.port is not None:
            netloc += f":{parts.port}"
        user = parts.username or ""
        user += f":{password}" if password is not None else ""
        return urlunsplit(parts._replace(netloc=f"{user}@{netloc}"))
    except ValueError:  # not a URL we can take apart: show nothing of it
        return location.split(":", 1)[0] + "://..."


def without_password(location: str | None) -> str | None:
    """``location`` as it may be written down: a URL without its password (give that by
    the backend's own means, e.g. ``PGPASSWORD`` or ``~/.pgpass``)."""
    return None if location is None else _with_password(location, None)


def redact_location(location: str) -> str:
    """``location`` as it may be shown or logged: a password as ``***``."""
    return _with_password(location, "***")
