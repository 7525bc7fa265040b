"""The write service: the one way anything changes the registry.

Every write — HTTP, CLI, import, later the native admin interface and sync — runs
authorise → validate → sign → store in one transaction → notify (cache invalidation) →
acknowledge. Authorisation runs *inside* the store transaction on exactly the records being
changed, so a concurrent change of HS_ADMIN values can never be raced. :class:`Registry` is
the facade every caller uses; the parts it is made of, one job each, are in
:mod:`registry.writes`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from registry import authz
from registry.auth import Authenticator
from registry.authz import Principal
from registry.bulk import BulkSpec, Prepared
from registry.cache.records import RecordCache
from registry.errors import HandleNotFound, NotResponsible
from registry.model.identifiers import Identifier, handle_key, is_within, served_prefix
from registry.model.values import Value, check_unique
from registry.reporting import reports_for
from registry.secrets import Sealer
from registry.signer import RecordSigner
from registry.store.base import (
    Change,
    Delete,
    Mutation,
    Put,
    PutEncoded,
    Record,
    Store,
    StoreUnavailable,
)
from registry.writes import edits, imports, keys
from registry.writes.edits import WriteResult
from registry.writes.imports import ImportResult
from registry.writes.values import Preparer

WriteHook = Callable[[Sequence[str]], Awaitable[None]]
R = TypeVar("R")
STATS_SECONDS = 300  # default statistics interval


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
        self.sealer = sealer
        self.prep = Preparer(sealer, signer)
        self.homed_keys = tuple(handle_key(p) for p in homed)
        self._homed: dict[str, bool] = {}
        self.clock = clock
        self.write_hooks: list[WriteHook] = [records.invalidate]
        self.authenticator = Authenticator(store, sealer, self._record)

    @property
    def signer(self) -> RecordSigner | None:
        """What signs the records written (None: they are stored unsigned)."""
        return self.prep.signer

    @signer.setter
    def signer(self, signer: RecordSigner | None) -> None:
        self.prep.signer = signer

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

    # ------------------------------------------------------------ the write path

    def _now(self) -> int:
        return int(self.clock())

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

        try:
            result = await self.store.transact(keys, reported)
        except StoreUnavailable:
            # Perhaps committed (the connection lost while committing): what it may have
            # replaced is dropped all the same (a needless invalidation costs one miss).
            if touched:
                await self._notify(touched)
            raise
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
        values = self.prep.client(ident.key, values)
        who = await self._principal(ident, who)
        mutate = edits.put_record(ident, values, overwrite, who, self._now(), self.prep)
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
        values = self.prep.client(ident.key, values)
        who = await self._principal(ident, who)
        mutate = edits.put_values(ident, values, overwrite, who, self._now(), self.prep)
        return await self._write(authz.authority_keys(ident), mutate)

    async def delete_record(self, ident: Identifier, who: Principal | None = None) -> None:
        if not self.is_homed(ident):
            raise HandleNotFound()  # the reference answers 404 here, not 301
        who = await self._principal(ident, who)
        await self._write(authz.authority_keys(ident), edits.delete_record(ident, who))

    async def delete_values(
        self, ident: Identifier, indexes: Sequence[int], who: Principal | None = None
    ) -> None:
        """Remove those values, all or nothing."""
        if not self.is_homed(ident):
            raise HandleNotFound()
        who = await self._principal(ident, who)
        now = self._now()
        self.prep.refresh()
        mutate = edits.delete_values(ident, indexes, who, now, self.prep)
        await self._write(authz.authority_keys(ident), mutate)

    # ------------------------------------------------------------ imports

    async def import_records(
        self, items: Sequence[tuple[Identifier, Sequence[Value]]]
    ) -> ImportResult:
        """Create or replace many records in one transaction (trusted: the local operator;
        idempotent, :mod:`registry.writes.imports`)."""
        for ident, values in items:
            self.require_homed(ident)
            check_unique(values)
        self.prep.refresh()
        # An export carries signatures and, in the prefix handle, keys: ours are
        # regenerated, so they are not part of what is compared or stored from the file.
        items = [(ident, self.prep.user(ident.key, values)) for ident, values in items]
        keys_read: set[str] = set()
        for ident, _ in items:
            keys_read.update(authz.authority_keys(ident))
        mutate = imports.import_records(items, self._now(), self.prep)
        return await self._write(sorted(keys_read), mutate)

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
        :class:`~registry.writes.imports.ImportItemError`; nothing of the batch is written
        then."""
        assert batch.error is None, "a batch with a bad line is not imported"
        assert len(batch.lines) == len(batch.items), "the batch's lines are needed"
        self.prep.refresh()
        current = None if self.signer is None else self.signer.issuer
        ahead = batch.issuer == current  # else the key was rotated since: sign again here
        keys_read, prefix_keys = imports.prepared_keys(batch)
        mutate = imports.import_prepared(batch, ahead, prefix_keys, self.prep)
        return await self._write(keys_read, mutate)

    # ------------------------------------------------------------ the node's keys

    async def resign(self, keys_to_sign: Sequence[str]) -> int:
        """Sign these records afresh with the current key (rotation); returns how many."""
        if self.signer is None or not keys_to_sign:
            return 0
        self.signer.refresh()
        count = await self.store.transact(list(keys_to_sign), keys.resign(self._now(), self.prep))
        await self._notify(keys_to_sign)
        return count

    async def publish_keys(self, values: Sequence[Value]) -> None:
        """Put the node's HS_PUBKEY/HS_CERT values into its prefix handle (replacing the
        previous set) and re-sign it."""
        assert self.signer is not None
        self.signer.refresh()
        key = self.signer.key_handle
        await self.store.transact([key], keys.publish_keys(key, values, self._now(), self.prep))
        await self._notify([key])
