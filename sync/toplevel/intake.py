"""The intake API's logic: registration, batches and heartbeats, on one database connection.

Each request is one write transaction: authentication (app, freshness, signature, nonce),
then its effects, then the nonce is remembered. Anything refused raises :class:`IntakeError`
inside the transaction, which rolls it back, so a refused request leaves nothing behind — not
even its nonce. Replays are refused while the nonce is remembered (``2 * MAX_SKEW`` s);
after that its timestamp is stale anyway.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from registry.errors import InvalidValue
from registry.model.identifiers import handle_key
from registry.model.site import parse_address
from registry.signing import jws
from registry.signing.keys import JwkError, jwk_thumbprint, public_key_from_jwk
from sync import protocol
from sync.protocol import ProtocolError, SigAuth
from sync.toplevel import store
from sync.toplevel.home import Root
from sync.toplevel.records import ROOT_IDENTITY, Site, issue_node_cert, node_identity

MAX_STATUS_BYTES = 64 * 1024  # a heartbeat's status object, as compact JSON
MAX_NAME_CHARS = 200
CERT_RENEW_BEFORE = 30 * 86400  # re-registering renews a certificate this close to expiry


class IntakeError(Exception):
    """A refused request: the HTTP status and the reason sent as ``{"error": reason}``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Signed:
    """A signed request as received: what its signature covers."""

    auth: SigAuth
    method: str
    path: str  # with the query string, as sent
    body: bytes


# --- authentication --------------------------------------------------------------------------


def key_of(jwk: object) -> tuple[dict[str, Any], str]:
    """A usable public JWK and its algorithm, or a 400."""
    if not isinstance(jwk, dict):
        raise IntakeError(400, "public_key must be a JWK object")
    try:
        public_key_from_jwk(jwk)
        return jwk, protocol.alg_of_jwk(jwk)
    except (JwkError, ProtocolError) as exc:
        raise IntakeError(400, f"public_key: {exc}") from None


def _authenticate(
    conn: sqlite3.Connection,
    req: Signed,
    now: int,
    key: tuple[dict[str, Any], str] | None = None,
) -> sqlite3.Row:
    """The app of a valid, fresh, first-seen request signed by ``key`` (by default the key
    registered for the app); otherwise a 401."""
    try:
        protocol.check_fresh(req.auth, now)
    except ProtocolError as exc:
        raise IntakeError(401, str(exc)) from None
    app: sqlite3.Row | None = conn.execute(
        "SELECT * FROM apps WHERE app_id = ?", (req.auth.app,)
    ).fetchone()
    if app is None:
        raise IntakeError(401, "unknown app id")
    if key is None:
        node = conn.execute(
            "SELECT public_key FROM nodes WHERE app_id = ?", (req.auth.app,)
        ).fetchone()
        if node is None:
            raise IntakeError(401, "this app has no registered node: register first")
        jwk = orjson.loads(node["public_key"])
        key = (jwk, protocol.alg_of_jwk(jwk))
    jwk, alg = key
    if not protocol.check_signature(req.auth, jwk, alg, req.method, req.path, req.body):
        raise IntakeError(401, "bad signature")
    conn.execute("DELETE FROM nonces WHERE expires < ?", (now,))
    seen = conn.execute(
        "SELECT 1 FROM nonces WHERE app_id = ? AND nonce = ?", (req.auth.app, req.auth.nonce)
    ).fetchone()
    if seen is not None:
        raise IntakeError(401, "replayed request: nonce already used")
    return app


def _remember_nonce(conn: sqlite3.Connection, req: Signed, now: int) -> None:
    conn.execute(
        "INSERT INTO nonces (app_id, nonce, expires) VALUES (?, ?, ?)",
        (req.auth.app, req.auth.nonce, now + 2 * protocol.MAX_SKEW),
    )


# --- registration ----------------------------------------------------------------------------


