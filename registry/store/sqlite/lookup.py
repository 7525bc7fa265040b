"""The SQL of reverse lookup: a pattern over one value type, turned into a range scan of the
``lookup`` table's (type, data, key) primary key, so it stays index-backed at any size."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from registry.store.base import successor
from registry.store.sqlite.records import upper


def reverse_lookup(
    conn: sqlite3.Connection,
    type_key: str,
    pattern: str,
    limit: int,
    within: Sequence[str] | None,
) -> list[str]:
    """Handles having a ``type_key`` value whose text matches ``pattern``, by handle key."""
    sql, params = reverse_lookup_query(type_key, pattern, limit, within)
    return [r[0] for r in conn.execute(sql, params)]


def _glob_escape(literal: str) -> str:
    """Make ``literal`` match itself in a GLOB pattern (``*`` never occurs in it)."""
    return literal.replace("[", "[[]").replace("?", "[?]")


def reverse_lookup_query(
    type_key: str, pattern: str, limit: int, within: Sequence[str] | None
) -> tuple[str, tuple[Any, ...]]:
    """The statement and parameters :func:`reverse_lookup` runs (``type_key`` upper-cased)."""
    conds = ["type = ?"]
    params: list[Any] = [type_key]
    literal, star, _ = pattern.partition("*")
    if not star:
        conds.append("data = ?")
        params.append(pattern)
    else:
        # The literal head bounds a range scan of the (type, data, key) primary key; GLOB
        # then checks the rest of the pattern on those rows only.
        if literal:
            conds.append("data >= ?")
            params.append(literal)
            upper_bound = successor(literal)
            if upper_bound is not None:
                conds.append("data < ?")
                params.append(upper_bound)
        if pattern.strip("*"):
            conds.append("data GLOB ?")
            params.append("*".join(_glob_escape(part) for part in pattern.split("*")))
    if within is not None:
        # "Derived from P" is "starts with P.", i.e. the range ["P.", "P/") since '/' follows '.'.
        alts = []
        for prefix in dict.fromkeys(upper(p) for p in within):
            alts.append("prefix = ? OR (prefix >= ? AND prefix < ?)")
            params += [prefix, prefix + ".", prefix + "/"]
        conds.append("(" + " OR ".join(alts) + ")")
    sql = (
        "SELECT h.handle FROM ("
        f" SELECT DISTINCT key FROM lookup WHERE {' AND '.join(conds)} ORDER BY key LIMIT ?"
        ") AS m JOIN handles AS h ON h.key = m.key ORDER BY m.key"
    )
    params.append(limit)
    return sql, tuple(params)
