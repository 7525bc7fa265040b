"""Metadata templates as the node publishes them: one record per template,
``<first home prefix>/TEMPLATE.<name>``, holding one public ``IDNODE_TEMPLATE`` value per
version (index = version, data = the definition as JSON), so any Handle client fetches them
by resolving that handle. Node admins write them; every version stays readable.
(:mod:`registry.model.templates` has the rules; :mod:`registry.writes.guard` applies them.)"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from registry import authz
from registry.audit import OPERATOR, Caller
from registry.authz import Principal
from registry.errors import HandleNotFound, InsufficientPermissions, InvalidValue
from registry.model import admin as adm
from registry.model import templates as tpl
from registry.model.identifiers import handle_key, parse
from registry.model.values import MAX_VALUES, stamped
from registry.service import Registry
from registry.store.base import Change, Mutation, Put, Record, records_starting


class Templates:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.home = registry.templates_home

    def handle(self, name: str) -> str:
        return tpl.record_handle(self.home, tpl.check_name(name))

    async def put(
        self, name: str, body: object, who: Principal | None = None, caller: Caller = OPERATOR
    ) -> tpl.Template:
        """A new version of template ``name`` (by a node admin; None: the local operator)."""
        draft = tpl.parse_definition(body, name, 1)
        ident = parse(self.handle(name))
        keys = authz.authority_keys(ident)
        if who is not None:
            records = await self.registry.authority(ident)
            who = await self.registry.authenticator.with_groups(who, records)
        self.registry.prep.refresh()
        now = int(self.registry.clock())
        prep = self.registry.prep

        def mutate(records: Mapping[str, Record]) -> tuple[list[Change], tpl.Template]:
            if who is not None and not authz.rights_over(ident, records, who).may(adm.ADD_HANDLE):
                raise InsufficientPermissions(f"{who.identity} may not write templates")
            old = records.get(ident.key)
            current = prep.user(ident.key, old.values) if old is not None else []
            version = max((v.index for v in current), default=0) + 1
            if len(current) >= MAX_VALUES - 1:
                raise InvalidValue(f"template {name} has {len(current)} versions, the most kept")
            made = dataclasses.replace(draft, version=version)
            values = [*current, stamped(tpl.to_value(made), now)]
            handle = old.handle if old is not None else ident.text
            record = Record(handle, prep.sign(handle, values, now))
            return [Put(ident.key, record)], made

        mutation: Mutation[tpl.Template] = mutate
        return await self.registry.transact(keys, mutation, who, caller, "template.put")

    async def versions(self, name: str) -> dict[int, tpl.Template]:
        """Every version of ``name`` (:class:`HandleNotFound` if there is none)."""
        entry = await self.registry.records.get(handle_key(self.handle(name)))
        held = tpl.versions(entry.record.values) if entry.record is not None else {}
        if not held:
            raise HandleNotFound(f"no template {name}")
        return held

    async def get(self, name: str, version: int | None = None) -> tpl.Template:
        found = tpl.pick(version, await self.versions(name))
        if found is None:
            raise HandleNotFound(f"no version {version} of template {name}")
        return found

    async def list_all(self) -> list[tpl.Template]:
        """The newest version of every template."""
        start = handle_key(tpl.record_handle(self.home, ""))
        out: list[tpl.Template] = []
        async for record in records_starting(self.registry.store, handle_key(self.home), start):
            held = tpl.versions(record.values)
            if held:
                out.append(held[max(held)])
        return out
