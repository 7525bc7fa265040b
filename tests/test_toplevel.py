"""The mock top-level node's intake API: registration, batches, heartbeats, and what it
refuses — each refusal leaving nothing behind (checked through the JSON views). Real
``idnode toplevel serve`` processes on port 0; the node side signs with ``sync.protocol``."""

from __future__ import annotations

import re
import time
from pathlib import Path

import orjson
import pytest

from registry.signing import jws
from registry.signing.keys import SigningKey, jwk_thumbprint
from sync import protocol
from sync.toplevel import home
from sync.toplevel.web import TL, TopLevel, make_app
from tests.procs import cli
from tests.toplevel_support import (
    PREFIX,
    init,
    new_app,
    ok,
    prefix_item,
    registration,
    serving,
    signed,
    stats_item,
    with_node,
)

REGISTER, BATCH, HEARTBEAT = protocol.REGISTER_PATH, protocol.BATCH_PATH, protocol.HEARTBEAT_PATH


def payload(text: str) -> dict[str, object]:
    return jws.decode(text).payload


async def test_register_then_reregister_is_idempotent(tmp_path: Path) -> None:
    data = tmp_path / "tl"
    root_jwk = init(data)
    key = SigningKey.generate("ES256")
    async with serving(data) as tl:
        app = new_app(data)  # created while serving: the CLI shares the database
        first = await tl.register(app, key, tcp_port=2641, name="first")
        assert first.status == 200, first
        body = first.body
        assert body["app_id"] == app and body["prefixes"] == [PREFIX]
        assert body["root"]["identity"] == "300:0.0/0.0"
        assert body["root"]["public_key"] == root_jwk
        root_cert = payload(body["root"]["cert"])
        assert root_cert["iss"] == root_cert["sub"] == "300:0.0/0.0"
        assert root_cert["perms"] == [{"handle": "0.NA/0.NA", "perm": "everything"}]
        assert root_cert["publicKey"] == root_jwk
        assert root_cert["exp"] - root_cert["iat"] == 10 * 365 * 86400
        cert = payload(body["cert"])
        assert cert["iss"] == "300:0.0/0.0" and cert["sub"] == f"600:0.NA/{PREFIX}"
        assert cert["publicKey"] == key.public_jwk()
        assert cert["perms"] == [
            {"handle": f"0.NA/{PREFIX}", "perm": "thisHandle"},
            {"handle": f"0.NA/{PREFIX}", "perm": "derivedPrefixes"},
        ]
        assert cert["exp"] - cert["iat"] == 2 * 365 * 86400

        (node,) = (await tl.view("nodes"))["nodes"]
        assert node["app_id"] == app and node["name"] == "first"
        assert node["prefixes"] == [PREFIX] and node["identity"] == f"600:0.NA/{PREFIX}"
        assert node["thumbprint"] == jwk_thumbprint(key.public_jwk())
        assert node["site"]["tcp_port"] == 2641 and node["heartbeat"] is None
        (routed,) = (await tl.view("prefixes"))["prefixes"]
        assert routed | {"created": 0, "updated": 0} == {
            "prefix": PREFIX,
            "handle": f"0.NA/{PREFIX}",
            "app_id": app,
            "kind": "node",
            "status": "approved",
            "state": "active",
            "created": 0,
            "updated": 0,
        }

        again = await tl.register(app, key, http="http://127.0.0.1:9009", name="second")
        assert again.status == 200, again
        assert again.body == body  # the same answer, the same certificate
        (node,) = (await tl.view("nodes"))["nodes"]
        assert node["site"]["http"] == "http://127.0.0.1:9009" and node["name"] == "second"
        assert len((await tl.view("prefixes"))["prefixes"]) == 1
        listed = ok(cli("toplevel", "app", "list", "--data", data))
        assert f"{app}  {PREFIX}  auto  registered" in listed