def _port(value: object, what: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise IntakeError(400, f"site {what} must be a port number (1-65535) or null")
    return value


def parse_site(obj: object) -> Site:
    if not isinstance(obj, dict):
        raise IntakeError(400, "site must be an object")
    http = obj.get("http")
    if not isinstance(http, str):
        raise IntakeError(400, "site http must be the node's base URL")
    try:
        url = urlsplit(http)
        url.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise IntakeError(400, "site http is not a valid URL") from None
    if url.scheme not in ("http", "https") or not url.hostname:
        raise IntakeError(400, "site http must be an http:// or https:// URL with a host")
    address = obj.get("address")
    try:
        parse_address(address)
    except InvalidValue as exc:
        raise IntakeError(400, f"site address: {exc.message}") from None
    assert isinstance(address, str)  # parse_address refuses anything else
    return Site(
        http,
        address,
        _port(obj.get("tcp_port"), "tcp_port"),
        _port(obj.get("udp_port"), "udp_port"),
    )


def _check_registration(body: dict[str, Any], req: Signed, app: sqlite3.Row) -> tuple[Site, str]:
    if body.get("app_id") != req.auth.app:
        raise IntakeError(400, "app_id does not match the app of the Authorization header")
    prefix = app["prefix"]
    identity = body.get("identity")
    if not isinstance(identity, str) or handle_key(identity) != handle_key(node_identity(prefix)):
        raise IntakeError(400, f"identity must be {node_identity(prefix)}")
    prefixes = body.get("prefixes")
    if (
        not isinstance(prefixes, list)
        or len(prefixes) != 1
        or not isinstance(prefixes[0], str)
        or prefixes[0].upper() != app["prefix_key"]
    ):
        raise IntakeError(400, f'prefixes must be ["{prefix}"], the prefix of this app')
    name = body.get("name", "")
    if not isinstance(name, str) or len(name) > MAX_NAME_CHARS:
        raise IntakeError(400, f"name must be a string of at most {MAX_NAME_CHARS} characters")
    return parse_site(body.get("site")), name


def _expires(cert: str) -> int:
    exp = jws.decode(cert).payload.get("exp")
    return exp if isinstance(exp, int) else 0


def register(conn: sqlite3.Connection, root: Root, req: Signed, body: Any, now: int) -> Any:
    """``POST /intake/v1/register``: see the README; returns the answer's JSON."""
    if not isinstance(body, dict):
        raise IntakeError(400, "the body must be a JSON object")
    jwk, alg = key_of(body.get("public_key"))
    with store.write(conn):
        app = _authenticate(conn, req, now, (jwk, alg))
        site, name = _check_registration(body, req, app)
        app_id, prefix = app["app_id"], app["prefix"]
        identity = node_identity(prefix)
        thumbprint = jwk_thumbprint(jwk)
        node = conn.execute("SELECT * FROM nodes WHERE app_id = ?", (app_id,)).fetchone()
        if node is not None and node["thumbprint"] != thumbprint:
            raise IntakeError(409, "this app is registered with another key")
        if node is None or _expires(node["cert"]) - now < CERT_RENEW_BEFORE:
            cert = issue_node_cert(root.key, identity, jwk, [prefix], now)
        else:
            cert = node["cert"]
        conn.execute(
            "INSERT INTO nodes (app_id, identity, public_key, thumbprint, site, name, cert, "
            "registered, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (app_id) DO UPDATE SET site = excluded.site, name = excluded.name, "
            "cert = excluded.cert, updated = excluded.updated",
            (
                app_id,
                identity,
                orjson.dumps(jwk).decode(),
                thumbprint,
                orjson.dumps(site.to_json()).decode(),
                name,
                cert,
                now,
                now,
            ),
        )
        conn.execute(
            "INSERT INTO prefixes (prefix_key, prefix, app_id, kind, status, created, updated) "
            "VALUES (?, ?, ?, 'node', 'approved', ?, ?) "
            "ON CONFLICT (prefix_key) DO UPDATE SET updated = excluded.updated",
            (app["prefix_key"], prefix, app_id, now, now),
        )
        _remember_nonce(conn, req, now)
    return {
        "app_id": app_id,
        "prefixes": [prefix],
        "cert": cert,
        "root": {"identity": ROOT_IDENTITY, "public_key": root.jwk, "cert": root.cert},
    }


# --- batches ---------------------------------------------------------------------------------


def _strictly_under(prefix: str, parent: str) -> bool:
    return protocol.is_under(prefix, parent) and prefix.upper() != parent.upper()


def _prefix_item(conn: sqlite3.Connection, app: sqlite3.Row, item: dict[str, Any], now: int) -> str:
    """Apply a ``prefix`` item, recording it among the prefix's lifecycle events; the reason
    it is rejected, or ""."""
    prefix: str = item["prefix"]
    if not _strictly_under(prefix, app["prefix"]):
        return f"prefix {prefix} is not an enterprise prefix under {app['prefix']}"
    key, op = prefix.upper(), item["op"]
    row = conn.execute("SELECT * FROM prefixes WHERE prefix_key = ?", (key,)).fetchone()
    mine = row is not None and row["app_id"] == app["app_id"] and row["kind"] == "enterprise"
    if op == "delete":
        conn.execute(
            "DELETE FROM prefixes WHERE prefix_key = ? AND app_id = ? AND kind = 'enterprise'",
            (key, app["app_id"]),
        )
    elif op in ("suspend", "reactivate"):
        if not mine:
            return f"prefix {prefix} is not routed to this node"
        # Still routed: the node answers for it (that it is suspended).
    elif row is not None and not mine:
        return f"prefix {prefix} is routed elsewhere"  # apps' prefixes never overlap: defensive
    else:
        status = "approved" if app["approval"] == "auto" else "pending"
        conn.execute(
            "INSERT INTO prefixes (prefix_key, prefix, app_id, kind, status, created, updated) "
            "VALUES (?, ?, ?, 'enterprise', ?, ?, ?) "
            "ON CONFLICT (prefix_key) DO UPDATE SET prefix = excluded.prefix, "
            "updated = excluded.updated",
            (key, prefix, app["app_id"], status, now, now),
        )
    reason = item.get("reason")
    conn.execute(
        "INSERT INTO prefix_events (app_id, prefix_key, prefix, op, reason, received) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (app["app_id"], key, prefix, op, reason[:1000] if isinstance(reason, str) else "", now),
    )
    return ""


def _stats_item(conn: sqlite3.Connection, app: sqlite3.Row, item: dict[str, Any], now: int) -> str:
    """Store a ``stats`` item (a later one for the same interval replaces it)."""
    prefix: str = item["prefix"]
    if not protocol.is_under(prefix, app["prefix"]):
        return f"prefix {prefix} is not under {app['prefix']}"
    conn.execute(
        "INSERT INTO stats (app_id, prefix_key, prefix, start, seconds, registrations, "
        "updates, deletions, resolutions, received) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (app_id, prefix_key, start, seconds) DO UPDATE SET "
        "prefix = excluded.prefix, registrations = excluded.registrations, "
        "updates = excluded.updates, deletions = excluded.deletions, "
        "resolutions = excluded.resolutions, received = excluded.received",
        (
            app["app_id"],
            prefix.upper(),
            prefix,
            item["start"],
            item["seconds"],
            *(item[name] for name in protocol.STATS_COUNTS),
            now,
        ),
    )
    return ""


def _item(conn: sqlite3.Connection, app: sqlite3.Row, item: object, now: int) -> dict[str, Any]:
    ident = item.get("id") if isinstance(item, dict) else None
    keyed = isinstance(ident, str) and 1 <= len(ident) <= 200
    if keyed:
        seen = conn.execute(
            "SELECT 1 FROM items WHERE app_id = ? AND id = ?", (app["app_id"], ident)
        ).fetchone()
        if seen is not None:
            return {"id": ident, "status": "duplicate"}
    try:
        checked = protocol.check_item(item)
        apply = _prefix_item if checked["kind"] == "prefix" else _stats_item
        error = apply(conn, app, checked, now)
    except ProtocolError as exc:
        error = str(exc)
    status = "rejected" if error else "accepted"
    if keyed:
        kind = item.get("kind") if isinstance(item, dict) else None
        conn.execute(
            "INSERT INTO items (app_id, id, kind, status, error, received) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (app["app_id"], ident, kind if isinstance(kind, str) else None, status, error, now),
        )
    return {"id": ident, "status": status, **({"error": error} if error else {})}


def batch(conn: sqlite3.Connection, req: Signed, body: Any, now: int) -> Any:
    """``POST /intake/v1/batches``: every item answered, in order, in one transaction."""
    with store.write(conn):
        app = _authenticate(conn, req, now)
        try:
            items = protocol.check_batch(body)
        except ProtocolError as exc:
            raise IntakeError(400, str(exc)) from None
        results = [_item(conn, app, item, now) for item in items]
        counts = Counter(r["status"] for r in results)
        conn.execute(
            "UPDATE apps SET accepted = accepted + ?, duplicate = duplicate + ?, "
            "rejected = rejected + ? WHERE app_id = ?",
            (counts["accepted"], counts["duplicate"], counts["rejected"], app["app_id"]),
        )
        _remember_nonce(conn, req, now)
    return {"results": results}


# --- heartbeats ------------------------------------------------------------------------------


def heartbeat(conn: sqlite3.Connection, req: Signed, body: Any, now: int) -> Any:
    """``POST /intake/v1/heartbeat``: the node's latest status and when it came."""
    with store.write(conn):
        _authenticate(conn, req, now)
        status = body.get("status") if isinstance(body, dict) else None
        if not isinstance(status, dict):
            raise IntakeError(400, 'the body must be {"status": {...}}')
        text = orjson.dumps(status)
        if len(text) > MAX_STATUS_BYTES:
            raise IntakeError(400, f"status larger than {MAX_STATUS_BYTES} bytes")
        conn.execute(
            "INSERT INTO heartbeats (app_id, time, status) VALUES (?, ?, ?) "
            "ON CONFLICT (app_id) DO UPDATE SET time = excluded.time, status = excluded.status",
            (req.auth.app, now, text.decode()),
        )
        _remember_nonce(conn, req, now)
    return {"ok": True, "time": now}
