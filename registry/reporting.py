"""What a write reports to the top-level node: pure, derived from the changes it makes.

Every committed write adds, in its own transaction (so nothing is reported that was not
committed and nothing committed goes unreported):

- a ``prefix`` outbox item for each enterprise prefix handle (``0.NA/88.118.8`` under a
  homed ``88.118``) created, changed or deleted, so the top-level can route that prefix;
- a :class:`Tally` per identifier prefix counting the identifiers registered, updated and
  deleted, in the statistics interval the write falls in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from registry.model.identifiers import NA_PREFIX, is_within
from registry.store.base import Change, Delete, Put, PutEncoded, Record, Report, Tally

_NA_KEY = NA_PREFIX.upper() + "/"


def interval_start(now: int, seconds: int) -> int:
    return now - now % seconds


def reports_for(
    records: Mapping[str, Record],
    changes: Sequence[Change],
    homed_keys: Sequence[str],
    now: int,
    seconds: int,
) -> list[Change]:
    """The outbox items and tallies for ``changes`` applied over ``records`` (the state the
    mutation read)."""
    out: list[Change] = []
    counts: dict[str, list[int]] = {}  # prefix key -> [registrations, updates, deletions]
    written: set[str] = set()
    for change in changes:
        if not isinstance(change, Put | PutEncoded | Delete):
            continue
        key = change.key
        existed = key in written or key in records
        if isinstance(change, Delete):
            written.discard(key)
        else:
            written.add(key)
        if key.startswith(_NA_KEY):
            prefix_key = key[len(_NA_KEY) :]
            if prefix_key in homed_keys or not any(is_within(prefix_key, h) for h in homed_keys):
                continue  # the node's own prefix handle is registered, not reported
            if not isinstance(change, Delete):
                new = change.record if isinstance(change, Put) else change.encoded
                handle, op = new.handle, "update" if existed else "create"
            else:
                old = records.get(key)
                handle, op = (old.handle if old else key), "delete"
            prefix = handle.split("/", 1)[1]
            out.append(Report(prefix, "prefix", {"op": op, "prefix": prefix}))
            continue
        slot = counts.setdefault(key.split("/", 1)[0], [0, 0, 0])
        if isinstance(change, Delete):
            slot[2] += 1
        else:
            slot[1 if existed else 0] += 1
    start = interval_start(now, seconds)
    for prefix, (reg, upd, dele) in counts.items():
        out.append(Tally(prefix, start, seconds, registrations=reg, updates=upd, deletions=dele))
    return out
