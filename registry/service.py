"""The write service: the one way anything changes the registry.

Every write — HTTP, CLI, import, later the native admin interface and sync — runs
authorise → validate → sign → store in one transaction → notify (cache invalidation) →
acknowledge. Authorisation runs *inside* the store transaction on exactly the records being
changed, so a concurrent change of HS_ADMIN values can never be raced. :class:`Registry` is
the facade every caller uses; the parts it is made of, one job each, are in
:mod:`registry.writes`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from registry import authz
from registry.audit import (
    IMPORT,
    OPERATOR,
    Caller,
    Context,
    Refusals,
    batch_entry,
    identity_key,
    prefix_of,
    record_entries,
)
from registry.auth import Authenticator
from registry.authz import Principal
from registry.bulk import BulkSpec, Prepared
from registry.cache.records import RecordCache
from registry.errors import (
    HandleExists,
    HandleNotFound,
    InsufficientPermissions,
    NotResponsible,
    ServerBusy,
    ValuesNotFound,
)
from registry.model import admin as adm
from registry.model.admin import AdminRef
from registry.model.identifiers import (
    Identifier,
    handle_key,
    is_within,
    parse,
    prefix_handle,
    served_prefix,
)
from registry.model.values import Value, check_unique
from registry.prefixstates import PrefixStates
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
from registry.writes.guard import NeedKeys, check_changes, template_keys
from registry.writes.imports import ImportResult
from registry.writes.values import Preparer

log = logging.getLogger("idnode.audit")

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
        self.homed = tuple(homed)
        self.homed_keys = tuple(handle_key(p) for p in homed)
        # Templates are node-wide, published under the node's first prefix.
        self.templates_home = self.homed[0] if self.homed else ""
        self.states = PrefixStates(records, self.homed)
        self._homed: dict[str, bool] = {}
        self.clock = clock
        self.write_hooks: list[WriteHook] = [records.invalidate]
        self.authenticator = Authenticator(store, sealer, self._record)
        self.homed = tuple(homed)
        self.refusals = Refusals()

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

    async def precheck(
        self,
        ident: Identifier,
        *,
        absent: bool = False,
        present: bool = False,
        indexes: Sequence[int] = (),
    ) -> None:
        """What the reference refuses before it challenges an admin request, so that a
        client is not asked to authenticate for a write that cannot happen: a prefix not
        homed here (301), a handle that exists (``absent``: 101) or does not (``present``,
        or ``indexes`` given: 100), values missing at ``indexes`` (200). Nothing here
        authorises: the write itself checks all of it again in its transaction."""
        self.require_homed(ident)
        if not (absent or present or indexes):
            return
        record = await self._record(ident.key)
        if record is None:
            if present or indexes:
                raise HandleNotFound()
            return
        if absent:
            raise HandleExists()
        have = {v.index for v in record.values}
        if any(i not in have for i in indexes):
            raise ValuesNotFound()

    # ------------------------------------------------------------ the write path

    def _now(self) -> int:
        return int(self.clock())

    async def _principal(self, ident: Identifier, who: Principal | None) -> Principal | None:
        if who is None:
            return None
        return await self.authenticator.with_groups(who, await self.authority(ident))

    def context(self, caller: Caller, who: Principal | None = None) -> Context:
        """Who a write's audit entries name: the authenticated identity, else the caller's."""
        identity = caller.identity if who is None else identity_key(str(who.identity))
        return Context(caller, identity, self.clock())

    async def _write(
        self,
        keys: Sequence[str],
        mutation: Mutation[R],
        ctx: Context,
        values: Sequence[Value] = (),
        *,
        action: str | None = None,
        batch: str | None = None,
        report: bool = True,
        guarded: bool = True,
    ) -> R:
        """``store.transact`` with the write's reports (outbox items, statistics) and audit
        entries added to its changes, so they commit or roll back together; then the write
        hooks (cache invalidation) for the records changed. A mutation that changes nothing
        reports nothing, records nothing and notifies nobody. Audit entries: one per record
        written (``action`` names them, default create/update/delete), or with ``batch``
        one for them all, of that action (:mod:`registry.audit`). A refusal (the caller
        lacks a right) is recorded on its own. ``report`` False: a write of the node's own
        (re-signing) that the top-level is not told of. A ``guarded`` write (every
        client's) is refused for a prefix that is not active and checked against templates
        (:mod:`registry.writes.guard`; ``values``: the values written, whose templates are
        read up front)."""
        touched: list[str] = []
        extra_keys: set[str] = set()
        if guarded:
            extra_keys |= set(self.states.keys) | template_keys(self.templates_home, values)

        def reported(records: Mapping[str, Record]) -> tuple[Sequence[Change], R]:
            changes, result = mutation(records)
            if guarded:
                check_changes(records, changes, read, self.states.keys, self.templates_home)
            written = (c.key for c in changes if isinstance(c, Put | PutEncoded | Delete))
            touched[:] = dict.fromkeys(written)
            extra = (
                reports_for(records, changes, self.homed_keys, self._now(), self.stats_seconds)
                if report
                else []
            )
            if batch is not None:
                audits = batch_entry(ctx, changes, batch)
            else:
                audits = record_entries(ctx, records, changes, action)
            return [*changes, *extra, *audits], result

        for _ in range(3):
            read = {*keys, *extra_keys}
            try:
                result = await self.store.transact(sorted(read), reported)
                break
            except NeedKeys as more:
                extra_keys |= more.keys
            except InsufficientPermissions as exc:
                await self.refused(ctx.caller, ctx.identity, keys[0], exc.message or "")
                raise
            except StoreUnavailable:
                # Perhaps committed (the connection lost while committing): what it may have
                # replaced is dropped all the same (a needless invalidation costs one miss).
                if touched:
                    await self._notify(touched)
                raise
        else:  # the templates declared changed under each attempt: unlikely, not wrong
            raise ServerBusy("the record's template kept changing; try again")
        if touched:
            await self._notify(touched)
        return result

    # ------------------------------------------------------------ the audit log

    async def audit_event(
        self, ctx: Context, action: str, handle: str = "", detail: str = "", prefix: str = ""
    ) -> None:
        """Append one entry on its own (in a transaction of its own): for what is not a
        write of records (a refusal, a configuration change, a key rotation step)."""
        entry = ctx.entry(action, handle, prefix, detail=detail)
        await self.store.transact([], lambda _: ([entry], None))

    async def refused(self, caller: Caller, identity: str, handle: str, reason: str) -> None:
        """Record a refusal (wrong credentials, a right the caller lacks), within the rate
        :class:`~registry.audit.Refusals` allows. Never raises: the refusal is the
        answer, whether or not the log could take it (then it is logged)."""
        ctx = Context(caller, identity, self.clock())
        note = self.refusals.admit(identity, caller.address, ctx.at)
        if note is None:
            return
        detail = "; ".join(t for t in (reason, note) if t)
        try:
            await self.audit_event(ctx, "refused", handle, detail, prefix_of(handle_key(handle)))
        except Exception:
            log.exception("could not record a refusal of %s from %s", identity, caller.address)

    async def login_failed(self, transport: str, address: str, identity: AdminRef | None) -> None:
        """Credentials from ``address`` that did not prove ``identity`` (None: that named
        nobody): a :attr:`registry.auth.FailureThrottle.on_failure`."""
        who = "?" if identity is None else identity_key(str(identity))
        handle = "" if identity is None else identity.handle
        await self.refused(Caller(transport, address, who), who, handle, "authentication failed")

    async def is_node_admin(self, who: Principal) -> bool:
        """Whether ``who`` administers this node: it holds "add derived prefix" (allocating
        enterprise prefixes) in the prefix handle of every prefix the node is home for."""
        for prefix in self.homed:
            ident = parse(prefix_handle(prefix))
            records = await self.authority(ident)
            member = await self.authenticator.with_groups(who, records)
            if not authz.rights_in(records.get(ident.key), member) & adm.ADD_DERIVED_PREFIX:
                return False
        return bool(self.homed)

    async def transact(
        self,
        keys: Sequence[str],
        mutation: Mutation[R],
        who: Principal | None = None,
        caller: Caller = OPERATOR,
        action: str | None = None,
    ) -> R:
        """A node-internal write (the lifecycle, templates): reported, audited (as
        ``action``) and notified as every write, not guarded (it may change what a client
        may not)."""
        ctx = self.context(caller, who)
        return await self._write(keys, mutation, ctx, action=action, guarded=False)

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
        caller: Caller = OPERATOR,
    ) -> WriteResult:
        """Create ``ident`` with ``values`` or (``overwrite``) replace its values whole."""
        self.require_homed(ident)
        check_unique(values)
        values = self.prep.client(ident.key, values)
        who = await self._principal(ident, who)
        mutate = edits.put_record(ident, values, overwrite, who, self._now(), self.prep)
        return await self._write(
            authz.authority_keys(ident), mutate, self.context(caller, who), values
        )

    async def put_values(
        self,
        ident: Identifier,
        values: Sequence[Value],
        *,
        overwrite: bool = True,
        who: Principal | None = None,
        caller: Caller = OPERATOR,
    ) -> WriteResult:
        """Add or replace just ``values`` in an existing record (the ``?index=`` form)."""
        self.require_homed(ident)
        check_unique(values)
        values = self.prep.client(ident.key, values)
        who = await self._principal(ident, who)
        mutate = edits.put_values(ident, values, overwrite, who, self._now(), self.prep)
        return await self._write(
            authz.authority_keys(ident), mutate, self.context(caller, who), values
        )

    async def delete_record(
        self, ident: Identifier, who: Principal | None = None, caller: Caller = OPERATOR
    ) -> None:
        if not self.is_homed(ident):
            raise HandleNotFound()  # the reference answers 404 here, not 301
        who = await self._principal(ident, who)
        mutate = edits.delete_record(ident, who)
        await self._write(authz.authority_keys(ident), mutate, self.context(caller, who))

    async def delete_values(
        self,
        ident: Identifier,
        indexes: Sequence[int],
        who: Principal | None = None,
        caller: Caller = OPERATOR,
    ) -> None:
        """Remove those values, all or nothing."""
        if not self.is_homed(ident):
            raise HandleNotFound()
        who = await self._principal(ident, who)
        now = self._now()
        self.prep.refresh()
        mutate = edits.delete_values(ident, indexes, who, now, self.prep)
        await self._write(authz.authority_keys(ident), mutate, self.context(caller, who))

    # ------------------------------------------------------------ imports

    async def import_records(
        self, items: Sequence[tuple[Identifier, Sequence[Value]]], caller: Caller = IMPORT
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
        written = [v for _, values in items for v in values]
        positions = {ident.key: n for n, (ident, _) in enumerate(items)}
        with imports.item_errors(positions):
            return await self._write(
                sorted(keys_read), mutate, self.context(caller), written, batch="import"
            )

    def bulk_spec(self) -> BulkSpec:
        """What :mod:`registry.bulk` needs to prepare import batches as this registry writes
        records (with the current signing key)."""
        if self.signer is None:
            return BulkSpec(self.homed_keys, None)
        self.signer.refresh()
        return BulkSpec(self.homed_keys, self.signer.node.spec())

    async def import_prepared(self, batch: Prepared, caller: Caller = IMPORT) -> ImportResult:
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
        with imports.item_errors({item.key: n for n, item in enumerate(batch.items)}):
            return await self._write(keys_read, mutate, self.context(caller), batch="import")

    # ------------------------------------------------------------ the node's keys

    async def resign(self, keys_to_sign: Sequence[str], caller: Caller = OPERATOR) -> int:
        """Sign these records afresh with the current key (rotation); returns how many."""
        if self.signer is None or not keys_to_sign:
            return 0
        self.signer.refresh()
        mutate = keys.resign(self._now(), self.prep)
        ctx = self.context(caller)
        return await self._write(
            list(keys_to_sign), mutate, ctx, batch="key.resign", report=False, guarded=False
        )

    async def publish_keys(self, values: Sequence[Value], caller: Caller = OPERATOR) -> None:
        """Put the node's HS_PUBKEY/HS_CERT values into its prefix handle (replacing the
        previous set) and re-sign it."""
        assert self.signer is not None
        self.signer.refresh()
        key = self.signer.key_handle
        mutate = keys.publish_keys(key, values, self._now(), self.prep)
        await self._write([key], mutate, self.context(caller), action="key.publish", guarded=False)
