"""The SQL of reverse lookup on PostgreSQL: a pattern over one value type.

A pattern with a literal head becomes a range scan of the ``lookup`` primary key (type,
data, key), as on SQLite; one that starts with ``*`` is matched by ``LIKE`` over the
trigram index (``lookup_data_trgm``), so neither scans the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from registry.store.base import successor
from registry.store.postgres.plan import storable, upper


def like_escape(literal: str) -> str:
    """Make ``literal`` match itself in a LIKE pattern (escape character ``\\``)."""
    return literal.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def query(
    type_key: str, pattern: str, limit: int, within: Sequence[str] | None
) -> tuple[str, list[Any]] | None:
    """The statement and arguments of a reverse lookup (``type_key`` upper-cased), or None
    when nothing can match (text PostgreSQL cannot hold was never stored)."""
    if not storable(type_key) or not storable(pattern):
        return None
    args: list[Any] = [type_key]
    conds = ["type = $1"]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    literal, star, _ = pattern.partition("*")
    if not star:
        conds.append(f"data = {arg(pattern)}")
    else:
        if literal:
            conds.append(f"data >= {arg(literal)}")
            bound = successor(literal)
            if bound is not None:
                conds.append(f"data < {arg(bound)}")
        if pattern.strip("*"):
            like = "%".join(like_escape(part) for part in pattern.split("*"))
            conds.append(f"data LIKE {arg(like)}")
    if within is not None:
        prefixes = [p for p in dict.fromkeys(upper(p) for p in within) if storable(p)]
        if not prefixes:
            return None
        # "Derived from P" is "starts with P.", i.e. the range ["P.", "P/") since '/'
        # follows '.'.
        alts = [
            f"prefix = {arg(p)} OR (prefix >= {arg(p + '.')} AND prefix < {arg(p + '/')})"
            for p in prefixes
        ]
        conds.append("(" + " OR ".join(alts) + ")")
    sql = (
        "SELECT h.handle FROM ("
        f" SELECT DISTINCT key FROM lookup WHERE {' AND '.join(conds)}"
        f" ORDER BY key LIMIT {arg(limit)}"
        ") AS m JOIN handles AS h ON h.key = m.key ORDER BY m.key"
    )
    return sql, args
