"""Connection limits (resolver/http/limits.py): clients that send nothing, or too slowly,
are dropped; past the connection cap new connections are refused at once while the open
ones are served; the settings come from the configuration, in every worker."""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from resolver.config import ConfigError, load
from resolver.http.limits import DEFAULT_MAX_CONNECTIONS, connection_cap
from tests.conftest import ENT8_ADMIN, free_port, in_process, init_node
from tests.procs import serving
from tests.rawhttp import DEADLINE, Conn, connect, connected, get, parse

HEADER, BODY, KEEPALIVE = 0.5, 0.5, 3.0  # seconds, short for the tests
# How much later than its deadline a timer may fire on a busy machine.
LATE = KEEPALIVE - HEADER


@pytest.fixture
async def port(tmp_path: Path) -> AsyncIterator[int]:
    settings = {"header_timeout": HEADER, "body_timeout": BODY, "keepalive_timeout": KEEPALIVE}
    async with in_process(tmp_path / "node", **settings) as p:
        yield p


@pytest.fixture(autouse=True)
def no_traceback(caplog: pytest.LogCaptureFixture) -> Any:
    """Whatever a test's clients do, the server logs no traceback and no error."""
    caplog.set_level(logging.DEBUG)
    yield
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


async def dropped(conn: Conn, since: float, at_least: float) -> float:
    """Seconds from ``since`` until the server closed ``conn`` having sent nothing; it
    must not close it before ``at_least``, and must close it within ``LATE`` after."""
    loop = asyncio.get_running_loop()
    assert await conn.until_closed(at_least + LATE) == b""
    elapsed = loop.time() - since
    assert elapsed >= at_least - 0.05, elapsed
    return elapsed


# ------------------------------------------------------------------ silent and slow clients


async def test_a_client_that_sends_nothing_is_dropped_after_the_header_timeout(
    port: int,
) -> None:
    since = asyncio.get_running_loop().time()
    async with connected(port) as conn:
        # The head deadline, not the (longer) keep-alive timeout.
        assert await dropped(conn, since, HEADER) < KEEPALIVE


async def test_half_a_request_line_is_dropped(port: int) -> None:
    since = asyncio.get_running_loop().time()
    async with connected(port) as conn:
        await conn.send(b"GET /api/si")
        assert await dropped(conn, since, HEADER) < KEEPALIVE


async def test_a_trickled_head_does_not_extend_its_deadline(port: int) -> None:
    """Slowloris: a byte at a time keeps no connection open past the head deadline."""
    loop = asyncio.get_running_loop()
    since = loop.time()
    head = get("/api/site", *(f"X-Pad-{i}: {'x' * 20}" for i in range(100)))
    async with connected(port) as conn:
        for i in range(len(head) - 1):
            await conn.send(head[i : i + 1])
            # Paced by waiting (up to 50 ms) for the server to give up on us.
            try:
                async with asyncio.timeout(0.05):
                    closed = await conn.reader.read(1) == b""
            except TimeoutError:
                continue
            assert closed
            break
        else:
            pytest.fail("the whole head went through a byte at a time")
    elapsed = loop.time() - since
    assert HEADER - 0.05 <= elapsed < KEEPALIVE


async def test_a_kept_alive_connection_times_its_next_head_from_its_first_byte(
    port: int,
) -> None:
    loop = asyncio.get_running_loop()
    async with connected(port) as conn:
        await conn.send(get("/api/site"))
        assert (await conn.answer()).status == 200
        await conn.send(b"GET /api/site HTTP/1.1\r\nHost: idn")
        since = loop.time()
        assert await dropped(conn, since, HEADER) < KEEPALIVE


async def test_an_idle_kept_alive_connection_is_dropped_after_the_keepalive_timeout(
    port: int,
) -> None:
    loop = asyncio.get_running_loop()
    async with connected(port) as conn:
        await conn.send(get("/api/site"))
        assert (await conn.answer()).status == 200
        since = loop.time()
        # Idle between requests: the keep-alive timeout applies, not the head deadline.
        await dropped(conn, since, KEEPALIVE)


async def test_a_head_split_over_reads_is_served_and_the_connection_then_kept_alive(
    port: int,
) -> None:
    """The deadline set for a head that has since arrived closes nothing: the connection
    idles until the keep-alive timeout."""
    loop = asyncio.get_running_loop()
    head = get("/api/site")
    async with connected(port) as conn:
        await conn.send(head[:10])
        await conn.send(head[10:])
        assert (await conn.answer()).status == 200
        await dropped(conn, loop.time(), KEEPALIVE)


