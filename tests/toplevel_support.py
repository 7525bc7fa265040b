"""Helpers for the top-level node's tests: its CLI, ``idnode toplevel serve`` as a subprocess
on port 0, and a client that signs intake requests as a node does (``sync.protocol``)."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from registry.model.jsonvalues import value_from_json
from registry.model.values import Value
from registry.signing.keys import SigningKey
from sync import protocol
from tests import procs
from tests.procs import cli
from tests.test_cli import fails as clean_failure
from tests.test_cli import ok

LISTENING = re.compile(r"^idnode-toplevel listening on (https?)://(\S+):(\d+)$")
PREFIX = "88.118"
NODE_HTTP = "http://127.0.0.1:8001"


def fails(result: Any) -> str:
    """A clean failure (:func:`tests.test_cli.fails`) in exactly one line."""
    error = clean_failure(result)
    assert error.count("\n") == 1, error
    return error


def init(data: Path, *extra: str) -> dict[str, Any]:
    """``idnode toplevel init``; returns the root's public JWK (``toplevel root``)."""
    ok(cli("toplevel", "init", "--data", data, *extra))
    jwk: dict[str, Any] = json.loads(ok(cli("toplevel", "root", "--data", data)))
    return jwk


def new_app(data: Path, prefix: str = PREFIX, approval: str = "auto") -> str:
    out = ok(
        cli("toplevel", "app", "create", "--data", data, "--prefix", prefix, "--approval", approval)
    )
    lines = out.splitlines()
    assert len(lines) == 1 and re.fullmatch(r"[A-Za-z0-9_-]{16,}", lines[0]), out
    return lines[0]


@dataclass
class Answer:
    status: int
    body: Any
    headers: Any
    elapsed: float


@dataclass
class Request:
    """A signed request as sent, so a test can send it again byte for byte."""

    path: str
    body: bytes
    authorization: str


def signed(
    key: SigningKey,
    app: str,
    path: str,
    body: Any,
    *,
    ts: int | None = None,
    nonce: str | None = None,
) -> Request:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    now = int(time.time()) if ts is None else ts
    auth = protocol.sign_request(key, app, "POST", path, raw, now, nonce)
    return Request(path, raw, auth)


def registration(
    app: str,
    key: SigningKey,
    *,
    prefix: str = PREFIX,
    http: str = NODE_HTTP,
    tcp_port: int | None = None,
    udp_port: int | None = None,
    name: str = "test node",
    **override: Any,
) -> dict[str, Any]:
    body = {
        "app_id": app,
        "identity": f"600:0.NA/{prefix}",
        "public_key": key.public_jwk(),
        "prefixes": [prefix],
        "site": {"http": http, "address": "127.0.0.1", "tcp_port": tcp_port, "udp_port": udp_port},
        "name": name,
    }
    return body | override


def prefix_item(ident: str, prefix: str, op: str = "create") -> dict[str, Any]:
    return {"id": ident, "kind": "prefix", "op": op, "prefix": prefix}


def stats_item(ident: str, prefix: str, start: int, *counts: int, seconds: int = 60) -> Any:
    names = protocol.STATS_COUNTS
    return {
        "id": ident,
        "kind": "stats",
        "prefix": prefix,
        "start": start,
        "seconds": seconds,
        **dict(zip(names, counts, strict=True)),
    }


@dataclass
class TopLevel:
    served: procs.Served
    session: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return self.served.url

    async def send(self, req: Request, *, headers: dict[str, str] | None = None) -> Answer:
        hdrs = {"Authorization": req.authorization, "Content-Type": "application/json"}
        start = time.perf_counter()
        async with self.session.post(
            self.url + req.path, data=req.body, headers=hdrs | (headers or {})
        ) as resp:
            body = await resp.json(content_type=None)
            return Answer(resp.status, body, resp.headers, time.perf_counter() - start)

    async def post(self, key: SigningKey, app: str, path: str, body: Any, **kw: Any) -> Answer:
        return await self.send(signed(key, app, path, body, **kw))

    async def register(self, app: str, key: SigningKey, **kw: Any) -> Answer:
        return await self.post(key, app, protocol.REGISTER_PATH, registration(app, key, **kw))

    async def batch(self, key: SigningKey, app: str, items: Sequence[Any]) -> Answer:
        return await self.post(key, app, protocol.BATCH_PATH, {"items": list(items)})

    async def get(self, path: str) -> Answer:
        start = time.perf_counter()
        async with self.session.get(self.url + path) as resp:
            text = await resp.text()
            body = json.loads(text) if "json" in resp.content_type else text
            return Answer(resp.status, body, resp.headers, time.perf_counter() - start)

    async def view(self, name: str) -> Any:
        answer = await self.get(f"/toplevel/v1/{name}")
        assert answer.status == 200, answer
        return answer.body

    async def state(self) -> dict[str, Any]:
        """Everything the JSON views show, to compare before and after a refused request."""
        nodes = await self.view("nodes")
        for n in nodes["nodes"]:
            if n["heartbeat"] is not None:
                n["heartbeat"].pop("age")  # grows with time, not with requests
        return {
            "nodes": nodes,
            "prefixes": await self.view("prefixes"),
            "stats": await self.view("stats"),
            "items": await self.view("items"),
        }

    async def counters(self, app: str) -> dict[str, int]:
        apps = (await self.view("items"))["apps"]
        row = next(a for a in apps if a["app_id"] == app)
        return {k: row[k] for k in ("accepted", "duplicate", "rejected", "ids")}

    async def fetch(self, handle: str) -> Sequence[Value] | None:
        """A ``verify_record`` fetch from the top-level's Handle API."""
        answer = await self.get(f"/api/handles/{handle}")
        if answer.status == 404:
            return None
        assert answer.status == 200, answer
        return [value_from_json(v, keep_timestamp=True) for v in answer.body["values"]]


@contextlib.asynccontextmanager
async def with_node(
    data: Path, *extra: str, approval: str = "auto"
) -> AsyncIterator[tuple[TopLevel, str, SigningKey]]:
    """A fresh top-level in ``data``, serving, with a node registered for 88.118: yields the
    client, the app id and the node's key."""
    init(data)
    app = new_app(data, approval=approval)
    key = SigningKey.generate()
    async with serving(data, *extra) as tl:
        answer = await tl.register(app, key)
        assert answer.status == 200, answer
        yield tl, app, key


@contextlib.asynccontextmanager
async def serving(
    data: Path, *extra: str, env: dict[str, str] | None = None
) -> AsyncIterator[TopLevel]:
    """``idnode toplevel serve --data DATA --http 127.0.0.1:0 EXTRA...``, stopped on exit."""
    served = await procs.start(
        "toplevel",
        "serve",
        "--data",
        data,
        "--http",
        "127.0.0.1:0",
        *extra,
        env=env,
        listening=LISTENING,
    )
    try:
        async with aiohttp.ClientSession() as session:
            yield TopLevel(served, session)
    finally:
        await procs.stop(served)
