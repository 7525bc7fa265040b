"""Requests no client should send: every one is answered in the API's own error format (or
the proxy's page), logged in one line at most, and never with a traceback."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from registry.model.identifiers import parse as parse_id
from registry.model.values import Value
from tests.conftest import ENT8_ADMIN, JSON, in_process, init_node
from tests.procs import serving
from tests.rawhttp import DEADLINE, connected, exchange, get, parse
from tests.test_health import running

RC_PROTOCOL_ERROR, RC_INVALID_HANDLE = 4, 102
LONG = "x" * 9000  # past aiohttp's 8190-byte limit on the request line and on a header

# (request, HTTP status, start of the message): what aiohttp's parser rejects.
REJECTED = {
    "garbage": (b"GARBAGE\r\n\r\n", 400, "Bad request: Invalid method"),
    "bad version": (b"GET /api/site HTTP/9\r\nHost: x\r\n\r\n", 400, "Bad request:"),
    "bad header": (b"GET /api/site HTTP/1.1\r\nBad Header\r\n\r\n", 400, "Bad request:"),
    "NUL in a header": (b"GET /api/site HTTP/1.1\r\nX: a\x00b\r\n\r\n", 400, "Bad request:"),
    "bad length": (get("/api/site", "Content-Length: ten"), 400, "Bad request:"),
    "two lengths": (
        get("/api/site", "Content-Length: 1", "Content-Length: 2") + b"ab",
        400,
        "Bad request:",
    ),
    "many headers": (
        get("/api/site", *(f"X-{i}: {i}" for i in range(200))),
        400,
        "Bad request: Too many headers",
    ),
    "long header": (get("/api/site", f"X-Long: {LONG}"), 431, "Request line or header longer"),
    "long line": (get(f"/api/handles/{LONG}"), 431, "Request line or header longer"),
    "TLS": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40), 400, "Bad request:"),
}


@pytest.fixture
async def port(tmp_path: Path) -> AsyncIterator[int]:
    async with in_process(tmp_path / "node") as p:
        yield p


def server_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(("idnode", "aiohttp", "asyncio"))]


@pytest.mark.parametrize("name", REJECTED)
async def test_a_request_the_parser_rejects_is_answered_in_handle_json(
    port: int, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    request, status, message = REJECTED[name]
    caplog.set_level(logging.DEBUG)
    answer = parse(await exchange(port, request))  # answered, and the connection closed
    assert answer.status == status
    body = answer.json()
    assert body["responseCode"] == RC_PROTOCOL_ERROR
    assert body["message"].startswith(message), body
    assert set(body) == {"responseCode", "message"}
    # One line in the log, no traceback.
    records = server_records(caplog)
    assert [r.getMessage() for r in records] == [
        f"rejected a request from 127.0.0.1: {body['message']}"
    ]
    assert records[0].exc_info is None and records[0].levelno == logging.INFO


@pytest.mark.parametrize("char", ["%0a", "%0d", "%0d%0a", "%00", "%09"])
async def test_control_characters_in_a_handle_are_an_invalid_handle(
    port: int, char: str, caplog: pytest.LogCaptureFixture
) -> None:
    answer = parse(await exchange(port, get(f"/api/handles/88.118.8/a{char}b", close=True)))
    assert answer.status == 400
    body = answer.json()
    assert body["responseCode"] == RC_INVALID_HANDLE
    assert body["message"] == "Handle contains control characters"
    assert not [r for r in server_records(caplog) if r.exc_info]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/handles/88.118.8/a%0ab?type=URL", 400),
        ("/api/no%0awhere", 404),
        ("/api/site%0a", 404),
        ("/api/%00", 404),
        ("/api/handles/%ff", 400),
    ],
)
async def test_every_answer_under_api_is_handle_json(port: int, path: str, status: int) -> None:
    answer = parse(await exchange(port, get(path, close=True)))
    assert answer.status == status
    assert answer.json()["responseCode"] in (RC_PROTOCOL_ERROR, RC_INVALID_HANDLE)


async def test_a_control_character_in_a_proxy_path_gets_the_proxy_error_page(port: int) -> None:
    answer = parse(await exchange(port, get("/88.118.8/a%0a<b>", close=True)))
    assert answer.status == 400
    assert answer.headers["content-type"].startswith("text/html")
    assert b"<b>" not in answer.body and b"&lt;b&gt;" in answer.body


async def test_a_connection_reset_mid_body_is_no_error(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    head = (
        "PUT /api/handles/88.118.8/RESET HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: {ENT8_ADMIN['Authorization']}\r\n"
        f"Content-Type: {JSON['Content-Type']}\r\nContent-Length: 100\r\n\r\n"
    ).encode()
    async with connected(port) as conn:
        await conn.send(head + b'{"values": [')
        reset(conn.writer.get_extra_info("socket"))
    async with connected(port) as conn:  # the server is still there, and answers
        await conn.send(get("/api/site", close=True))
        assert parse(await conn.until_closed()).status == 200
    assert not [r for r in server_records(caplog) if r.exc_info or r.levelno >= logging.ERROR]


def reset(sock: Any) -> None:
    """Close ``sock`` with a TCP reset (SO_LINGER 0), as a crashing client's kernel does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