async def test_register_refusals_record_nothing(tmp_path: Path) -> None:
    data = tmp_path / "tl"
    init(data)
    app = new_app(data)
    key, other = SigningKey.generate(), SigningKey.generate()
    async with serving(data) as tl:
        empty = await tl.state()

        async def refused(req: object, status: int, reason: str) -> None:
            answer = await tl.send(req)  # type: ignore[arg-type]
            assert answer.status == status, answer
            assert reason in answer.body["error"], answer.body
            assert set(answer.body) == {"error"}
            if status == 401:
                assert answer.headers["WWW-Authenticate"] == "IDNODE-SIG"

        body = registration(app, key)
        await refused(signed(key, "no-such-app", REGISTER, body), 401, "unknown app")
        # Forged: the body names key's public key but another key signed it.
        await refused(signed(other, app, REGISTER, body), 401, "bad signature")
        stale = int(time.time()) - protocol.MAX_SKEW - 60
        await refused(signed(key, app, REGISTER, body, ts=stale), 401, "stale")
        future = int(time.time()) + protocol.MAX_SKEW + 60
        await refused(signed(key, app, REGISTER, body, ts=future), 401, "stale")
        wrong = registration(app, key, prefixes=["88.119"])
        await refused(signed(key, app, REGISTER, wrong), 400, "prefixes must be")
        wrong = registration(app, key, prefixes=["88.118", "88.119"])
        await refused(signed(key, app, REGISTER, wrong), 400, "prefixes must be")
        wrong = registration(app, key, identity="600:0.NA/88.119")
        await refused(signed(key, app, REGISTER, wrong), 400, "identity")
        wrong = registration(app, key, app_id="someone-else")
        await refused(signed(key, app, REGISTER, wrong), 400, "app_id")
        wrong = registration(app, key, site={"http": "ftp://x", "address": "127.0.0.1"})
        await refused(signed(key, app, REGISTER, wrong), 400, "site http")
        wrong = registration(app, key, site={"http": "http://x", "address": "example.org"})
        await refused(signed(key, app, REGISTER, wrong), 400, "site address")
        wrong = registration(app, key, public_key={"kty": "OKP", "crv": "Ed25519", "x": "AA"})
        await refused(signed(key, app, REGISTER, wrong), 400, "public_key")
        tampered = signed(key, app, REGISTER, body)
        tampered.body = tampered.body.replace(b"test node", b"evil node")
        await refused(tampered, 401, "bad signature")
        assert await tl.state() == empty

        # A replay: the same header and body again, after the node moved on.
        first = signed(key, app, REGISTER, body)
        assert (await tl.send(first)).status == 200
        moved = await tl.register(app, key, http="http://127.0.0.1:9009")
        assert moved.status == 200
        before = await tl.state()
        await refused(first, 401, "replayed")
        assert await tl.state() == before
        assert before["nodes"]["nodes"][0]["site"]["http"] == "http://127.0.0.1:9009"

        # Another key for a registered app: 409, the registered key stays.
        await refused(signed(other, app, REGISTER, registration(app, other)), 409, "another key")
        assert await tl.state() == before


async def test_batches_accept_reject_and_deduplicate(tmp_path: Path) -> None:
    data = tmp_path / "tl"
    init(data)
    app = new_app(data)
    key = SigningKey.generate()
    async with serving(data) as tl:
        before_registration = await tl.batch(key, app, [prefix_item("p0", "88.118.7")])
        assert before_registration.status == 401, before_registration
        assert "register first" in before_registration.body["error"]
        assert (await tl.register(app, key)).status == 200

        now = int(time.time()) // 60 * 60
        items = [
            prefix_item("p1", "88.118.8"),
            prefix_item("p2", "88.119.1"),  # not under the app's prefix
            prefix_item("p3", PREFIX),  # the node's own prefix is no enterprise prefix
            stats_item("s1", "88.118.8", now, 1, 2, 3, 4),
            stats_item("s2", "99.1", now, 1, 2, 3, 4),  # not under the app's prefix
            {"id": "x1", "kind": "bogus", "prefix": "88.118.9"},
            {"kind": "prefix", "op": "create", "prefix": "88.118.9"},  # no id
            prefix_item("p1", "88.118.10"),  # the same id again in one batch
        ]
        answer = await tl.batch(key, app, items)
        assert answer.status == 200, answer
        results = answer.body["results"]
        assert [(r["id"], r["status"]) for r in results] == [
            ("p1", "accepted"),
            ("p2", "rejected"),
            ("p3", "rejected"),
            ("s1", "accepted"),
            ("s2", "rejected"),
            ("x1", "rejected"),
            (None, "rejected"),
            ("p1", "duplicate"),
        ]
        assert "not an enterprise prefix under 88.118" in results[1]["error"]
        assert "error" not in results[0] and "error" not in results[7]
        assert all(r["error"] for r in results if r["status"] == "rejected")
        assert await tl.counters(app) == {"accepted": 2, "duplicate": 1, "rejected": 5, "ids": 6}
        routed = {p["prefix"]: p for p in (await tl.view("prefixes"))["prefixes"]}
        assert set(routed) == {PREFIX, "88.118.8"}
        assert routed["88.118.8"]["kind"] == "enterprise"
        assert routed["88.118.8"]["status"] == "approved"

        # The whole batch again (a retry with a new nonce): every keyed item a duplicate,
        # nothing applied twice.
        stats_before = await tl.view("stats")
        again = await tl.batch(key, app, items)
        assert [r["status"] for r in again.body["results"]] == ["duplicate"] * 6 + [
            "rejected",
            "duplicate",
        ]
        assert await tl.counters(app) == {"accepted": 2, "duplicate": 8, "rejected": 6, "ids": 6}
        assert await tl.view("stats") == stats_before

        # Refused whole, recording nothing: too many items, none, a bad shape, a replay,
        # a signature by another key.
        state = await tl.state()
        too_many = [prefix_item(f"m{i}", f"88.118.{i}") for i in range(protocol.MAX_BATCH + 1)]
        for bad in (too_many, []):
            answer = await tl.batch(key, app, bad)
            assert answer.status == 400 and "1-100 items" in answer.body["error"], answer
        answer = await tl.post(key, app, BATCH, {"things": []})
        assert answer.status == 400, answer
        req = signed(key, app, BATCH, {"items": [prefix_item("r1", "88.118.11")]})
        assert (await tl.send(req)).status == 200
        state = await tl.state()
        replay = await tl.send(req)
        assert replay.status == 401 and "replayed" in replay.body["error"]
        forged = await tl.batch(SigningKey.generate(), app, [prefix_item("f1", "88.118.12")])
        assert forged.status == 401 and "bad signature" in forged.body["error"]
        assert await tl.state() == state
        assert len(too_many) == protocol.MAX_BATCH + 1

        # Exactly MAX_BATCH items is fine; delete removes a route.
        full = [prefix_item(f"m{i}", f"88.118.{i}") for i in range(protocol.MAX_BATCH)]
        answer = await tl.batch(key, app, full)
        assert [r["status"] for r in answer.body["results"]] == ["accepted"] * protocol.MAX_BATCH
        answer = await tl.batch(key, app, [prefix_item("d1", "88.118.8", "delete")])
        assert answer.body["results"] == [{"id": "d1", "status": "accepted"}]
        routed = {p["prefix"] for p in (await tl.view("prefixes"))["prefixes"]}
        assert "88.118.8" not in routed and "88.118.11" in routed
        assert (await tl.get("/api/handles/0.NA/88.118.8")).status == 404


