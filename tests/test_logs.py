"""Logs and request ids: JSON log lines from a real ``idnode serve``, request ids echoed and
carried to other nodes, and the access log's sampling."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from resolver.config import ConfigError, load
from resolver.forward.base import Upstream
from resolver.requestid import REQUEST_ID_HEADER
from tests.conftest import ENT8, ENT8_ADMIN, JSON, init_node
from tests.procs import Served, serving
from tests.test_health import running

MADE_ID = re.compile(r"[0-9a-f]{12}-[0-9a-f]+")  # resolver.requestid.new_request_id
DEADLINE = 20.0
PREFIX_HANDLE = f"0.NA/{ENT8}"


async def log_lines(served: Served, done: Any) -> list[dict[str, Any]]:
    """The server's standard error as JSON objects, once ``done(lines)`` holds (polled)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while True:
        text = served.stderr_text()
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        if done(lines):
            return lines
        assert loop.time() < deadline, f"not logged within {DEADLINE} s:\n{text}"
        await asyncio.sleep(0.05)


def access(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line["logger"] == "idnode.access"]


async def test_json_log_lines_carry_the_request_id(tmp_path: Path) -> None:
    data = tmp_path / "node"
    await init_node(data)
    api = f"/api/handles/{PREFIX_HANDLE}"
    async with (
        serving(data, "--log-format", "json", "--access-log") as served,
        aiohttp.ClientSession() as s,
    ):
        async with s.get(served.url + api, headers={REQUEST_ID_HEADER: "client-id-1"}) as r:
            assert r.status == 200 and r.headers[REQUEST_ID_HEADER] == "client-id-1"
        async with s.get(served.url + api) as r:  # none sent: one made (the access log is on)
            assert r.status == 200
            made = r.headers[REQUEST_ID_HEADER]
            assert MADE_ID.fullmatch(made), made
        bad = "not a sane id; " + "x" * 200
        async with s.get(
            f"{served.url}/api/handles/{ENT8}/NOPE", headers={REQUEST_ID_HEADER: bad}
        ) as r:
            assert r.status == 404
            replaced = r.headers[REQUEST_ID_HEADER]
            assert MADE_ID.fullmatch(replaced) and replaced != made
        lines = await log_lines(served, lambda lines: len(access(lines)) >= 3)

    # Every line is one JSON object with the common fields (start-up lines too).
    for line in lines:
        assert {"ts", "level", "logger", "msg", "pid"} <= set(line), line
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", line["ts"]), line
    by_id = {line["request_id"]: line for line in access(lines)}
    assert set(by_id) == {"client-id-1", made, replaced}, access(lines)
    first = by_id["client-id-1"]
    assert (first["level"], first["method"], first["path"], first["status"]) == (
        "info",
        "GET",
        api,
        200,
    )
    assert first["remote"] == "127.0.0.1" and first["seconds"] >= 0
    assert "client-id-1" in first["msg"]
    missing = by_id[replaced]
    assert missing["status"] == 404 and missing["handle"] == f"{ENT8}/NOPE"


async def test_request_ids_only_when_asked_for(tmp_path: Path) -> None:
    """Without the access log a request gets an id only when it brings one; then every kind
    of answer echoes it: the cached one, a store read, an error, a guarded route, a stream."""
    rid = {REQUEST_ID_HEADER: "trace-7"}
    handle = f"{ENT8}/IDS"
    async with running(tmp_path / "node") as n:
        s, api = n.session, f"{n.url}/api/handles"
        value = {"values": [{"index": 1, "type": "URL", "data": "https://example.org/i"}]}
        async with s.put(f"{api}/{handle}", json=value, headers={**ENT8_ADMIN, **JSON}) as r:
            assert r.status == 201 and REQUEST_ID_HEADER not in r.headers
        for _ in range(2):  # a store read, then the in-process tier
            async with s.get(f"{api}/{handle}") as r:
                assert r.status == 200 and REQUEST_ID_HEADER not in r.headers
        for _ in range(2):  # with an id, the cached answer too echoes it
            async with s.get(f"{api}/{handle}", headers=rid) as r:
                assert r.status == 200 and r.headers[REQUEST_ID_HEADER] == "trace-7"
        echoed = [
            s.get(f"{api}/{ENT8}/NOPE", headers=rid),
            s.put(f"{api}/{handle}", json=value, headers={**rid, **JSON}),  # 401
            s.get(f"{n.url}/api/site", headers=rid),
            s.get(f"{n.url}/api/handles?prefix={ENT8}", headers={**rid, **ENT8_ADMIN}),
            s.options(f"{api}/{handle}", headers={**rid, "Origin": "https://a.example"}),
        ]
        for request in echoed:
            async with request as r:
                assert r.headers.get(REQUEST_ID_HEADER) == "trace-7", (r.url, r.status)


