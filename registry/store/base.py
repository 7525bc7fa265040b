"""The one async store interface every backend implements (SQLite, PostgreSQL).

Records are addressed by *key* (:func:`registry.model.identifiers.handle_key`). Every write
goes through :meth:`Store.transact`: the store reads the named records, hands them to a pure
function that decides the changes (authorisation and validation included, so they see exactly
the state they change), and applies those changes in one transaction. That makes every
request and every import batch atomic and serialisable without locks in the callers.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol, TypeVar, runtime_checkable

from registry.errors import STORE_UNAVAILABLE, ServerError
from registry.model.values import Value, type_key
from registry.model.wire import decode_values, encode_values
from registry.store.chain import Audit as Audit  # a change: re-exported with the others
from registry.store.chain import AuditEntry, AuditHead, AuditQuery

R = TypeVar("R")

# Values indexed for reverse lookup: text data up to this many bytes.
MAX_LOOKUP_BYTES = 1024

_type_key = lru_cache(maxsize=4096)(type_key)  # a bulk import folds the same few types


class StoreClosed(ServerError):
    """The store is not open (never opened, or closed)."""

    default_message = "Store is closed"


class StoreConfigError(ValueError):
    """The store location is unusable as given: it names no backend this node has, or the
    backend refuses it for a reason the operator must fix (the message says which)."""


class StoreUnavailable(ServerError):
    """The store's database server cannot be reached (connection refused or lost, server
    shutting down): a 503 the client may retry. A write that fails with it was not
    acknowledged; whether it was applied is unknown only when the message says so."""

    default_message = "The registry database is unavailable; try again"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, outcome=STORE_UNAVAILABLE)


class StoreDamaged(Exception):
    """The store's database is damaged, or is not a database of this backend at all. Not a
    HandleError: no request caused it, and the operator must hear of it (logged, as every
    server fault)."""


@dataclass(frozen=True, slots=True)
class Record:
    """A stored record: ``handle`` in the form it was first created, and its values in order."""

    handle: str
    values: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class Put:
    """Create or replace the record at ``key``, which must be the key of the record's handle
    (else the transaction fails with ValueError)."""

    key: str
    record: Record


@dataclass(frozen=True, slots=True)
class Encoded:
    """A record in the form stores write it: the wire encoding of its values and its
    reverse-lookup entries. Made ahead of the transaction when that saves work there (bulk
    import makes it in worker processes); :meth:`of` is the one definition."""

    handle: str
    vals: bytes  # registry.model.wire.encode_values(record.values)
    lookup: tuple[tuple[str, str], ...]  # lookup_entries(record.values)

    @classmethod
    def of(cls, record: Record) -> Encoded:
        return cls.from_values(record.handle, record.values)

    @classmethod
    def from_values(
        cls, handle: str, values: Sequence[Value], vals: bytes | None = None
    ) -> Encoded:
        """``vals``: the values' wire encoding, when the caller has it already."""
        if vals is None:
            vals = encode_values(values)
        return cls(handle, vals, tuple(lookup_entries(values)))

    def record(self) -> Record:
        return Record(self.handle, decode_values(self.vals))


@dataclass(frozen=True, slots=True)
class PutEncoded:
    """:class:`Put` with the record already encoded."""

    key: str
    encoded: Encoded


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete the record at ``key`` (a key without a record is left as it is)."""

    key: str


@dataclass(frozen=True, slots=True)
class Report:
    """Append an item to the outbox: it is reported to the top-level node once committed, and
    only then (it commits or rolls back with the change that caused it)."""

    prefix: str
    kind: str
    body: Mapping[str, Any]  # JSON-serialisable; the sender adds the item's id


@dataclass(frozen=True, slots=True)
class Tally:
    """Add to the statistics of ``prefix`` for the interval ``[start, start + seconds)``."""

    prefix: str
    start: int
    seconds: int
    registrations: int = 0
    updates: int = 0
    deletions: int = 0
    resolutions: int = 0


Change = Put | PutEncoded | Delete | Report | Tally | Audit

STAT_FIELDS = ("registrations", "updates", "deletions", "resolutions")
# Seconds reported statistics rows are kept (totals then cover this long a period).
STATS_RETENTION = 400 * 86400


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A committed, not yet delivered report; ``seq`` orders them and is never reused."""

    seq: int
    prefix: str
    kind: str
    body: dict[str, Any]
    created: float


