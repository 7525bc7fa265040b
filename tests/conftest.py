"""Shared fixtures: a real idnode HTTP server on port 0 over a fresh data directory.

The node is prefix 88.118 (node admin ``300:0.NA/88.118``) with enterprise prefixes 88.118.8
and 88.118.9, each with its own admin ``300:0.NA/<prefix>``. Tests talk to it over real
sockets with aiohttp's client.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from registry.bootstrap import prefix_values
from registry.model.identifiers import parse, prefix_handle
from resolver.config import load, write_initial
from resolver.http.app import make_app
from resolver.node import Node

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
    node = await Node.open(load(data))
    try:
        await node.registry.import_records(
            [(parse(prefix_handle(p)), prefix_values(p, s)) for p, s in SECRETS.items()]
        )
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