async def test_pipelined_requests_are_all_answered(port: int) -> None:
    async with connected(port) as conn:
        await conn.send(get("/api/site") + get("/api/handles/88.118.8/NOPE") + get("/api/s"))
        assert [(await conn.answer()).status for _ in range(3)] == [200, 404, 404]


async def test_keep_alive_serves_requests_while_the_client_keeps_asking(port: int) -> None:
    """The head deadline counts per request: a busy connection outlives it."""
    loop = asyncio.get_running_loop()
    since = loop.time()
    async with connected(port) as conn:
        n = 0
        while loop.time() - since < 3 * HEADER:
            await conn.send(get("/api/site"))
            assert (await conn.answer()).status == 200
            n += 1
    assert n > 1


def put_head(length: int, auth: bool = True) -> bytes:
    lines = [
        "PUT /api/handles/88.118.8/SLOW HTTP/1.1",
        "Host: idnode",
        "Content-Type: application/json",
        f"Content-Length: {length}",
    ]
    if auth:
        lines.append(f"Authorization: {ENT8_ADMIN['Authorization']}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_a_body_that_stops_coming_is_answered_408_and_dropped(port: int) -> None:
    body = orjson.dumps({"values": [{"index": 1, "type": "URL", "data": "https://x.example"}]})
    loop = asyncio.get_running_loop()
    async with connected(port) as conn:
        await conn.send(put_head(len(body)) + body[:10])
        since = loop.time()
        raw = await conn.until_closed(BODY + BODY + LATE)  # the deadline, then the drain
    assert loop.time() - since >= BODY - 0.05
    answer = parse(raw)
    assert answer.status == 408
    assert answer.json() == {
        "responseCode": 4,
        "message": f"Request body not received within {BODY:g} s",
        "handle": "88.118.8/SLOW",
    }


async def test_a_body_no_handler_reads_is_drained_no_longer_than_the_body_timeout(
    port: int,
) -> None:
    # No credentials: refused before the body is read; the rest of it never comes.
    async with connected(port) as conn:
        await conn.send(put_head(1000, auth=False) + b"[")
        raw = await conn.until_closed(BODY + LATE)
    assert parse(raw).status == 401


# ------------------------------------------------------------------ the connection cap


CAP = 6


async def test_over_the_cap_new_connections_are_refused_and_open_ones_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Long deadlines: only the cap decides here.
    settings = {"max_connections": CAP, "header_timeout": 60.0, "keepalive_timeout": 60.0}
    async with in_process(tmp_path / "node", **settings) as port:
        client = await connect(port)
        await client.send(get("/api/site"))
        assert (await client.answer()).status == 200
        flood = [await connect(port) for _ in range(CAP - 1)]  # now at the cap
        try:
            # Connections are accepted in order: this one comes after the whole flood.
            for _ in range(3):
                loop = asyncio.get_running_loop()
                since = loop.time()
                async with connected(port) as refused:
                    answer = parse(await refused.until_closed())
                assert loop.time() - since < 2.0  # at once, not after some timeout
                assert answer.status == 503
                assert answer.headers["retry-after"] == "1"
                assert answer.json() == {
                    "responseCode": 3,
                    "message": "Server too busy: too many open connections",
                }
            # The client that was in keeps being served.
            await client.send(get("/api/site"))
            assert (await client.answer()).status == 200
        finally:
            for conn in flood:
                conn.close()
        # The flood over, new clients are served again (once the server has seen it end).
        await served_again(port)
        client.close()
    warnings = [r for r in caplog.records if "max_connections" in r.getMessage()]
    assert len(warnings) == 1  # one warning for the burst, not one per refusal
    assert warnings[0].levelno == logging.WARNING


async def served_again(port: int, within: float = DEADLINE) -> None:
    """Poll, up to ``within`` s, until a new connection is served rather than refused."""
    async with asyncio.timeout(within):
        while True:
            async with connected(port) as conn:
                await conn.send(get("/api/site", close=True))
                raw = await conn.until_closed()
            # Refused: a 503, or a reset when the request was sent before the refusal.
            if raw and parse(raw).status == 200:
                return
            assert not raw or parse(raw).status == 503
            await asyncio.sleep(0.05)  # the polling interval


def test_cap_from_the_file_limit() -> None:
    assert connection_cap(50, file_limit=1024) == 50  # configured: as configured
    assert connection_cap(0, file_limit=1024) == 1024 - 128
    assert connection_cap(0, file_limit=128) == 128 - 32
    assert connection_cap(0, file_limit=1 << 20) == DEFAULT_MAX_CONNECTIONS
    assert connection_cap(0, file_limit=resource.RLIM_INFINITY) == DEFAULT_MAX_CONNECTIONS
    assert connection_cap(0, file_limit=20) == 1


# ------------------------------------------------------------------ configuration


def test_limits_come_from_the_file_and_the_environment(tmp_path: Path) -> None:
    data = tmp_path / "node"
    data.mkdir()
    (data / "idnode.toml").write_text(
        'prefixes = ["88.118"]\nheader_timeout = 4\nkeepalive_timeout = 20.5\n'
        'redirect_schemes = ["https"]\n'
    )
    config = load(data, env={"IDNODE_BODY_TIMEOUT": "12", "IDNODE_MAX_CONNECTIONS": "500"})
    assert (config.header_timeout, config.body_timeout, config.keepalive_timeout) == (4, 12, 20.5)
    assert config.max_connections == 500
    assert config.redirect_schemes == ("https",)
    assert load(data, env={"IDNODE_REDIRECT_SCHEMES": "HTTPS, ftp"}).redirect_schemes == (
        "https",
        "ftp",
    )
    defaults = load(data, env={"IDNODE_HEADER_TIMEOUT": ""})
    assert defaults.header_timeout == 4
    (data / "idnode.toml").write_text('prefixes = ["88.118"]\n')
    defaults = load(data, env={})
    assert (defaults.header_timeout, defaults.body_timeout) == (10, 30)
    assert 15 <= defaults.keepalive_timeout <= 75
    assert defaults.max_connections == 0  # derived from the file limit
    assert defaults.redirect_schemes == ("http", "https")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("header_timeout", "0"),
        ("body_timeout", "-1"),
        ("keepalive_timeout", "soon"),
        ("max_connections", "-5"),
        ("redirect_schemes", "javascript"),
        ("redirect_schemes", "http,DATA"),
        ("redirect_schemes", "ht tp"),
    ],
)
def test_bad_limits_are_refused(tmp_path: Path, key: str, value: str) -> None:
    data = tmp_path / "node"
    data.mkdir()
    (data / "idnode.toml").write_text('prefixes = ["88.118"]\n')
    with pytest.raises(ConfigError, match=key):
        load(data, env={f"IDNODE_{key.upper()}": value})