@dataclass(frozen=True, slots=True)
class OutboxSummary:
    pending: int
    oldest: float | None  # creation time of the oldest pending item
    dead: int  # items the top-level refused for good (kept for the operator)


def key_hash(key: str) -> int:
    """The CRC-32 by which a written key is announced to other hosts (and by which their
    generation tables pick its slot): stable across processes and hosts."""
    return zlib.crc32(key.encode("utf-8", "surrogatepass"))


def lookup_entries(values: Sequence[Value]) -> Iterator[tuple[str, str]]:
    """(type key, text) of the values reverse lookup can find: not HS_ types, short UTF-8."""
    for value in values:
        vtype = _type_key(value.type)
        if vtype.startswith("HS_") or len(value.data) > MAX_LOOKUP_BYTES:
            continue
        try:
            text = value.data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        yield vtype, text


# A mutation gets the current records (absent keys are missing from the mapping) and returns
# the changes to apply plus a result for the caller. It runs inside the store's transaction,
# possibly on a store thread: it must be pure and quick. Raising aborts the transaction.
Mutation = Callable[[Mapping[str, Record]], tuple[Sequence[Change], R]]


class Store(Protocol):
    """What the node needs from a registry store. All methods are safe to call concurrently;
    those that reach the data raise :class:`StoreClosed` on a store that is not open."""

    async def open(self) -> None:
        """Open connections and apply pending schema migrations."""

    async def close(self) -> None:
        """Finish in-flight work and release every resource. Idempotent; a closed store
        is not opened again (make a new one)."""

    async def schema_version(self) -> int:
        """The version of the store's schema (its backend's own numbering): after
        :meth:`open`, the newest this code knows."""

    async def get(self, key: str) -> Record | None:
        """The record at ``key``, or None."""

    async def get_many(self, keys: Sequence[str]) -> dict[str, Record]:
        """Records for those keys that exist."""

    async def transact(self, keys: Sequence[str], mutation: Mutation[R]) -> R:
        """Read ``keys``, run ``mutation`` on them and apply its changes atomically and durably.

        When this returns, the changes are committed and survive a crash of the process.
        When the mutation raises, or a change cannot be applied (a :class:`Put` under a
        foreign key: ValueError; not a change: TypeError), nothing of it is applied and the
        error is raised here; concurrent transactions are not affected.
        """

    async def list_handles(
        self, prefix_key: str, offset: int = 0, limit: int | None = None
    ) -> tuple[int, list[str]]:
        """(total count, handles) of the records whose prefix key is ``prefix_key``, ordered
        by key; ``limit`` None means all from ``offset``."""

    async def iter_handles(
        self, prefix_key: str, after_key: str | None, limit: int
    ) -> list[tuple[str, str]]:
        """(key, handle) of up to ``limit`` records with prefix key ``prefix_key`` whose key
        sorts after ``after_key``, in key order: keyset paging that stays cheap however deep
        it goes (for streaming a whole prefix)."""

    async def reverse_lookup(
        self, type_key: str, pattern: str, limit: int, within: Sequence[str] | None = None
    ) -> list[str]:
        """Handles having a value of type ``type_key`` (upper-cased) whose text data matches
        ``pattern`` (``*`` matches any run of characters, case-sensitive), ordered by handle
        key. ``within``: only handles whose prefix key equals or is derived from one of these
        prefix keys (None: no restriction)."""

    async def scan(self, after_key: str | None, limit: int) -> list[tuple[str, Record]]:
        """Records in key order, starting after ``after_key`` (for export)."""

    async def count(self) -> int:
        """The number of records."""

    # -- sync: outbox and statistics -------------------------------------------------------

    async def outbox_peek(self, limit: int) -> list[OutboxItem]:
        """The oldest ``limit`` pending outbox items, in ``seq`` order."""

    async def outbox_done(self, delivered: Sequence[int], dead: Mapping[int, str]) -> None:
        """Remove delivered items; move ``dead`` ones (seq → reason) aside."""

    async def outbox_summary(self) -> OutboxSummary:
        """Pending and dead item counts, and the oldest pending item's age."""

    async def stats_close(self, before: int) -> int:
        """Turn every statistics interval that ended at or before ``before`` and is not yet
        reported into an outbox item, in one transaction; returns how many."""

    async def stats_totals(self) -> dict[str, dict[str, int]]:
        """Counts per prefix over all intervals kept (reported or not; reported ones are
        kept for 400 days)."""

    # -- the audit log (registry/store/chain.py) -------------------------------------------

    async def audit_head(self) -> AuditHead:
        """The newest entry's number and hash, and the anchor the log starts from."""

    async def audit_entries(self, query: AuditQuery, after: int, limit: int) -> list[AuditEntry]:
        """Up to ``limit`` entries matching ``query`` numbered after ``after``, in order."""

    async def audit_prune(self, before: float, limit: int) -> int:
        """Delete up to ``limit`` of the oldest entries made before ``before``, in one
        transaction, keeping the last one's number and hash as the anchor; how many."""