async def test_forwarded_queries_carry_the_request_id(tmp_path: Path) -> None:
    """The id a request came with goes along on the queries the node makes of other nodes
    for it (here: the top-level's routing record)."""
    seen: list[str | None] = []

    async def toplevel(request: web.Request) -> web.Response:
        seen.append(request.headers.get(REQUEST_ID_HEADER))
        return web.json_response({"responseCode": 100}, status=404)

    other = web.Application()
    other.router.add_get("/{tail:.*}", toplevel)
    runner = web.AppRunner(other)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        async with running(tmp_path / "node") as n:
            up = Upstream(f"http://127.0.0.1:{site.port}", ({"kty": "OKP"},), "node-a")
            n.node.forwarding.configure(up)
            async with n.session.get(
                f"{n.url}/api/handles/99.7/x", headers={REQUEST_ID_HEADER: "hop-1"}
            ) as r:
                assert r.status in (400, 404), await r.text()  # no home for 99.7
            assert seen and set(seen) == {"hop-1"}, seen
            seen.clear()
            async with n.session.get(f"{n.url}/api/handles/99.8/x") as r:
                assert r.status in (400, 404)
            assert seen and set(seen) == {None}, seen  # none brought, none made up
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(("sample", "logged"), [(1.0, 30), (1e-12, 0)])
async def test_the_access_log_is_sampled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, sample: float, logged: int
) -> None:
    caplog.set_level(logging.INFO, logger="idnode.access")
    # One connection: the server logs a request before it reads the next one, so once the
    # last answer is in, every request before it has been logged (or passed over).
    async with (
        running(tmp_path / "node", access_log=True, access_log_sample=sample) as n,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as s,
    ):
        for k in range(30):
            async with s.get(f"{n.url}/api/handles/{ENT8}/S-{k}") as r:
                assert r.status == 404
        async with s.get(f"{n.url}/healthz") as r:
            assert r.status == 200
    lines = [
        rec for rec in caplog.records if rec.name == "idnode.access" and "/S-" in rec.getMessage()
    ]
    assert len(lines) == logged
    for rec in lines:
        assert MADE_ID.search(rec.getMessage()), rec.getMessage()


async def test_log_format_and_access_log_from_the_environment(tmp_path: Path) -> None:
    data = tmp_path / "node"
    await init_node(data)
    env = {"IDNODE_LOG_FORMAT": "json", "IDNODE_ACCESS_LOG": "true"}
    async with serving(data, env=env) as served, aiohttp.ClientSession() as s:
        async with s.get(f"{served.url}/healthz") as r:
            assert r.status == 200 and MADE_ID.fullmatch(r.headers[REQUEST_ID_HEADER])
        lines = await log_lines(served, lambda lines: len(access(lines)) == 1)
    assert access(lines)[0]["path"] == "/healthz"


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({"IDNODE_LOG_FORMAT": "xml"}, "log_format must be one of text, json"),
        ({"IDNODE_ACCESS_LOG": "sometimes"}, "access_log must be true or false"),
        ({"IDNODE_ACCESS_LOG_SAMPLE": "0"}, "access_log_sample must be more than 0"),
        ({"IDNODE_ACCESS_LOG_SAMPLE": "1.5"}, "access_log_sample must be more than 0"),
        ({"IDNODE_READY_TIMEOUT": "0"}, "ready_timeout must be positive"),
        ({"IDNODE_READY_MAX_BACKLOG": "-1"}, "ready_max_backlog must not be negative"),
    ],
)
async def test_bad_logging_and_readiness_settings_are_refused(
    tmp_path: Path, env: dict[str, str], error: str
) -> None:
    data = tmp_path / "node"
    await init_node(data)
    with pytest.raises(ConfigError, match=error):
        load(data, env=env)
    config = load(data, env={"IDNODE_LOG_FORMAT": "JSON", "IDNODE_ACCESS_LOG_SAMPLE": "0.01"})
    assert (config.log_format, config.access_log, config.access_log_sample) == ("json", False, 0.01)
