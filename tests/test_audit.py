"""The audit log of a node, on both store backends: an entry for every write path (HTTP,
the command line, import, key rotation), none for a rejected write but the refusal itself,
login failures (rate-bounded), configuration changes, no secret anywhere, the node admin's
``GET /api/audit``, and ``idnode audit`` finding a tampered entry."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import getpass
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from registry import auditlog
from registry.audit import Refusals
from registry.rotation import rotate
from registry.store.chain import AuditEntry, AuditQuery
from resolver.auditkeeper import AuditKeeper, record_config
from resolver.config import load, recorded_settings
from resolver.http.app import make_app
from resolver.node import Node
from resolver.transfer import import_lines
from tests.conftest import (
    ENT8_ADMIN,
    ENT9_ADMIN,
    JSON,
    NODE_ADMIN,
    Server,
    basic,
    identity,
    in_process,
    init_node,
)
from tests.pgserver import fresh_database
from tests.procs import cli
from tests.store_contract import raw_sql
from tests.test_cli import ok

ENT8_ID = "300:0.NA/88.118.8"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:{tmp_path / 'node' / 'registry.sqlite3'}"
        return
    with fresh_database() as dsn:
        yield dsn


@pytest.fixture
async def data(tmp_path: Path, store_location: str) -> Path:
    path = tmp_path / "node"
    await init_node(path, store=store_location)
    return path


@pytest.fixture
async def server(data: Path) -> AsyncIterator[Server]:
    config = load(data, env={})
    node = await Node.open(config)
    test_server = TestServer(make_app(config, node), port=0)
    await test_server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield Server(str(test_server.make_url("")).rstrip("/"), session, node, data)
    finally:
        await test_server.close()
        await node.close()


async def entries(node: Node, **query: Any) -> list[AuditEntry]:
    return [e async for e in auditlog.stream(node.store, AuditQuery(**query))]


async def newer(node: Node, since: int, **query: Any) -> list[AuditEntry]:
    return [e for e in await entries(node, **query) if e.seq > since]


async def head(node: Node) -> int:
    return (await node.store.audit_head()).seq


async def put(
    server: Server, handle: str, values: list[dict[str, Any]], auth: dict[str, str]
) -> int:
    body = json.dumps({"values": values})
    async with server.session.put(server.api(handle), data=body, headers={**auth, **JSON}) as r:
        return r.status


def url_value(text: str) -> dict[str, Any]:
    return {"index": 1, "type": "URL", "data": text}


async def test_http_writes_each_append_an_entry(server: Server) -> None:
    node, start = server.node, await head(server.node)
    assert await put(server, "88.118.8/A", [url_value("https://a")], ENT8_ADMIN) == 201
    assert await put(server, "88.118.8/A", [url_value("https://b")], ENT8_ADMIN) == 200
    assert await put(server, "88.118.8/A", [url_value("https://b")], ENT8_ADMIN) == 200  # same
    async with server.session.delete(server.api("88.118.8/A"), headers=ENT8_ADMIN) as r:
        assert r.status == 200
    got = await newer(node, start)
    assert [e.action for e in got] == ["create", "update", "delete"]
    for e in got:
        assert (e.transport, e.identity, e.address) == ("http", ENT8_ID, "127.0.0.1")
        assert (e.prefix, e.handle) == ("88.118.8", "88.118.8/A")
    create, update, delete = got
    assert create.before == "" and len(create.after) == 64
    assert update.before == create.after != update.after
    assert delete.before == update.after and delete.after == ""
    assert (await auditlog.verify(node.store)).broken is None


async def test_a_rejected_write_adds_only_its_refusal(server: Server) -> None:
    node, start = server.node, await head(server.node)
    # 403: an identity without rights over 88.118.8.
    assert await put(server, "88.118.8/B", [url_value("https://b")], ENT9_ADMIN) == 403
    # 401: no credentials at all.
    assert await put(server, "88.118.8/B", [url_value("https://b")], {}) == 401
    # 400: a body that is no record; no entry at all.
    async with server.session.put(
        server.api("88.118.8/B"), data=b"{", headers={**ENT8_ADMIN, **JSON}
    ) as r:
        assert r.status == 400
    got = await newer(node, start)
    assert [(e.action, e.identity, e.handle) for e in got] == [
        ("refused", "300:0.NA/88.118.9", "88.118.8/B"),
        ("refused", "anonymous", "88.118.8/B"),
    ]
    assert "may not" in got[0].detail


async def test_login_failures_are_recorded_once_a_minute_per_source(server: Server) -> None:
    node, start = server.node, await head(server.node)
    wrong = {"Authorization": basic(ENT8_ID, "not-the-secret")}
    for _ in range(3):
        assert await put(server, "88.118.8/C", [url_value("https://c")], wrong) == 401
    got = await newer(node, start)
    assert [(e.action, e.identity, e.transport, e.detail) for e in got] == [
        ("refused", ENT8_ID, "http", "authentication failed")
    ]
    assert await head(node) == got[0].seq  # the wrong attempts wrote nothing else


async def test_no_secret_is_recorded(server: Server) -> None:
    secret = "a-very-secret-value-4711"
    seckey = {"index": 300, "type": "HS_SECKEY", "data": secret, "permissions": "1100"}
    assert await put(server, "88.118.8/S", [seckey], ENT8_ADMIN) == 201
    wrong = {"Authorization": basic(ENT8_ID, secret + "-guess")}
    assert await put(server, "88.118.8/S", [url_value("https://s")], wrong) == 401
    text = json.dumps([e.as_json() for e in await entries(server.node)])
    assert "88.118.8/S" in text
    for form in (secret, base64.b64encode(secret.encode()).decode(), secret.encode().hex()):
        assert form not in text


async def get_audit(server: Server, query: str, auth: dict[str, str] | None) -> tuple[int, Any]:
    async with server.session.get(f"{server.url}/api/audit?{query}", headers=auth or {}) as r:
        text = await r.text()
        return r.status, json.loads(text) if text else None


async def test_the_node_admin_queries_the_log(server: Server) -> None:
    for n in range(3):
        assert await put(server, f"88.118.8/Q{n}", [url_value("https://q")], ENT8_ADMIN) == 201
    assert await put(server, "88.118.9/Q", [url_value("https://q")], ENT9_ADMIN) == 201
    status, body = await get_audit(server, "prefix=88.118.8&identity=" + ENT8_ID, NODE_ADMIN)
    assert status == 200
    assert [e["handle"] for e in body["entries"]] == [f"88.118.8/Q{n}" for n in range(3)]
    assert body["next"] is None
    status, page = await get_audit(server, f"identity={ENT8_ID.lower()}&limit=2", NODE_ADMIN)
    assert [e["handle"] for e in page["entries"]] == ["88.118.8/Q0", "88.118.8/Q1"]
    status, rest = await get_audit(server, f"identity={ENT8_ID}&after={page['next']}", NODE_ADMIN)
    assert [e["handle"] for e in rest["entries"]] == ["88.118.8/Q2"]
    assert (await get_audit(server, "prefix=88.118.9", NODE_ADMIN))[1]["entries"][0][
        "identity"
    ] == "300:0.NA/88.118.9"
    late = body["entries"][-1]["at"]
    _, since = await get_audit(server, f"since={late}", NODE_ADMIN)
    assert [e["handle"] for e in since["entries"]] == ["88.118.8/Q2", "88.118.9/Q"]
    assert (await get_audit(server, "since=yesterday", NODE_ADMIN))[0] == 400
    assert (await get_audit(server, "limit=0", NODE_ADMIN))[0] == 400


async def test_only_the_node_admin_may_read_the_log(server: Server) -> None:
    assert (await get_audit(server, "", None))[0] == 401
    assert (await get_audit(server, "", ENT8_ADMIN))[0] == 403
    wrong = {"Authorization": basic(identity("88.118"), "wrong")}
    assert (await get_audit(server, "", wrong))[0] == 401


async def test_an_import_appends_one_entry_per_batch(server: Server) -> None:
    node, start = server.node, await head(server.node)
    lines = [
        json.dumps({"handle": f"88.118.8/I{n:02d}", "values": [url_value(f"https://i/{n}")]})
        for n in range(10)
    ]
    report = await import_lines(node.registry, lines, batch=4, workers=0)
    assert report.created == 10
    got = await newer(node, start)
    assert [(e.action, e.transport, e.prefix) for e in got] == [
        ("import", "import", "88.118.8")
    ] * 3
    assert [e.detail.split(",")[0] for e in got] == ["4 records", "4 records", "2 records"]
    again = await import_lines(node.registry, lines, batch=4, workers=0)  # changes nothing
    assert again.unchanged == 10 and await newer(node, got[-1].seq) == []


async def test_key_rotation_is_recorded(server: Server) -> None:
    node = server.node
    for n in range(4):
        assert await put(server, f"88.118.8/K{n}", [url_value("https://k")], ENT8_ADMIN) == 201
    start, total = await head(node), await node.store.count()
    await rotate(node.registry, node.keyring, node.ensure_keys_published, batch=3, validity=86400)
    got = await newer(node, start)
    # The new key's certificate is published before it signs; then the switch; then every
    # record re-signed, one entry a batch.
    assert [e.action for e in got[:2]] == ["key.publish", "key.rotate"]
    assert got[0].handle == "0.NA/88.118" and got[0].before != got[0].after
    resigned = got[2:]
    assert {e.action for e in resigned} == {"key.resign"}
    assert len(resigned) == -(-total // 3)
    assert sum(int(e.detail.split()[0]) for e in resigned) == total
    assert (await auditlog.verify(node.store)).broken is None


async def test_configuration_changes_are_recorded(server: Server) -> None:
    node, start = server.node, await head(server.node)
    await record_config(node)
    await record_config(node)  # the same settings: nothing new
    node.config = dataclasses.replace(node.config, max_hops=7)
    await record_config(node)
    got = await newer(node, start, action="config")
    assert len(got) == 2
    assert got[1].before == got[0].after != got[1].after
    assert json.loads(got[1].detail)["max_hops"] == 7


def test_recorded_settings_hold_no_secret(tmp_path: Path) -> None:
    config = dataclasses.replace(
        load_fresh(tmp_path),
        key_passphrase="passphrase-1234",
        store="postgresql://idnode:pw-5678@db.example:5432/idnode",
        redis_url="redis://:redis-9012@cache.example:6379/0",
    )
    text = json.dumps(recorded_settings(config))
    for secret in ("passphrase-1234", "pw-5678", "redis-9012"):
        assert secret not in text
    assert "db.example" in text and "cache.example" in text


def load_fresh(tmp_path: Path) -> Any:
    from tests.conftest import _write_config

    _write_config(tmp_path / "cfg", {})
    return load(tmp_path / "cfg", env={})


async def test_serving_records_its_configuration_and_prunes(tmp_path: Path) -> None:
    data = tmp_path / "node"
    async with in_process(data):
        pass
    node = await Node.open(load(data, env={}), serving=False)
    try:
        assert [e.action for e in await entries(node, action="config")] == ["config"]
        keeper = AuditKeeper(node, record=False)
        assert await keeper.prune() == 0  # nothing is 400 days old yet
        kept = await head(node)
        days = node.config.audit_retention_days
        assert await keeper.prune(time.time() + days * 86400 + 60) == kept
        assert (await node.store.audit_head()).anchor_seq == kept
        assert (await auditlog.verify(node.store)).broken is None
    finally:
        await node.close()


async def test_command_line_writes_and_verify(data: Path, store_location: str) -> None:
    async def run(*args: str | Path) -> Any:
        return await asyncio.to_thread(cli, *args, "--data", data)

    ok(await run("put", "88.118.8/CLI", "--value", "URL=https://cli"))
    ok(await run("delete", "88.118.8/CLI"))
    source = data.parent / "import.jsonl"
    source.write_text(
        "".join(
            json.dumps({"handle": f"88.118.8/J{n}", "values": [url_value("https://j")]}) + "\n"
            for n in range(5)
        )
    )
    ok(await run("import", source, "--batch-size", "2", "--quiet", "--workers", "0"))
    listed = ok(await run("audit", "list", "--prefix", "88.118.8"))
    got = [json.loads(line) for line in listed.splitlines()]
    user = f"operator:{getpass.getuser()}"
    assert [(e["action"], e["transport"], e["identity"]) for e in got] == [
        ("create", "cli", user),
        ("delete", "cli", user),
        *[("import", "import", user)] * 3,
    ]
    csv_text = ok(await run("audit", "list", "--identity", user, "--format", "csv"))
    assert csv_text.splitlines()[0].startswith("seq,at,transport,identity")
    out = data.parent / "audit.jsonl"
    ok(await run("audit", "export", "--out", out))
    assert len(out.read_text().splitlines()) == got[-1]["seq"]
    assert "intact" in ok(await run("audit", "verify"))
    victim = got[1]["seq"]
    await raw_sql(store_location, f"UPDATE audit SET handle = 'elsewhere' WHERE seq = {victim}")
    tampered = await run("audit", "verify")
    assert tampered.returncode == 1, tampered.stderr
    assert f"entry {victim} altered" in tampered.stdout


def test_refusals_are_bounded_per_source_and_in_all() -> None:
    refusals = Refusals(per_minute=2)
    t = 600.0  # the start of a minute
    assert refusals.admit("300:A", "10.0.0.1", t) == ""
    assert refusals.admit("300:A", "10.0.0.1", t + 1) is None  # coalesced
    assert refusals.admit("300:A", "10.0.0.1", t + 2) is None
    assert refusals.admit("300:B", "2001:db8::1", t + 3) == ""
    assert refusals.admit("300:B", "2001:db8::2", t + 4) is None  # the same /64
    assert refusals.admit("300:C", "10.0.0.3", t + 5) is None  # the minute is full
    assert refusals.admit("300:A", "10.0.0.1", t + 60) == (
        "2 more from there before this one; 1 refusals unrecorded (rate bound)"
    )
