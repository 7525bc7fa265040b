"""What the PostgreSQL store's failures mean to the node: the server out of reach is a 503
(:class:`StoreUnavailable`), a damaged database :class:`StoreDamaged`, a location the
operator must fix :class:`StoreConfigError`; anything else is a bug and stays what it is.

Messages name the database by its URL without the password: they are logged and shown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from registry.store.base import StoreConfigError, StoreDamaged, StoreUnavailable

log = logging.getLogger("idnode.store")

# Transient conflicts between concurrent transactions: the transaction is retried whole
# (mutations are pure, so running one again is safe).
RETRYABLE = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)

# The server cannot be reached or is going away: the connection is lost, refused, or
# shutting down; too many connections; a read-only (standby) server under a write.
_UNAVAILABLE = (
    OSError,  # ConnectionError included: refused, reset
    asyncio.TimeoutError,
    asyncpg.exceptions.InterfaceError,  # "connection is closed", "pool is closing"
    # A session the server ended while it sat idle in the pool is found in a state no
    # statement can run from ("another operation is in progress").
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.PostgresConnectionError,  # 08xxx
    asyncpg.exceptions.OperatorInterventionError,  # 57xxx: admin shutdown, cancelled
    asyncpg.exceptions.InsufficientResourcesError,  # 53xxx: too many connections, disk full
    asyncpg.exceptions.ReadOnlySQLTransactionError,  # 25006: a write reached a standby
    asyncpg.exceptions.CannotConnectNowError,
)
_DAMAGED = (asyncpg.exceptions.DataCorruptedError, asyncpg.exceptions.IndexCorruptedError)
# The database or its role cannot be used as configured.
_CONFIG = (
    asyncpg.exceptions.InvalidCatalogNameError,  # no such database
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,  # no such role, bad password
    asyncpg.exceptions.InsufficientPrivilegeError,
    asyncpg.exceptions.UndefinedFileError,  # e.g. pg_trgm not installed on the server
)


def redact(dsn: str) -> str:
    """``dsn`` without its password (for messages and logs)."""
    # Here, not from the factory, which imports this package.
    parts = None
    try:
        parts = urlsplit(dsn)
        if parts.password is None:
            return dsn
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    except ValueError:  # not a URL we can take apart: say nothing of it
        return "postgresql://..."
    return urlunsplit(parts._replace(netloc=netloc))


def is_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, _UNAVAILABLE)


class _Throttled:
    """Logs an outage once per ``every`` seconds, not once per request that meets it."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self._next = 0.0

    def __call__(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.every
            log.error(message, *args)


_log_outage = _Throttled()


def translate(
    exc: BaseException, dsn: str, *, committing: bool = False, opening: bool = False
) -> BaseException:
    """The error to raise for ``exc`` (a failure talking to the database at ``dsn``).
    ``committing``: it happened while the transaction was committing, so whether it was
    applied is unknown (said in the message). ``opening``: while opening the store, where
    a database or role that cannot be used is the operator's to fix."""
    where = redact(dsn)
    if isinstance(exc, _DAMAGED):
        damaged = StoreDamaged(
            f"{where} reports damaged data ({exc}): restore it from a backup or a replica"
        )
        damaged.__cause__ = exc
        return damaged
    if opening and isinstance(exc, _CONFIG):
        return StoreConfigError(f"{where}: {exc}")
    if opening and isinstance(exc, _UNAVAILABLE):
        return StoreUnavailable(f"Cannot reach the registry database {where}: {exc}")
    if not isinstance(exc, _UNAVAILABLE + _CONFIG):
        return exc
    _log_outage("registry database %s: %s", where, exc or type(exc).__name__)
    if committing:
        return StoreUnavailable(
            "The registry database connection was lost while committing; the write may "
            "or may not have been applied: read it back before retrying"
        )
    return StoreUnavailable()