async def test_stats_replace_by_interval(tmp_path: Path) -> None:
    t = 1_700_000_000
    async with with_node(tmp_path / "tl") as (tl, app, key):
        first = [
            stats_item("a", "88.118.8", t, 5, 1, 0, 100),
            stats_item("b", "88.118.8", t + 60, 1, 0, 0, 10),
            stats_item("c", PREFIX, t, 0, 0, 0, 7),  # the node's own prefix counts too
        ]
        assert [r["status"] for r in (await tl.batch(key, app, first)).body["results"]] == [
            "accepted"
        ] * 3
        # A later item for the same (prefix, start, seconds) replaces the counts.
        later = [stats_item("a2", "88.118.8", t, 6, 2, 1, 150)]
        assert (await tl.batch(key, app, later)).body["results"][0]["status"] == "accepted"
        # The same interval start with another length is another interval.
        longer = [stats_item("a3", "88.118.8", t, 1, 1, 1, 1, seconds=3600)]
        assert (await tl.batch(key, app, longer)).body["results"][0]["status"] == "accepted"

        stats = (await tl.get("/toplevel/v1/stats?prefix=88.118.8")).body
        rows = [
            (r["start"], r["seconds"], r["registrations"], r["resolutions"])
            for r in stats["intervals"]
        ]
        assert rows == [(t, 60, 6, 150), (t, 3600, 1, 1), (t + 60, 60, 1, 10)]
        assert all(r["prefix"] == "88.118.8" and r["app_id"] == app for r in stats["intervals"])
        assert stats["totals"] == [
            {
                "prefix": "88.118.8",
                "intervals": 3,
                "registrations": 8,
                "updates": 3,
                "deletions": 2,
                "resolutions": 161,
            }
        ]
        everything = await tl.view("stats")
        assert {t["prefix"] for t in everything["totals"]} == {PREFIX, "88.118.8"}
        assert len(everything["intervals"]) == 4
        page = await tl.get("/")
        assert page.status == 200 and "text/html" in page.headers["Content-Type"]
        assert "88.118.8" in page.body and app in page.body and "161" in page.body