# ------------------------------------------------------------------ idnode serve's own log


async def test_hostile_clients_leave_no_traceback_in_the_log(tmp_path: Path) -> None:
    """All of the above and more against ``idnode serve`` itself; then its log (standard
    error) holds no traceback and no error."""
    data = tmp_path / "node"
    await init_node(data)
    env = {"IDNODE_HEADER_TIMEOUT": "0.3", "IDNODE_BODY_TIMEOUT": "0.3"}
    async with serving(data, env=env) as served:
        port = served.port
        for request, status, _ in REJECTED.values():
            assert parse(await exchange(port, request)).status == status
        for path in ("/api/handles/a%0ab", "/a%0d%0ab", "/api/%00", "/resolve?handle=%0a/x"):
            assert parse(await exchange(port, get(path, close=True))).status in (302, 400, 404)
        # Silent, half-sent and slow clients, dropped by the deadlines.
        assert await exchange(port, b"") == b""
        assert await exchange(port, b"GET /api/si") == b""
        slow = (
            b"PUT /api/handles/88.118.8/S HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: {ENT8_ADMIN['Authorization']}\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: 50\r\n\r\n{"
        )
        assert parse(await exchange(port, slow)).status == 408
        # A body the parser rejects after the head: one more rejection.
        chunked = get("/api/site", "Transfer-Encoding: chunked") + b"zz\r\n"
        assert parse(await exchange(port, chunked)).status in (200, 400)
        # URL values the proxy will not redirect to.
        for n, url in enumerate(["https://x.example/\r\nSet-Cookie: a=1", "javascript:x"]):
            handle = f"88.118.8/U{n}"
            body = orjson.dumps({"values": [{"index": 1, "type": "URL", "data": url}]}).decode()
            put = (
                f"PUT /api/handles/{handle} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                f"Authorization: {ENT8_ADMIN['Authorization']}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}"
            ).encode()
            assert parse(await exchange(port, put)).status == 201
            assert parse(await exchange(port, get(f"/{handle}", close=True))).status == 200
        log = served.stderr_text()
    assert "Traceback" not in log
    assert " ERROR " not in log
    assert log.count("rejected a request") == len(REJECTED) + 1


async def test_a_client_leaving_a_streamed_listing_is_one_debug_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client resets the connection while an unpaged listing streams: the server's next
    write finds the connection gone, which is the client's doing, not the server's fault."""
    caplog.set_level(logging.DEBUG)
    async with running(tmp_path / "node") as n:
        names = [f"88.118.8/L{i}" for i in range(3)]
        await n.node.registry.import_records(
            [(parse_id(h), [Value(1, "DESC", b"x")]) for h in names]
        )
        store = n.node.registry.store
        real = store.iter_handles
        client = socket.create_connection(("127.0.0.1", int(n.url.rsplit(":", 1)[1])))

        async def leaving(prefix_key: str, after_key: str | None, limit: int) -> Any:
            rows = await real(prefix_key, after_key, limit)
            if not rows:  # the listing is done: the client resets before its last bytes go
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()
            return rows

        monkeypatch.setattr(store, "iter_handles", leaving)
        client.sendall(
            get("/api/handles?prefix=88.118.8", f"Authorization: {ENT8_ADMIN['Authorization']}")
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while not any('op="list"' in s.labels for s in n.node.telemetry.requests.series()):
            assert loop.time() < deadline, "the listing was never counted as answered"
            await asyncio.sleep(0.01)
    # The serving node's start (its configuration's audit entry) is not the listing's.
    records = [r for r in server_records(caplog) if r.name != "idnode.audit"]
    assert all(r.exc_info is None for r in records), [r.getMessage() for r in records]
    assert all(r.levelno <= logging.DEBUG for r in records), [r.getMessage() for r in records]
    assert any(r.getMessage().startswith("listing 88.118.8: the client left") for r in records)