# ------------------------------------------------------------------ idnode serve


async def test_every_worker_drops_silent_clients(tmp_path: Path) -> None:
    """``--workers 2``: each worker process has the limits (set here in the environment,
    which the workers inherit), whichever one the kernel gives a connection."""
    data = tmp_path / "node"
    await init_node(data)
    env = {"IDNODE_HEADER_TIMEOUT": str(HEADER), "IDNODE_KEEPALIVE_TIMEOUT": str(KEEPALIVE)}
    http = f"127.0.0.1:{free_port()}"
    async with serving(data, "--workers", "2", http=http, env=env) as served:
        loop = asyncio.get_running_loop()
        since = loop.time()
        silent = [await connect(served.port) for _ in range(12)]
        for conn in silent:
            assert await dropped(conn, since, HEADER) < KEEPALIVE
            conn.close()
        async with connected(served.port) as conn:
            await conn.send(get("/api/site", close=True))
            assert parse(await conn.until_closed()).status == 200
        assert "Traceback" not in served.stderr_text()


def lower_file_limit(soft: int) -> Any:
    def limit() -> None:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return limit


async def test_a_flood_of_silent_clients_does_not_lock_others_out(tmp_path: Path) -> None:
    """The issue's case: with a low file limit, silent sockets used up every descriptor
    and new clients hung. Now the cap (from the file limit) refuses the excess at once,
    keeps descriptors for the clients already in, and the head deadline frees the rest."""
    data = tmp_path / "node"
    await init_node(data)
    soft = 128
    header = 3.0
    env = {"IDNODE_HEADER_TIMEOUT": str(header), "IDNODE_KEEPALIVE_TIMEOUT": "60"}
    async with serving(data, env=env, preexec_fn=lower_file_limit(soft)) as served:
        client = await connect(served.port)
        await client.send(get("/api/site"))
        assert (await client.answer()).status == 200
        flood = [await connect(served.port) for _ in range(soft + 20)]
        try:
            async with connected(served.port) as late:
                assert parse(await late.until_closed(2.0)).status == 503
            await client.send(get("/api/site"))
            assert (await client.answer()).status == 200
            # The flood is not closed by its senders: the server drops it.
            await served_again(served.port, header + DEADLINE)
        finally:
            for conn in flood:
                conn.close()
        client.close()
        log = served.stderr_text()
    assert "Traceback" not in log
    assert f"{connection_cap(0, soft)} connections open (max_connections)" in log
