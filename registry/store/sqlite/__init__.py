"""The SQLite store (the default): one database file in WAL mode, read by a pool of threads,
written by one thread that commits concurrent transactions together (durable group commit).

:mod:`.store` is the :class:`registry.store.base.Store` itself; :mod:`.threads` runs SQLite
off the event loop; :mod:`.records`, :mod:`.lookup` and :mod:`.reports` hold the SQL;
:mod:`registry.store.migrations` the schema.
"""

from registry.store.base import StoreClosed
from registry.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore", "StoreClosed"]
