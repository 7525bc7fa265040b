"""The PostgreSQL store: records in a database server that several serving hosts share.

:mod:`.store` is the :class:`registry.store.base.Store` itself; :mod:`.plan` turns a
mutation's changes into writes (off the event loop), :mod:`.apply` writes them, :mod:`.lookup`
and :mod:`.reports` hold the rest of the SQL, :mod:`.schema` the versioned schema and
:mod:`.errors` what failures mean to the node. :mod:`.channel` keeps several hosts' caches
exact (LISTEN/NOTIFY and leases); :mod:`.replicas` sends resolution reads to read replicas
that have every write the host heard of; :mod:`.lease` gives one process of all hosts a role.
"""

from registry.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