async def test_manual_approval_through_the_cli(tmp_path: Path) -> None:
    data = tmp_path / "tl"
    async with with_node(data, approval="manual") as (tl, app, key):
        assert (await tl.get(f"/api/handles/0.NA/{PREFIX}")).status == 200  # the node's own
        answer = await tl.batch(key, app, [prefix_item("p1", "88.118.8")])
        assert answer.body["results"] == [{"id": "p1", "status": "accepted"}]
        routed = {p["prefix"]: p["status"] for p in (await tl.view("prefixes"))["prefixes"]}
        assert routed == {PREFIX: "approved", "88.118.8": "pending"}
        assert (await tl.get("/api/handles/0.NA/88.118.8")).status == 404
        assert "88.118.8  pending  enterprise" in ok(
            cli("toplevel", "prefix", "list", "--data", data)
        )

        assert ok(cli("toplevel", "prefix", "approve", "--data", data, "88.118.8")).strip() == (
            "approved 88.118.8"
        )
        found = await tl.get("/api/handles/0.NA/88.118.8")
        assert found.status == 200 and found.body["responseCode"] == 1
        again = ok(cli("toplevel", "prefix", "approve", "--data", data, "88.118.8"))
        assert "already approved" in again
        # An update of an approved prefix keeps it routed.
        answer = await tl.batch(key, app, [prefix_item("p2", "88.118.8", "update")])
        assert answer.body["results"][0]["status"] == "accepted"
        assert (await tl.get("/api/handles/0.NA/88.118.8")).status == 200
        listed = orjson.loads(ok(cli("toplevel", "prefix", "list", "--data", data, "--json")))
        assert {p["prefix"]: p["status"] for p in listed} == {
            PREFIX: "approved",
            "88.118.8": "approved",
        }


async def test_heartbeat(tmp_path: Path) -> None:
    async with with_node(tmp_path / "tl") as (tl, app, key):
        status = {"queue": 3, "version": "0.1.0", "nested": {"ok": True}}
        before = int(time.time())
        answer = await tl.post(key, app, HEARTBEAT, {"status": status})
        assert answer.status == 200, answer
        assert answer.body["ok"] is True and before <= answer.body["time"] <= time.time()
        (node,) = (await tl.view("nodes"))["nodes"]
        assert node["heartbeat"]["status"] == status
        assert node["heartbeat"]["time"] == answer.body["time"]
        assert 0 <= node["heartbeat"]["age"] < 60

        state = await tl.state()
        big = {"status": {"x": "y" * (64 * 1024)}}
        for body, code in (
            (big, 400),
            ({"status": [1, 2]}, 400),
            ({}, 400),
        ):
            answer = await tl.post(key, app, HEARTBEAT, body)
            assert answer.status == code, answer
        answer = await tl.post(SigningKey.generate(), app, HEARTBEAT, {"status": {}})
        assert answer.status == 401
        assert await tl.state() == state


@pytest.mark.parametrize(
    ("headers", "body", "status", "reason"),
    [
        ({}, b"{}", 401, "missing Authorization"),
        ({"Authorization": "Basic abc"}, b"{}", 401, "scheme"),
        ({"Authorization": 'IDNODE-SIG app="a", ts="²", nonce="x", sig="y"'}, b"{}", 401, "ts"),
    ],
)
async def test_bad_authorization_headers(
    tmp_path: Path, headers: dict[str, str], body: bytes, status: int, reason: str
) -> None:
    data = tmp_path / "tl"
    init(data)
    async with (
        serving(data) as tl,
        tl.session.post(tl.url + BATCH, data=body, headers=headers) as resp,
    ):
        assert resp.status == status
        assert reason in (await resp.json())["error"]


async def test_http_errors(tmp_path: Path) -> None:
    data = tmp_path / "tl"
    init(data)
    app = new_app(data)
    key = SigningKey.generate()
    async with serving(data) as tl:
        huge = b'{"items": ["' + b"x" * protocol.MAX_BODY + b'"]}'
        answer = await tl.send(signed(key, app, BATCH, huge))
        assert answer.status == 413 and "larger than" in answer.body["error"], answer
        answer = await tl.send(signed(key, app, REGISTER, b"{not json"))
        assert answer.status == 400 and "malformed JSON" in answer.body["error"], answer
        answer = await tl.send(signed(key, app, REGISTER, b"[1, 2]"))
        assert answer.status == 400, answer
        missing = await tl.get("/intake/v1/nothing")
        assert missing.status == 404 and "error" in missing.body
        async with tl.session.get(tl.url + REGISTER) as resp:
            assert resp.status == 405
            assert "error" in await resp.json()
        assert await tl.view("items") == {
            "apps": [
                {
                    "app_id": app,
                    "prefix": PREFIX,
                    "accepted": 0,
                    "duplicate": 0,
                    "rejected": 0,
                    "ids": 0,
                }
            ]
        }


def test_openapi_documents_every_route(tmp_path: Path) -> None:
    root, _ = home.init(tmp_path / "tl", "EdDSA")
    app = make_app(TopLevel(home.open_db(tmp_path / "tl"), root))
    routes = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    spec = (Path(__file__).parents[1] / "sync" / "openapi.yaml").read_text("utf-8")
    documented = set(re.findall(r"^  (/\S*):$", spec, re.MULTILINE))
    assert routes == documented
    app[TL].close()
