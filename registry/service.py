"""The write service: the one way anything changes the registry.

Every write — HTTP, CLI, import, later the native admin interface and sync — runs
authorise → validate → (sign, later) → store in one transaction → notify (cache
invalidation) → acknowledge. Authorisation runs *inside* the store transaction on exactly the
records being changed, so a concurrent change of HS_ADMIN values can never be raced.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from registry import authz
from registry.auth import Authenticator
from registry.authz import Principal
from registry.bulk import BulkSpec, Prepared
from registry.cache.records import RecordCache
from registry.errors import (
    HandleError,
    HandleExists,
    HandleNotFound,
    InsufficientPermissions,
    InvalidValue,
    NotResponsible,
    ValueExists,
    ValuesNotFound,
)
from registry.model import admin as adm
from registry.model.identifiers import (
    Identifier,
    handle_key,
    is_within,
    prefix_handle,
    served_prefix,
)
from registry.model.values import (
    HS_ADMIN,
    HS_SECKEY,
    MAX_VALUES,
    Value,
    check_unique,
    restored,
    stamped,
    type_key,
)
from registry.reporting import reports_for
from registry.secrets import Sealer, secrets_equal
from registry.signer import RecordSigner
from registry.store.base import (
    Change,
    Delete,
    Encoded,
    Mutation,
    Put,
    PutEncoded,
    Record,
    Store,
)

WriteHook = Callable[[Sequence[str]], Awaitable[None]]
R = TypeVar("R")
STATS_SECONDS = 300  # default statistics interval


@dataclass(frozen=True, slots=True)
class WriteResult:
    handle: str
    created: bool  # nothing existed before (HTTP 201)


@dataclass(frozen=True, slots=True)
class ImportResult:
    created: int = 0
    replaced: int = 0
    unchanged: int = 0


class ImportItemError(HandleError):
    """Item ``position`` of an import batch failed (``error``); nothing of the batch was
    written."""

    def __init__(self, position: int, error: HandleError) -> None:
        super().__init__(error.message)
        self.position = position
        self.error = error
        self.response_code = error.response_code


def _right_for(old: Value | None, new: Value | None) -> int:
    admin = (old is not None and old.type == HS_ADMIN) or (new is not None and new.type == HS_ADMIN)
    if old is None:
        return adm.ADD_ADMIN if admin else adm.ADD_VALUE
    if new is None:
        return adm.REMOVE_ADMIN if admin else adm.REMOVE_VALUE
    return adm.MODIFY_ADMIN if admin else adm.MODIFY_VALUE


def _unchanged(new: Sequence[Value], old: Sequence[Value | None]) -> bool:
    """``new`` is ``old``, value for value (:meth:`Registry._prepare` returns the stored value
    itself for one written unchanged)."""
    return len(new) == len(old) and all(a is b for a, b in zip(new, old, strict=True))


def not_allocated(prefix: str) -> str:
    return f"Prefix {prefix} is not allocated on this node"


_VALUE_RIGHTS = (
    adm.ADD_VALUE,
    adm.MODIFY_VALUE,
    adm.REMOVE_VALUE,
    adm.ADD_ADMIN,
    adm.MODIFY_ADMIN,
    adm.REMOVE_ADMIN,
)


@dataclass(frozen=True, slots=True)
class _Access:
    """What the caller may do to one handle, worked out once per write (``rights`` None: the
    trusted local operator, who may do anything).

    A write is authorised from the request and the *shape* of the record (which indexes exist
    and which are HS_ADMIN), never from what the values hold: a check that depends on the
    content answers differently for a right and a wrong guess of it.
    """

    ident: Identifier
    caller: str  # the identity, for messages
    rights: authz.Rights | None

    def require(self, right: int) -> None:
        if self.rights is not None and not self.rights.may(right):
            raise InsufficientPermissions(
                f"{self.caller} may not {adm.RIGHT_NAMES[right]} on {self.ident.text}"
            )

    def require_some_value_right(self) -> None:
        """Refuse, with the same answer whatever the record holds, a caller who may change
        none of its values (so a refusal does not even tell which indexes exist)."""
        if self.rights is not None and not any(self.rights.may(r) for r in _VALUE_RIGHTS):
            raise InsufficientPermissions(
                f"{self.caller} may not change the values of {self.ident.text}"
            )


class Registry:
    """Reads and writes of the registry for one node (its homed prefixes)."""

    def __init__(
        self,
        store: Store,
        sealer: Sealer,
        homed: Sequence[str],
        records: RecordCache,
        clock: Callable[[], float] = time.time,
        signer: RecordSigner | None = None,
        stats_seconds: int = STATS_SECONDS,
    ) -> None:
        self.store = store
        self.stats_seconds = stats_seconds
        self.records = records
        self.signer = signer
        self.sealer = sealer
        self.homed_keys = tuple(handle_key(p) for p in homed)
        self._homed: dict[str, bool] = {}
        self.clock = clock
        self.write_hooks: list[WriteHook] = [records.invalidate]
        self.authenticator = Authenticator(store, sealer, self._record)

    # ------------------------------------------------------------ reading

    def is_homed(self, ident: Identifier) -> bool:
        key = handle_key(served_prefix(ident)) if ident.is_prefix_handle else ident.prefix_key
        homed = self._homed.get(key)
        if homed is None:  # a bounded memo: this runs on every resolution
            if len(self._homed) > 10_000:
                self._homed.clear()
            homed = self._homed[key] = any(is_within(key, h) for h in self.homed_keys)
        return homed

    def require_homed(self, ident: Identifier) -> None:
        if not self.is_homed(ident):
            raise NotResponsible()

    async def authority(self, ident: Identifier) -> dict[str, Record]:
        return await self.store.get_many(authz.authority_keys(ident))

    async def _record(self, key: str) -> Record | None:
        return (await self.records.get(key)).record

    def secret_of(self, value: Value) -> bytes:
        return self.sealer.unseal(value.data)

    # ------------------------------------------------------------ helpers

    def _now(self) -> int:
        return int(self.clock())

    def _prepare(self, v: Value, now: int, old: Value | None, imported: bool) -> Value:
        """Seal secrets and stamp the value; an unchanged value keeps the stored one."""
        if type_key(v.type) == HS_SECKEY:
            if imported and Sealer.is_sealed(v.data):
                try:
                    plain = self.sealer.unseal(v.data)
                except Exception:
                    raise InvalidValue(
                        f"HS_SECKEY value {v.index} is sealed under another "
                        "node's key (copy secrets.key with the export)"
                    ) from None
            else:
                plain = v.data
            if old is not None and type_key(old.type) == HS_SECKEY:
                same = replace(v, data=old.data, timestamp=old.timestamp)
                if same.same_content(old) and secrets_equal(self.sealer.unseal(old.data), plain):
                    return old
            v = replace(v, data=self.sealer.seal(plain))
        elif old is not None and v.same_content(old):
            return old
        return restored(v, now) if imported else stamped(v, now)

    # The node's own values (signatures, its keys) are not the client's: they are kept out of
    # diffs and rights checks, and every stored record is re-signed as it is written.

    def _client(self, key: str, values: Sequence[Value]) -> list[Value]:
        if self.signer is None:
            return list(values)
        self.signer.refresh()
        return self.signer.client_values(key, values)

    def _user(self, key: str, values: Sequence[Value]) -> list[Value]:
        return list(values) if self.signer is None else self.signer.user_part(key, values)

    def _system(self, key: str, values: Sequence[Value]) -> list[Value]:
        return [] if self.signer is None else self.signer.system_part(key, values)

    def _seal(self, handle: str, values: Sequence[Value], now: int) -> tuple[Value, ...]:
        if self.signer is None:
            return tuple(values)
        return self.signer.sign(handle, values, now)

    def _access(
        self, ident: Identifier, records: Mapping[str, Record], who: Principal | None
    ) -> _Access:
        if who is None:  # the trusted local operator (CLI with access to the data directory)
            return _Access(ident, "the operator", None)
        return _Access(ident, str(who.identity), authz.rights_over(ident, records, who))

    def _check_prefix_allocated(self, ident: Identifier, records: Mapping[str, object]) -> None:
        if ident.is_prefix_handle:
            return
        if handle_key(prefix_handle(ident.prefix)) not in records:
            raise NotResponsible(not_allocated(ident.prefix))

    async def _principal(self, ident: Identifier, who: Principal | None) -> Principal | None:
        if who is None:
            return None
        return await self.authenticator.with_groups(who, await self.authority(ident))

    async def _write(self, keys: Sequence[str], mutation: Mutation[R]) -> R:
        """``store.transact`` with the write's reports (outbox items, statistics) added to
        its changes, so they commit or roll back together; then the write hooks (cache
        invalidation) for the records changed. A mutation that changes nothing reports
        nothing and notifies nobody."""
        touched: list[str] = []

        def reported(records: Mapping[str, Record]) -> tuple[Sequence[Change], R]:
            changes, result = mutation(records)
            written = (c.key for c in changes if isinstance(c, Put | PutEncoded | Delete))
            touched[:] = dict.fromkeys(written)
            extra = reports_for(records, changes, self.homed_keys, self._now(), self.stats_seconds)
            return [*changes, *extra], result

        result = await self.store.transact(keys, reported)
        if touched:
            await self._notify(touched)
        return result

    async def _notify(self, keys: Sequence[str]) -> None:
        for hook in self.write_hooks:
            await hook(keys)

    # ------------------------------------------------------------ writes

    async def put_record(
        self,
        ident: Identifier,
        values: Sequence[Value],
        *,
        overwrite: bool = True,
        who: Principal | None = None,
    ) -> WriteResult:
        """Create ``ident`` with ``values`` or (``overwrite``) replace its values whole."""
        self.require_homed(ident)
        check_unique(values)
        values = self._client(ident.key, values)
        who = await self._principal(ident, who)
        now = self._now()

        def mutate(records: Mapping[str, Record]) -> tuple[list[Change], WriteResult]:
            existing = records.get(ident.key)
            access = self._access(ident, records, who)
            if existing is None:
                self._check_prefix_allocated(ident, records)
                access.require(adm.ADD_HANDLE)
                new = [self._prepare(v, now, None, False) for v in values]
                sealed = self._seal(ident.text, new, now)
                return [Put(ident.key, Record(ident.text, sealed))], WriteResult(ident.text, True)
            if not overwrite:
                raise HandleExists()
            access.require_some_value_right()
            current = self._user(ident.key, existing.values)
            olds = {v.index: v for v in current}
            # Every value named is authorised, changed or not, before any is compared.
            for v in values:
                access.require(_right_for(olds.get(v.index), v))
            kept = {v.index for v in values}
            for old in current:
                if old.index not in kept:
                    access.require(_right_for(old, None))
            new = [self._prepare(v, now, olds.get(v.index), False) for v in values]
            if _unchanged(new, current):
                return [], WriteResult(ident.text, False)
            new += self._system(ident.key, existing.values)
            record = Record(existing.handle, self._seal(existing.handle, new, now))
            return [Put(ident.key, record)], WriteResult(ident.text, False)

        return await self._write(authz.authority_keys(ident), mutate)

    async def put_values(
        self,
        ident: Identifier,
        values: Sequence[Value],
        *,
        overwrite: bool = True,
        who: Principal | None = None,
    ) -> WriteResult:
        """Add or replace just ``values`` in an existing record (the ``?index=`` form)."""
        self.require_homed(ident)
        check_unique(values)
        values = self._client(ident.key, values)
        who = await self._principal(ident, who)
        now = self._now()

        def mutate(records: Mapping[str, Record]) -> tuple[list[Change], WriteResult]:
            existing = records.get(ident.key)
            if existing is None:
                raise HandleNotFound()
            access = self._access(ident, records, who)
            access.require_some_value_right()
            by_index = {v.index: v for v in self._user(ident.key, existing.values)}
            # Every value named is authorised, changed or not, before the record tells
            # anything more (an index conflict, whether a value is the same).
            for v in values:
                access.require(_right_for(by_index.get(v.index) if overwrite else None, v))
            olds = [by_index.get(v.index) for v in values]
            if not overwrite:
                taken = [v.index for v, old in zip(values, olds, strict=True) if old is not None]
                if taken:
                    raise ValueExists(f"Index conflict for {taken[0]}")
            new = [self._prepare(v, now, o, False) for v, o in zip(values, olds, strict=True)]
            if _unchanged(new, olds):
                return [], WriteResult(ident.text, False)
            created = all(old is None for old in olds)
            by_index.update((v.index, v) for v in new)
            if len(by_index) > MAX_VALUES:
                raise InvalidValue(f"A record holds at most {MAX_VALUES} values")
            # The reference re-sorts the whole record by index after an add.
            merged = [by_index[i] for i in sorted(by_index)]
            merged += self._system(ident.key, existing.values)
            sealed = self._seal(existing.handle, merged, now)
            return [Put(ident.key, Record(existing.handle, sealed))], WriteResult(
                ident.text, created
            )

        return await self._write(authz.authority_keys(ident), mutate)

    async def delete_record(self, ident: Identifier, who: Principal | None = None) -> None:
        if not self.is_homed(ident):
            raise HandleNotFound()  # the reference answers 404 here, not 301
        who = await self._principal(ident, who)

        def mutate(records: Mapping[str, Record]) -> tuple[list[Change], None]:
            if ident.key not in records:
                raise HandleNotFound()
            self._access(ident, records, who).require(adm.DELETE_HANDLE)
            return [Delete(ident.key)], None

        await self._write(authz.authority_keys(ident), mutate)

    async def delete_values(
        self, ident: Identifier, indexes: Sequence[int], who: Principal | None = None
    ) -> None:
        """Remove those values, all or nothing."""
        if not self.is_homed(ident):
            raise HandleNotFound()
        who = await self._principal(ident, who)
        wanted = set(indexes)
        now = self._now()
        if self.signer is not None:
            self.signer.refresh()

        def mutate(records: Mapping[str, Record]) -> tuple[list[Change], None]:
            existing = records.get(ident.key)
            if existing is None:
                raise HandleNotFound()
            access = self._access(ident, records, who)
            access.require_some_value_right()
            current = self._user(ident.key, existing.values)
            present = {v.index: v for v in current}
            # Rights first: only then may the answer tell which indexes exist.
            for i in sorted(wanted & present.keys()):
                access.require(_right_for(present[i], None))
            if wanted - present.keys():
                raise ValuesNotFound()
            if not wanted:
                return [], None
            kept = [v for v in current if v.index not in wanted]
            kept += self._system(ident.key, existing.values)
            sealed = self._seal(existing.handle, kept, now)
            return [Put(ident.key, Record(existing.handle, sealed))], None

        await self._write(authz.authority_keys(ident), mutate)

    async def import_records(
        self, items: Sequence[tuple[Identifier, Sequence[Value]]]
    ) -> ImportResult:
        """Create or replace many records in one transaction (trusted: the local operator).

        Idempotent: re-importing the same content changes nothing (timestamps included), so
        a batch retried after a timeout counts as success.
        """
        for ident, values in items:
            self.require_homed(ident)
            check_unique(values)
        if self.signer is not None:
            self.signer.refresh()
        # An export carries signatures and, in the prefix handle, keys: ours are
        # regenerated, so they are not part of what is compared or stored from the file.
        items = [(ident, self._user(ident.key, values)) for ident, values in items]
        keys: set[str] = set()
        for ident, _ in items:
            keys.update(authz.authority_keys(ident))
        now = self._now()

        def mutate(records: Mapping[str, Record]) -> tuple[list[Change], ImportResult]:
            view: dict[str, Record | Encoded] = dict(records)
            changes: list[Change] = []
            counts = [0, 0, 0]
            for ident, values in items:
                self._import_one(view, ident, values, now, changes, counts)
            return changes, ImportResult(*counts)

        return await self._write(sorted(keys), mutate)

    def _import_one(
        self,
        view: dict[str, Record | Encoded],
        ident: Identifier,
        values: Sequence[Value],
        now: int,
        changes: list[Change],
        counts: list[int],
    ) -> None:
        """Import one record (its client values) inside the transaction: append its change,
        count it as created, replaced or unchanged; ``view`` shows the records as changed so
        far (later items see earlier ones: a prefix, then its handles)."""
        existing = view.get(ident.key)
        if isinstance(existing, Encoded):
            existing = existing.record()
        if existing is None:
            self._check_prefix_allocated(ident, view)
            new = [self._prepare(v, now, None, True) for v in values]
            record = Record(ident.text, self._seal(ident.text, new, now))
            counts[0] += 1
        else:
            current = self._user(ident.key, existing.values)
            olds = {v.index: v for v in current}
            new = [self._prepare(v, now, olds.get(v.index), True) for v in values]
            if _unchanged(new, current):
                counts[2] += 1
                return
            new += self._system(ident.key, existing.values)
            record = Record(existing.handle, self._seal(existing.handle, new, now))
            counts[1] += 1
        view[ident.key] = record
        changes.append(Put(ident.key, record))

    def bulk_spec(self) -> BulkSpec:
        """What :mod:`registry.bulk` needs to prepare import batches as this registry writes
        records (with the current signing key)."""
        if self.signer is None:
            return BulkSpec(self.homed_keys, None)
        self.signer.refresh()
        return BulkSpec(self.homed_keys, self.signer.node.spec())

    async def import_prepared(self, batch: Prepared) -> ImportResult:
        """:meth:`import_records` for a batch that :mod:`registry.bulk` made ready (parsed,
        checked, signed and encoded ahead, in worker processes): new records are written as
        prepared, after the same checks; every other one — existing already, holding
        secrets, or signed with a key that is no longer the current one — is imported here
        exactly as :meth:`import_records` does. A failing item raises
        :class:`ImportItemError`; nothing of the batch is written then."""
        assert batch.error is None, "a batch with a bad line is not imported"
        assert len(batch.lines) == len(batch.items), "the batch's lines are needed"
        if self.signer is not None:
            self.signer.refresh()
        current = None if self.signer is None else self.signer.issuer
        ahead = batch.issuer == current  # else the key was rotated since: sign again here
        now = batch.now
        prefixes = {i.prefix for i in batch.items if i.prefix is not None}
        prefix_keys = {p: handle_key(prefix_handle(p)) for p in prefixes}
        keys = {i.key for i in batch.items} | set(prefix_keys.values())

        def mutate(records: Mapping[str, Record]) -> tuple[list[Change], ImportResult]:
            view: dict[str, Record | Encoded] = dict(records)
            changes: list[Change] = []
            counts = [0, 0, 0]
            for position, item in enumerate(batch.items):
                try:
                    if ahead and item.vals is not None and item.key not in view:
                        if item.prefix is not None and prefix_keys[item.prefix] not in view:
                            raise NotResponsible(not_allocated(item.prefix))
                        encoded = Encoded(item.handle, item.vals, item.lookup)
                        view[item.key] = encoded
                        changes.append(PutEncoded(item.key, encoded))
                        counts[0] += 1
                    else:
                        ident, values = batch.parsed(position)
                        values = self._user(ident.key, values)
                        self._import_one(view, ident, values, now, changes, counts)
                except HandleError as exc:
                    raise ImportItemError(position, exc) from None
            return changes, ImportResult(*counts)

        return await self._write(sorted(keys), mutate)

    async def resign(self, keys: Sequence[str]) -> int:
        """Sign these records afresh with the current key (rotation); returns how many."""
        if self.signer is None or not keys:
            return 0
        self.signer.refresh()
        now = self._now()

        def mutate(records: Mapping[str, Record]) -> tuple[list[Change], int]:
            changes: list[Change] = []
            for key, record in records.items():
                values = self._user(key, record.values) + self._system(key, record.values)
                sealed = self._seal(record.handle, values, now)
                changes.append(Put(key, Record(record.handle, sealed)))
            return changes, len(changes)

        count = await self.store.transact(list(keys), mutate)
        await self._notify(keys)
        return count

    async def publish_keys(self, values: Sequence[Value]) -> None:
        """Put the node's HS_PUBKEY/HS_CERT values into its prefix handle (replacing the
        previous set) and re-sign it."""
        assert self.signer is not None
        self.signer.refresh()
        key = self.signer.key_handle
        now = self._now()

        def mutate(records: Mapping[str, Record]) -> tuple[list[Change], None]:
            existing = records.get(key)
            if existing is None:
                raise HandleNotFound("The node's prefix handle does not exist")
            user = self._user(key, existing.values)
            taken = {v.index for v in user}
            clash = [v.index for v in values if v.index in taken]
            if clash:
                raise InvalidValue(f"Indexes {clash} of {existing.handle} are taken")
            sealed = self._seal(existing.handle, [*user, *values], now)
            return [Put(key, Record(existing.handle, sealed))], None

        await self.store.transact([key], mutate)
        await self._notify([key])
