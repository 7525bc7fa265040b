"""The one place a store backend is chosen: from a location the configuration gives.

- a plain path (``/var/lib/idnode/registry.sqlite3``) or ``sqlite:PATH``: :class:`SQLiteStore`;
- ``postgresql://...`` (or ``postgres://``): :class:`PostgresStore` (asyncpg, imported only
  then);
- any other ``SCHEME://`` is refused with :class:`StoreConfigError`.
"""

from __future__ import annotations

import os
import re

from registry.store.base import Store, StoreConfigError
from registry.store.sqlite import SQLiteStore

__all__ = ["StoreConfigError", "make_store", "open_store"]

SQLITE_SCHEME = "sqlite:"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def make_store(location: str | os.PathLike[str], *, readers: int = 4) -> Store:
    """The store at ``location``, not opened yet (call :meth:`Store.open`). ``readers``: the
    reader threads or connections a backend keeps (PostgreSQL: as many writer connections
    too)."""
    if not isinstance(location, str):
        return SQLiteStore(location, readers=readers)
    if not location:
        raise StoreConfigError("no store location given")
    if location.startswith(SQLITE_SCHEME):
        path = location[len(SQLITE_SCHEME) :]
        if not path:
            raise StoreConfigError("sqlite: needs a file path, e.g. sqlite:/var/lib/idnode/reg.db")
        return SQLiteStore(path, readers=readers)
    if location.startswith(POSTGRES_SCHEMES):
        from registry.store.postgres import PostgresStore  # asyncpg only when asked for

        return PostgresStore(location, readers=readers)
    if _URL.match(location):
        scheme = location.split(":", 1)[0]
        raise StoreConfigError(
            f"unknown store scheme {scheme!r}: give a file path, sqlite:PATH or postgresql://..."
        )
    return SQLiteStore(location, readers=readers)


async def open_store(location: str | os.PathLike[str], *, readers: int = 4) -> Store:
    """:func:`make_store`, opened (its schema migrated to the newest version)."""
    store = make_store(location, readers=readers)
    await store.open()
    return store
