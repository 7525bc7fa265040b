"""A node serving the admin console on a real port, and a signed-in browser-like client
(aiohttp with a cookie jar), for the console's HTTP and browser tests."""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from resolver.config import load
from resolver.console.context import SESSIONS
from resolver.console.sessions import SessionTable
from resolver.http.app import make_app
from resolver.node import Node
from tests.conftest import SECRETS, identity, init_node

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Console:
    url: str
    app: web.Application
    node: Node

    @property
    def sessions(self) -> SessionTable:
        return self.app[SESSIONS]

    def client(self) -> aiohttp.ClientSession:
        # unsafe: keep cookies of an IP-address host (127.0.0.1), as a browser does
        return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


@contextlib.asynccontextmanager
async def console_server(tmp_path: Path, **settings: Any) -> AsyncIterator[Console]:
    """The test node's HTTP app on a real port, ``settings`` over its configuration."""
    data = tmp_path / "node"
    await init_node(data)
    config = dataclasses.replace(load(data, env={}), **settings)
    node = await Node.open(config)
    app = make_app(config, node)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield Console(str(server.make_url("")).rstrip("/"), app, node)
    finally:
        await server.close()
        await node.close()


async def sign_in(console: Console, client: aiohttp.ClientSession, prefix: str) -> str:
    """Sign ``client`` in as ``prefix``'s admin; returns the session's CSRF token."""
    form = {"identity": identity(prefix), "secret": SECRETS[prefix]}
    async with client.post(f"{console.url}/admin/signin", data=form) as resp:
        assert resp.status == 200, await resp.text()  # the home page, after the redirect
        page = await resp.text()
    found = CSRF.search(page)
    assert found is not None
    return found.group(1)
