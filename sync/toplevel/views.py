"""Reading the top-level's state: the JSON views, the HTML page's data, and the published
records (built and signed when asked for, so they always reflect the current state)."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from registry.model.identifiers import NA_PREFIX, handle_key, prefix_handle
from registry.model.values import Value
from registry.signing import jws
from sync.protocol import STATS_COUNTS
from sync.toplevel import store
from sync.toplevel.home import Root
from sync.toplevel.records import (
    ROOT_HANDLE,
    Site,
    prefix_values,
    root_values,
    signed,
)


def apps(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT a.app_id, a.prefix, a.name, a.approval, a.created, n.app_id IS NOT NULL "
        "AS registered FROM apps a LEFT JOIN nodes n USING (app_id) ORDER BY a.created, a.prefix"
    ).fetchall()
    return [dict(r) | {"registered": bool(r["registered"])} for r in rows]


def nodes(conn: sqlite3.Connection, now: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT n.*, a.prefix, h.time AS hb_time, h.status AS hb_status FROM nodes n "
        "JOIN apps a USING (app_id) LEFT JOIN heartbeats h USING (app_id) "
        "ORDER BY n.registered, a.prefix"
    ).fetchall()
    out = []
    for r in rows:
        heartbeat = None
        if r["hb_time"] is not None:
            heartbeat = {
                "time": r["hb_time"],
                "age": now - r["hb_time"],
                "status": orjson.loads(r["hb_status"]),
            }
        out.append(
            {
                "app_id": r["app_id"],
                "name": r["name"],
                "identity": r["identity"],
                "prefixes": [r["prefix"]],
                "public_key": orjson.loads(r["public_key"]),
                "thumbprint": r["thumbprint"],
                "site": orjson.loads(r["site"]),
                "registered": r["registered"],
                "updated": r["updated"],
                "heartbeat": heartbeat,
            }
        )
    return out


def prefixes(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """The routed prefixes, each with its lifecycle state as its node last reported it."""
    rows = conn.execute(
        "SELECT prefix, app_id, kind, status, created, updated, (SELECT e.op FROM prefix_events e "
        "WHERE e.prefix_key = p.prefix_key AND e.op IN ('suspend', 'reactivate') "
        "ORDER BY e.seq DESC LIMIT 1) AS last FROM prefixes p ORDER BY prefix_key"
    ).fetchall()
    out = []
    for r in rows:
        row = dict(r)
        last = row.pop("last")
        state = "suspended" if last == "suspend" else "active"
        out.append(row | {"handle": prefix_handle(r["prefix"]), "state": state})
    return out


def events(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every lifecycle report received, oldest first."""
    rows = conn.execute(
        "SELECT app_id, prefix, op, reason, received FROM prefix_events ORDER BY seq"
    ).fetchall()
    return [dict(r) for r in rows]


def stats(conn: sqlite3.Connection, prefix: str | None = None) -> dict[str, Any]:
    """Counts per interval (oldest first) and their totals per prefix."""
    where, args = ("WHERE prefix_key = ?", (prefix.upper(),)) if prefix else ("", ())
    rows = conn.execute(
        f"SELECT app_id, prefix, start, seconds, {', '.join(STATS_COUNTS)}, received "
        f"FROM stats {where} ORDER BY prefix_key, start, seconds",
        args,
    ).fetchall()
    intervals = [dict(r) for r in rows]
    totals: dict[str, dict[str, Any]] = {}
    for r in intervals:
        total = totals.setdefault(
            r["prefix"].upper(),
            {"prefix": r["prefix"], "intervals": 0} | dict.fromkeys(STATS_COUNTS, 0),
        )
        total["intervals"] += 1
        for name in STATS_COUNTS:
            total[name] += r[name]
    return {"intervals": intervals, "totals": list(totals.values())}


def items(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Batch item counters per app: each item answered accepted, duplicate or rejected."""
    rows = conn.execute(
        "SELECT a.app_id, a.prefix, a.accepted, a.duplicate, a.rejected, "
        "(SELECT count(*) FROM items i WHERE i.app_id = a.app_id) AS ids "
        "FROM apps a ORDER BY a.created, a.prefix"
    ).fetchall()
    return [dict(r) for r in rows]


def everything(conn: sqlite3.Connection, now: int) -> dict[str, Any]:
    """All the views from one snapshot (the HTML page)."""
    with store.read(conn):
        return {
            "apps": apps(conn),
            "nodes": nodes(conn, now),
            "prefixes": prefixes(conn),
            "stats": stats(conn),
            "items": items(conn),
        }


def _iat(cert: str) -> int:
    iat = jws.decode(cert).payload.get("iat")
    return iat if isinstance(iat, int) else 0


def record(
    conn: sqlite3.Connection, root: Root, handle: str, ttl: int, now: int
) -> tuple[Value, ...] | None:
    """The signed values of ``0.0/0.0`` or of a routed ``0.NA/<prefix>``; None if absent
    (an enterprise prefix still pending approval is absent)."""
    key = handle_key(handle)
    if key == ROOT_HANDLE:
        values = root_values(root.jwk, root.cert, ttl, _iat(root.cert))
        return signed(root.key, ROOT_HANDLE, values, ttl, now)
    na, _, prefix_key = key.partition("/")
    if na != NA_PREFIX.upper() or not prefix_key:
        return None
    row = conn.execute(
        "SELECT p.prefix, p.kind, p.updated, n.site, n.public_key, n.name, n.cert "
        "FROM prefixes p JOIN nodes n USING (app_id) "
        "WHERE p.prefix_key = ? AND p.status = 'approved'",
        (prefix_key,),
    ).fetchone()
    if row is None:
        return None
    site = Site(**orjson.loads(row["site"]))
    cert = row["cert"] if row["kind"] == "node" else None
    values = prefix_values(
        site, orjson.loads(row["public_key"]), row["name"], cert, ttl, row["updated"]
    )
    return signed(root.key, prefix_handle(row["prefix"]), values, ttl, now)
