"""Shared fixtures: a real idnode HTTP server on port 0 over a fresh data directory.

The node is prefix 88.118 (node admin ``300:0.NA/88.118``) with enterprise prefixes 88.118.8
and 88.118.9, each with its own admin ``300:0.NA/<prefix>``. Tests talk to it over real
sockets with aiohttp's client.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import json
import socket
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from registry.bootstrap import prefix_values
from registry.model.identifiers import handle_key, parse, prefix_handle
from resolver.config import load, write_initial
from resolver.http.app import make_app
from resolver.node import Node
from resolver.shell import Shell

NODE_PREFIX = "88.118"
ENT8, ENT9 = "88.118.8", "88.118.9"
SECRETS = {NODE_PREFIX: "node-secret", ENT8: "ent8-secret", ENT9: "ent9-secret"}


def identity(prefix: str) -> str:
    return f"300:{prefix_handle(prefix)}"


def basic(ident: str, secret: str) -> str:
    """An Authorization header as Handle clients send it (identity percent-encoded)."""
    user = quote(ident, safe="")
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def admin_of(prefix: str) -> dict[str, str]:
    return {"Authorization": basic(identity(prefix), SECRETS[prefix])}


NODE_ADMIN = admin_of(NODE_PREFIX)
ENT8_ADMIN = admin_of(ENT8)
ENT9_ADMIN = admin_of(ENT9)
JSON = {"Content-Type": "application/json"}

# ------------------------------------------------------------------ node-managed values
#
# Every write makes the node sign the record: an HS_SIGNATURE of its own (issuer one of its
# key identities ``60n:0.NA/88.118``) at the first free index >= 400. Its prefix handle also
# carries the node's keys (HS_PUBKEY at 600+n, HS_CERT at 700+n). Tests about what a client
# wrote look at records without these values (``client_view``) and check the signature apart.

NODE_HANDLE = prefix_handle(NODE_PREFIX)  # 0.NA/88.118: where the node's keys are published
NODE_KEY_INDEXES = range(600, 800)
SIGNATURE_INDEX_BASE = 400
DEFAULT_PERMISSIONS = "1110"


def _jws_text(value_json: dict[str, Any]) -> str | None:
    data = value_json.get("data")
    text = data.get("value") if isinstance(data, dict) else data
    return text if isinstance(text, str) else None


def jws_payload(value_json: dict[str, Any]) -> dict[str, Any] | None:
    """The decoded payload (the middle, base64url part) of a compact JWS value, or None."""
    text = _jws_text(value_json)
    parts = text.split(".") if text else []
    if len(parts) != 3:
        return None
    middle = parts[1]
    try:
        payload = json.loads(base64.urlsafe_b64decode(middle + "=" * (-len(middle) % 4)))
    except (ValueError, binascii.Error):
        return None
    return payload if isinstance(payload, dict) else None


def is_node_signature(value_json: dict[str, Any]) -> bool:
    """An HS_SIGNATURE made by this node (with any of its keys)."""
    if value_json.get("type") != "HS_SIGNATURE":
        return False
    payload = jws_payload(value_json)
    iss = payload.get("iss") if payload else None
    return isinstance(iss, str) and iss.endswith(f":{NODE_HANDLE}")


def node_managed(value_json: dict[str, Any], handle: str) -> bool:
    """A value the node keeps itself: its signature in any record, and its keys in its
    prefix handle."""
    if is_node_signature(value_json):
        return True
    return (
        handle_key(handle) == handle_key(NODE_HANDLE)
        and value_json.get("type") in ("HS_PUBKEY", "HS_CERT")
        and value_json.get("index") in NODE_KEY_INDEXES
    )


def client_view(values: Iterable[dict[str, Any]], handle: str) -> list[dict[str, Any]]:
    """The values as clients wrote them: the node-managed ones dropped, order kept."""
    return [v for v in values if not node_managed(v, handle)]


def node_signatures(values: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [v for v in values if is_node_signature(v)]


def assert_signed(values: list[dict[str, Any]], handle: str) -> dict[str, Any]:
    """The record carries exactly one node signature, for ``handle``, at the first free index
    >= 400 with default permissions, vouching for exactly the record's public values (the
    values given must be all the record's values a reader sees). Returns the signature."""
    signatures = node_signatures(values)
    assert len(signatures) == 1, [(v["index"], v["type"]) for v in values]
    sig = signatures[0]
    others = [v for v in values if v is not sig]
    taken = {v["index"] for v in others}
    free = SIGNATURE_INDEX_BASE
    while free in taken:
        free += 1
    assert sig["index"] == free >= SIGNATURE_INDEX_BASE, (sig["index"], sorted(taken))
    assert sig.get("permissions", DEFAULT_PERMISSIONS) == DEFAULT_PERMISSIONS, sig
    payload = jws_payload(sig)
    assert payload is not None
    assert handle_key(payload["sub"]) == handle_key(handle), payload
    covered = sorted(d["index"] for d in payload["digests"]["digests"])
    public = sorted(
        v["index"]
        for v in others
        if v["type"] != "HS_SIGNATURE" and v.get("permissions", DEFAULT_PERMISSIONS)[2] == "1"
    )
    assert covered == public, (covered, public)
    return sig


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _write_config(data: Path, config: dict[str, str]) -> None:
    data.mkdir(parents=True, exist_ok=True)
    path = write_initial(data, NODE_PREFIX, "test node")
    lines = [
        line
        for line in path.read_text("utf-8").splitlines()
        if line.split("=", 1)[0].strip() not in config
    ]
    lines += [f'{k} = "{v}"' for k, v in config.items()]
    path.write_text("\n".join(lines) + "\n", "utf-8")


async def init_node(data: Path, **config: str) -> None:
    """A data directory holding the test node (as `idnode init` + `prefix create` make it)."""
    _write_config(data, config)
    node = await Node.open(load(data), create_keys=True)
    try:
        await node.registry.import_records(
            [(parse(prefix_handle(p)), prefix_values(p, s)) for p, s in SECRETS.items()]
        )
        await node.ensure_keys_published()
    finally:
        await node.close()


@dataclass
class Server:
    url: str
    session: aiohttp.ClientSession
    node: Node
    data: Path

    def api(self, handle: str) -> str:
        return f"{self.url}/api/handles/{handle}"


@contextlib.asynccontextmanager
async def in_process(data: Path, **settings: Any) -> AsyncIterator[int]:
    """The node in ``data`` served in-process as ``idnode serve`` serves it, with
    ``settings`` over the configuration; yields the port."""
    await init_node(data)
    config = dataclasses.replace(load(data, env={}), http="127.0.0.1:0", **settings)
    shell = Shell(config)
    await shell.start()
    try:
        (http,) = shell.listeners
        yield http.addresses[0][1]
    finally:
        await shell.close()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    data = tmp_path / "node"
    await init_node(data)
    config = load(data)
    node = await Node.open(config)
    test_server = TestServer(make_app(config, node), port=0)
    await test_server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            url = str(test_server.make_url("")).rstrip("/")
            yield Server(url, session, node, data)
    finally:
        await test_server.close()
        await node.close()


@contextlib.asynccontextmanager
async def served_app(app: web.Application) -> AsyncIterator[str]:
    """``app`` served on a free loopback port (a stand-in for another server); its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
