"""What every client write is checked for after its mutation decided its changes, inside the
same transaction: no record of a suspended or withdrawn prefix changes, and every record that
declares a template (a ``TEMPLATE`` value) follows it.

The transaction reads the homes' states records and the templates it needs; a template the
mutation turns out to need that was not read (a record that declared it before this write)
raises :class:`NeedKeys`, and the write runs again reading it too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set
from typing import Any

from registry.errors import ProtocolError, TemplateViolation
from registry.model import enterprise as ent
from registry.model import templates as tpl
from registry.model.identifiers import NA_PREFIX, handle_key
from registry.model.values import Value
from registry.prefixstates import merged, raise_blocked
from registry.store.base import Change, Delete, Put, PutEncoded, Record

_NA_KEY = NA_PREFIX + "/"
_MARK = tpl.TEMPLATE.encode("ascii")


class NeedKeys(Exception):
    """The write must read these keys (templates) too."""

    def __init__(self, keys: Set[str]) -> None:
        super().__init__(", ".join(sorted(keys)))
        self.keys = keys


def template_key(home: str, name: str) -> str:
    return handle_key(tpl.record_handle(home, name))


def template_keys(home: str, values: Iterable[Value]) -> set[str]:
    """The template records that values declaring templates need read."""
    out = set()
    for v in tpl.declared(list(values)):
        try:
            name, _ = tpl.parse_ref(v.data.decode("utf-8", "replace"))
        except ProtocolError:
            continue
        out.add(template_key(home, name))
    return out


def _prefix_of(key: str, handle: str | None) -> tuple[str, str]:
    """(prefix key, prefix as spelt) of a written record."""
    text = handle if handle is not None else key
    if key.startswith(_NA_KEY):
        return key[len(_NA_KEY) :], text.split("/", 1)[1]
    return key.partition("/")[0], text.partition("/")[0]


def check_changes(
    records: Mapping[str, Record],
    changes: Sequence[Change],
    read: Set[str],
    states_keys: Sequence[str],
    home: str,
) -> None:
    """Refuse ``changes`` (made over ``records``, read under keys ``read``) as the module
    says."""
    blocked = merged(records[k] for k in states_keys if k in records)
    missing: set[str] = set()
    for change in changes:
        if not isinstance(change, Put | PutEncoded | Delete):
            continue
        key = change.key
        record: Record | None = None
        if isinstance(change, Put):
            record = change.record
        elif isinstance(change, PutEncoded) and _MARK in change.encoded.vals.upper():
            record = change.encoded.record()
        if blocked:
            handle = record.handle if record is not None else None
            prefix_key, prefix = _prefix_of(key, handle)
            raise_blocked(prefix, ent.blocked_state(prefix_key, blocked))
        if record is not None and not key.startswith(_NA_KEY):
            needed = _check_template(record, records, read, home)
            missing |= needed
    if missing:
        raise NeedKeys(missing)


def _violation(record: Record, ref: str, v: Value, message: str) -> TemplateViolation:
    return TemplateViolation(
        record.handle, ref, [{"type": v.type, "index": v.index, "message": message}]
    )


def _check_template(
    record: Record, records: Mapping[str, Record], read: Set[str], home: str
) -> set[str]:
    """Check ``record`` against the template it declares; the template keys still to read."""
    declared = tpl.declared(record.values)
    if not declared:
        return set()
    first = declared[0]
    text = first.data.decode("utf-8", "replace")
    if len(declared) > 1:
        raise _violation(record, text, declared[1], "a record declares one template at most")
    try:
        name, version = tpl.parse_ref(text)
    except ProtocolError as exc:
        raise _violation(record, text, first, exc.message or "bad template reference") from None
    key = template_key(home, name)
    if key not in read:
        return {key}
    held = records.get(key)
    template = tpl.pick(version, tpl.versions(held.values)) if held is not None else None
    if template is None:
        what = "template" if held is None or version is None else "template version"
        raise _violation(record, text, first, f"unknown {what} {text}")
    errors: list[dict[str, Any]] = tpl.check_values(template, record.values)
    if errors:
        raise TemplateViolation(record.handle, template.ref, errors)
    return set()
