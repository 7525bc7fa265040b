"""Signed records end to end: every write path leaves a record that verifies up to the
node's root, the verify command, key files, algorithms, and rotation under load."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from registry.audit import Caller
from registry.keyring import Keyring
from registry.model.identifiers import parse
from registry.model.values import Value
from registry.rotation import rotate
from registry.signing.verify import Report, ValueStatus
from resolver.config import ConfigError, load
from resolver.node import Node
from resolver.verification import http_fetch, verify_with
from tests.conftest import (
    ENT8_ADMIN,
    JSON,
    NODE_ADMIN,
    Server,
    init_node,
)
from tests.procs import cli, serving


def root_of(server: Server) -> dict[str, Any]:
    return server.node.keyring.key(0).public_jwk()


async def verify(server: Server, handle: str, roots: list[dict[str, Any]] | None = None) -> Report:
    """Verify as a remote client does: everything fetched over HTTP."""
    fetch = http_fetch(server.session, server.url)
    return await verify_with(fetch, handle, roots or [root_of(server)])


def assert_verified(report: Report) -> None:
    assert report.ok, report.reasons
    assert report.values and all(
        s in (ValueStatus.VERIFIED, ValueStatus.SIGNATURE) for s in report.values.values()
    ), report.values


async def put(
    server: Server,
    handle: str,
    values: list[dict[str, Any]],
    query: str = "",
    headers: dict[str, str] = ENT8_ADMIN,
) -> int:
    async with server.session.put(
        server.api(handle) + query, json={"values": values}, headers={**headers, **JSON}
    ) as r:
        return r.status


URL1 = {"index": 1, "type": "URL", "data": "https://example.org/1"}
DESC = {"index": 2, "type": "DESC", "data": "a pump"}


async def test_every_write_path_leaves_a_verified_record(server: Server) -> None:
    h = "88.118.8/SIGNED"
    assert await put(server, h, [URL1]) == 201  # create
    assert_verified(await verify(server, h))
    assert await put(server, h, [URL1, DESC]) == 200  # replace
    assert_verified(await verify(server, h))
    assert await put(server, h, [{**DESC, "index": 3}], "?index=3") == 201  # add a value
    assert_verified(await verify(server, h))
    assert await put(server, h, [{**URL1, "data": "https://e/2"}], "?index=1") == 200  # modify
    assert_verified(await verify(server, h))
    async with server.session.delete(server.api(h) + "?index=2", headers=ENT8_ADMIN) as r:
        assert r.status == 200  # remove a value
    report = await verify(server, h)
    assert_verified(report)
    assert sorted(report.values) == [1, 3, 400]
    # Batch import (the CLI's path) and a prefix allocated over HTTP by the node admin.
    await server.node.registry.import_records(
        [(parse("88.118.8/IMPORTED"), [Value(1, "URL", b"https://e/imported")])]
    )
    assert_verified(await verify(server, "88.118.8/IMPORTED"))
    secret = {"index": 300, "type": "HS_SECKEY", "data": "s7", "permissions": "1100"}
    admin = {
        "index": 100,
        "type": "HS_ADMIN",
        "data": {
            "format": "admin",
            "value": {"handle": "0.NA/88.118.7", "index": 300, "permissions": "111111111111"},
        },
    }
    assert await put(server, "0.NA/88.118.7", [admin, secret], headers=NODE_ADMIN) == 201
    assert_verified(await verify(server, "0.NA/88.118.7"))  # the secret is not public
    for handle in ("0.NA/88.118", "0.NA/88.118.8"):  # init's and the fixture's records
        assert_verified(await verify(server, handle))


async def test_filtered_answer_still_verifies(server: Server) -> None:
    h = "88.118.8/FILTER"
    assert await put(server, h, [URL1, DESC]) == 201
    async with server.session.get(server.api(h) + "?type=URL&type=HS_SIGNATURE") as r:
        body = await r.json()
    from registry.model.jsonvalues import value_from_json

    values = [value_from_json(v, keep_timestamp=True) for v in body["values"]]
    from registry.signing.verify import verify_record

    report = await verify_record(
        h,
        values,
        fetch=http_fetch(server.session, server.url),
        trust_roots=[root_of(server)],
        now=int(server.node.registry.clock()),
    )
    assert report.ok and report.values[1] == ValueStatus.VERIFIED and 2 not in report.values


async def test_untrusted_root_fails(server: Server, tmp_path: Path) -> None:
    assert await put(server, "88.118.8/R", [URL1]) == 201
    other = Keyring(tmp_path, ["99.1"])
    other.create("EdDSA")
    report = await verify(server, "88.118.8/R", [other.key(0).public_jwk()])
    assert not report.ok
    assert any("untrusted" in r or "trust" in r for r in report.reasons), report.reasons


async def test_node_keys_are_not_the_clients(server: Server) -> None:
    key = {"index": 600, "type": "HS_PUBKEY", "data": "x"}
    async with server.session.put(
        server.api("0.NA/88.118") + "?index=600",
        json={"values": [key]},
        headers={**NODE_ADMIN, **JSON},
    ) as r:
        assert r.status == 400
        assert (await r.json())["responseCode"] == 202
    # Replacing the prefix handle whole keeps the node's keys and signature.
    async with server.session.get(server.api("0.NA/88.118"), headers=NODE_ADMIN) as r:
        mine = [v for v in (await r.json())["values"] if v["index"] in (100, 300)]
    assert await put(server, "0.NA/88.118", mine, headers=NODE_ADMIN) == 200
    report = await verify(server, "0.NA/88.118")
    assert_verified(report)
    assert {600, 601, 700, 701} <= set(report.values)


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
async def test_other_algorithms(tmp_path: Path, alg: str) -> None:
    data = tmp_path / "node"
    await init_node(data, signing_alg=alg)
    node = await Node.open(load(data))
    try:
        assert node.keyring.key(1).alg == alg
        await node.registry.import_records([(parse("88.118.8/A"), [Value(1, "URL", b"u")])])
        from resolver.verification import local_fetch

        report = await verify_with(
            local_fetch(node), "88.118.8/A", [node.keyring.key(0).public_jwk()]
        )
        assert report.ok, report.reasons
    finally:
        await node.close()


async def test_key_files_are_private_and_passphrase_protected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "node"
    monkeypatch.setenv("IDNODE_KEY_PASSPHRASE", "correct horse")
    await init_node(data)
    for pem in (data / "keys").glob("*.pem"):
        assert pem.stat().st_mode & 0o777 == 0o600
        assert b"ENCRYPTED" in pem.read_bytes()
    monkeypatch.setenv("IDNODE_KEY_PASSPHRASE", "wrong")
    with pytest.raises(ConfigError, match="signing key"):
        await Node.open(load(data))
    monkeypatch.delenv("IDNODE_KEY_PASSPHRASE")
    result = cli("get", "88.118.8/x", "--data", data)
    assert result.returncode == 2 and "signing key" in result.stderr
    assert "Traceback" not in result.stderr


async def test_verify_command_over_http(tmp_path: Path) -> None:
    data = tmp_path / "node"
    await init_node(data)
    shown = cli("keys", "show", "--root", "--data", data)
    assert shown.returncode == 0, shown.stderr
    root = tmp_path / "root.jwk"
    root.write_text(shown.stdout)
    async with serving(data) as served, aiohttp.ClientSession() as session:
        async with session.put(
            served.api("88.118.8/V"), json={"values": [URL1]}, headers={**ENT8_ADMIN, **JSON}
        ) as r:
            assert r.status == 201
        ok = await asyncio.to_thread(
            cli, "verify", "88.118.8/V", "--server", served.url, "--trust-root", root
        )
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "VERIFIED" in ok.stdout
        as_json = await asyncio.to_thread(
            cli, "verify", "88.118.8/V", "--server", served.url, "--trust-root", root, "--json"
        )
        report = json.loads(as_json.stdout)
        assert report["ok"] is True and report["values"]["1"] == "verified"
        stranger = tmp_path / "stranger.jwk"
        ring = Keyring(tmp_path / "other", ["99.1"])
        ring.create("EdDSA")
        stranger.write_text(json.dumps(ring.key(0).public_jwk()))
        bad = await asyncio.to_thread(
            cli, "verify", "88.118.8/V", "--server", served.url, "--trust-root", stranger
        )
        assert bad.returncode == 1 and "NOT VERIFIED" in bad.stdout
        missing = await asyncio.to_thread(
            cli, "verify", "88.118.8/NOPE", "--server", served.url, "--trust-root", root
        )
        assert missing.returncode == 1 and "not found" in missing.stderr


async def test_rotation_resumes_after_a_crash(tmp_path: Path) -> None:
    data = tmp_path / "node"
    await init_node(data)
    node = await Node.open(load(data))
    try:
        await node.registry.import_records(
            [(parse(f"88.118.8/R{i:03d}"), [Value(1, "URL", f"u{i}".encode())]) for i in range(120)]
        )
        real = node.registry.resign
        calls = 0

        async def crashing(keys: list[str], caller: Caller) -> int:
            nonlocal calls
            calls += 1
            if calls == 3:
                raise RuntimeError("power cut")
            return await real(keys, caller)

        node.registry.resign = crashing  # type: ignore[method-assign]
        with pytest.raises(RuntimeError):
            await rotate(
                node.registry,
                node.keyring,
                node.ensure_keys_published,
                batch=25,
                validity=node.config.signature_validity,
            )
        state = node.keyring.load_state()
        assert state.rotation and state.rotation["switched"] and state.rotation["after"]
        node.registry.resign = real  # type: ignore[method-assign]
        report = await rotate(
            node.registry,
            node.keyring,
            node.ensure_keys_published,
            batch=25,
            validity=node.config.signature_validity,
        )
        assert report.resumed and report.new_key == 2
        state = node.keyring.load_state()
        assert state.current == 2 and state.rotation is None and state.retired[0]["n"] == 1
        from resolver.verification import local_fetch

        roots = [node.keyring.key(0).public_jwk()]
        for i in range(0, 120, 7):
            h = f"88.118.8/R{i:03d}"
            rep = await verify_with(local_fetch(node), h, roots)
            assert rep.ok, rep.reasons
            assert rep.signatures[0].issuer == "602:0.NA/88.118"
    finally:
        await node.close()


async def test_rotation_under_concurrent_resolution(tmp_path: Path) -> None:
    """While `idnode keys rotate` runs in another process, every answer verifies."""
    data = tmp_path / "node"
    await init_node(data)
    node = await Node.open(load(data))
    try:
        await node.registry.import_records(
            [(parse(f"88.118.8/L{i:03d}"), [Value(1, "URL", f"u{i}".encode())]) for i in range(400)]
        )
        roots = [node.keyring.key(0).public_jwk()]
    finally:
        await node.close()
    async with serving(data) as served, aiohttp.ClientSession() as session:
        fetch = http_fetch(session, served.url)
        rotating = asyncio.create_task(
            asyncio.to_thread(
                cli, "keys", "rotate", "--data", data, "--batch-size", "20", "--quiet"
            )
        )
        issuers: set[str] = set()
        checked = failures = 0
        rng = random.Random(7)
        while not rotating.done() or checked < 50:
            h = f"88.118.8/L{rng.randrange(400):03d}"
            report = await verify_with(fetch, h, roots)
            checked += 1
            if not report.ok:
                failures += 1
            issuers.update(s.issuer or "?" for s in report.signatures)
        done = await rotating
        assert done.returncode == 0, done.stderr
        assert failures == 0 and checked >= 50
        # After the rotation every record is signed by the new key (the server signs its
        # own writes with it too, having noticed the switch).
        for i in range(0, 400, 37):
            report = await verify_with(fetch, f"88.118.8/L{i:03d}", roots)
            assert report.ok and report.signatures[0].issuer == "602:0.NA/88.118"
        async with session.put(
            served.api("88.118.8/AFTER"), json={"values": [URL1]}, headers={**ENT8_ADMIN, **JSON}
        ) as r:
            assert r.status == 201
        report = await verify_with(fetch, "88.118.8/AFTER", roots)
        assert report.ok and report.signatures[0].issuer == "602:0.NA/88.118"


async def test_verify_command_bad_inputs(tmp_path: Path) -> None:
    data = tmp_path / "node"
    await init_node(data)
    for args, message in [
        (["--trust-root", str(tmp_path / "missing.jwk")], "No such file"),
        (["--server", "http://127.0.0.1:9"], "--trust-root"),
    ]:
        done = await asyncio.to_thread(cli, "verify", "88.118.8/X", "--data", data, *args)
        assert done.returncode in (1, 2) and message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    garbage = tmp_path / "garbage.jwk"
    garbage.write_text("not a key")
    done = await asyncio.to_thread(
        cli, "verify", "0.NA/88.118", "--data", data, "--trust-root", str(garbage)
    )
    assert done.returncode == 1 and "not a JWK or PEM" in done.stderr