class CacheListener(Protocol):
    """What a serving process's cache does with news from a store several hosts share."""

    def invalidate(self, hashes: Sequence[int] | None) -> None:
        """Another host wrote the keys with these hashes (:func:`key_hash`; None: too
        many to name)."""

    def coherent(self, yes: bool) -> None:
        """The cache may be used (the process hears every other host's writes), or must
        not be any more."""


class WritePositions(Protocol):
    """How far a host has heard of writes: the highest write-ahead-log position (an LSN, as
    an integer) of every write announced to any of its processes. A read replica may answer
    for the host only once it has replayed that far (see :mod:`registry.store.postgres.replicas`).

    It is advanced *before* the host's generations are bumped for the writes it covers, so
    that whoever sees a bump sees the position too (one table per host, shared by its
    processes: :class:`registry.cache.generations.GenerationTable`)."""

    def advance(self, position: int) -> None:
        """Writes up to ``position`` have been announced (the position only grows)."""

    def position(self) -> int:
        """The highest position announced so far (0: none)."""


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    """A read replica as last seen: ``up`` when it answered and is a standby; lag behind
    the primary in bytes of write-ahead log and in seconds (None: not known)."""

    name: str  # where it is, without a password
    up: bool
    lag_bytes: int | None
    lag_seconds: float | None
    reads: int  # reads it answered
    skipped: int  # reads that could have gone to it, sent to the primary instead


class Lease(Protocol):
    """A role one process at a time holds (e.g. sending the outbox); lost with the process."""

    async def try_acquire(self) -> bool:
        """Whether this process holds the role now (kept if held, taken if free)."""

    async def release(self) -> None:
        """Give the role up."""


@runtime_checkable
class SharedStore(Protocol):
    """A store that several hosts serve at once (PostgreSQL): each host's cache must hear
    the others' writes. Until :meth:`share` is called the store tells nobody of its writes."""

    async def share(
        self,
        host: int,
        lease: float,
        listener: CacheListener | None,
        positions: WritePositions | None = None,
    ) -> None:
        """Join the hosts: every write of this store is acknowledged only once every other
        host has applied it to its cache (or is known not to use its cache). ``host``: the
        id of this host's generation table; ``lease``: seconds this process may use its
        cache without hearing from the database; ``listener``: its cache (None: this
        process never caches, it only writes); ``positions``: the host's record of the
        writes it heard of, which this process's writes advance too (None: it reads
        from no replica)."""

    def lease(self, name: str) -> Lease:
        """The role ``name`` among every process of every host of this store."""

    def replicas(self) -> list[ReplicaStatus]:
        """The read replicas this process may read from, as last seen (empty: none)."""


def successor(text: str) -> str | None:
    """The smallest string greater than every string starting with ``text`` (None: none), in
    code point order: the order of SQLite's TEXT (UTF-8 bytes) and of PostgreSQL's
    ``COLLATE "C"``, so a key range ``[text, successor(text))`` holds exactly the keys
    starting with ``text``. Surrogates cannot be stored: they are skipped."""
    while text:
        code = ord(text[-1])
        if code < 0x10FFFF:
            code += 1
            if 0xD800 <= code <= 0xDFFF:
                code = 0xE000
            return text[:-1] + chr(code)
        text = text[:-1]
    return None


async def records_starting(
    store: Store, prefix_key: str, start: str, chunk: int = 500
) -> AsyncIterator[Record]:
    """The records of prefix ``prefix_key`` whose keys start with ``start`` (a key of that
    prefix, e.g. ``88.118/TEMPLATE.``), in key order, ``chunk`` at a time (keyset paging)."""
    after = start
    while True:
        rows = [
            r for r in await store.iter_handles(prefix_key, after, chunk) if r[0].startswith(start)
        ]
        if not rows:
            return
        found = await store.get_many([k for k, _ in rows])
        for key, _ in rows:
            record = found.get(key)
            if record is not None:
                yield record
        after = rows[-1][0]
