"""The operator's changes (the CLI's ``app create`` and ``prefix approve``)."""

from __future__ import annotations

import secrets
import sqlite3

from sync.protocol import is_under, valid_prefix
from sync.toplevel import store

APPROVALS = ("auto", "manual")


class AdminError(Exception):
    """A change the operator asked for that cannot be made; the text says why."""


def create_app(conn: sqlite3.Connection, prefix: str, name: str, approval: str, now: int) -> str:
    """A new onboarding application for a node of ``prefix``; returns its id.

    One app per prefix, and no two apps' prefixes nest (``88.118`` and ``88.118.8``): every
    identifier has exactly one node to route to."""
    if not valid_prefix(prefix):
        raise AdminError(f"invalid prefix {prefix!r}: expected dot-separated labels like 88.118")
    if approval not in APPROVALS:
        raise AdminError(f"approval must be one of {', '.join(APPROVALS)}")
    # Hex, not base64url: an id starting with '-' would read as an option on command lines.
    app_id = secrets.token_hex(16)
    with store.write(conn):
        for row in conn.execute("SELECT app_id, prefix FROM apps"):
            if is_under(prefix, row["prefix"]) or is_under(row["prefix"], prefix):
                raise AdminError(f"prefix {prefix} overlaps {row['prefix']} of app {row['app_id']}")
        conn.execute(
            "INSERT INTO apps (app_id, prefix, prefix_key, name, approval, created) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (app_id, prefix, prefix.upper(), name, approval, now),
        )
    return app_id


def approve_prefix(conn: sqlite3.Connection, prefix: str, now: int) -> bool:
    """Approve a pending enterprise prefix: True if it was pending, False if it was already
    approved; :class:`AdminError` if the top-level has no such prefix."""
    with store.write(conn):
        row = conn.execute(
            "SELECT status FROM prefixes WHERE prefix_key = ?", (prefix.upper(),)
        ).fetchone()
        if row is None:
            raise AdminError(f"no prefix {prefix}: a node must first send it in a batch")
        if row["status"] == "approved":
            return False
        conn.execute(
            "UPDATE prefixes SET status = 'approved', updated = ? WHERE prefix_key = ?",
            (now, prefix.upper()),
        )
    return True
