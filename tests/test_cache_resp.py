"""The Redis tier's pipelined client (registry/cache/resp.py) against real redis-server
processes started by the test: credentials, databases, unix sockets, error answers,
pipelining, and the bounds on a frozen or dead server."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from registry.cache.resp import RespClient, supports
from tests.redisproc import redis_server

TIMEOUT = 0.3


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[RespClient]:
    """A client of ``url`` (bounded by TIMEOUT), closed on exit."""
    client = RespClient(url, TIMEOUT)
    try:
        yield client
    finally:
        await client.aclose()


def test_supports_plain_urls_only() -> None:
    assert supports("redis://127.0.0.1:6379/0")
    assert supports("redis://:pw@host/2")
    assert supports("unix:///run/redis.sock?db=1")
    assert not supports("rediss://127.0.0.1:6379/0")  # TLS: redis-py
    assert not supports("redis+cluster://a:1,b:2")
    assert not supports("redis+sentinel://a:1/svc")
    assert not supports("redis://127.0.0.1/0?protocol=3")  # options: redis-py


async def test_commands_with_password_and_database(tmp_path: Path) -> None:
    async with redis_server(tmp_path / "r", "--requirepass", "s3cret") as redis:
        async with connected(f"redis://:s3cret@127.0.0.1:{redis.port}/3") as client:
            assert await client.get("k") is None
            assert await client.set("k", b"\x00v\r\n", px=60_000)
            assert await client.get("k") == b"\x00v\r\n"
            dbsize = await redis.cli("-a", "s3cret", "--no-auth-warning", "-n", "3", "DBSIZE")
            assert dbsize.strip() == "1"  # it went to database 3
            assert await client.delete("k") == 1
            assert await client.get("k") is None
        async with connected(f"redis://:nope@127.0.0.1:{redis.port}/0") as wrong:
            with pytest.raises(ResponseError):
                await wrong.get("k")


async def test_acl_user_and_unix_socket(tmp_path: Path) -> None:
    sock = tmp_path / "redis.sock"
    acl = ("--user", "default", "off", "--user", "idn", "on", ">pw", "~*", "+@all")
    server = redis_server(tmp_path / "r", "--unixsocket", str(sock), *acl)
    async with server, connected(f"unix://idn:pw@{sock}?db=2") as client:
        assert await client.set("k", b"v", px=60_000)
        assert await client.get("k") == b"v"


async def test_pipelined_answers_reach_their_callers(tmp_path: Path) -> None:
    async with redis_server(tmp_path / "r") as redis, connected(redis.url) as client:
        await asyncio.gather(*(client.set(f"k{i}", b"%d" % i, px=60_000) for i in range(300)))
        got = await asyncio.gather(*(client.get(f"k{i}") for i in range(300)))
        assert got == [b"%d" % i for i in range(300)]
        # An error answer fails its own command only; the connection carries on.
        await client.set("text", b"abc", px=60_000)
        results = await asyncio.gather(
            client.get("k1"), client.command(b"INCR", "text"), client.get("k2"),
            return_exceptions=True,
        )  # fmt: skip
        assert results[0] == b"1" and results[2] == b"2"
        assert isinstance(results[1], ResponseError)


async def test_frozen_server_costs_the_timeout_then_recovers(tmp_path: Path) -> None:
    async with redis_server(tmp_path / "r") as redis, connected(redis.url) as client:
        try:
            await client.set("k", b"v", px=60_000)
            redis.pause()
            t0 = time.monotonic()
            results = await asyncio.gather(
                *(client.get("k") for _ in range(5)), return_exceptions=True
            )
            waited = time.monotonic() - t0
            assert all(isinstance(r, TimeoutError) for r in results), results
            assert waited < TIMEOUT + 2.0  # bounded by the timeout, not by the server
            with pytest.raises(TimeoutError):  # connecting again is bounded too
                await client.get("k")
            redis.resume()
            # A new connection is answered: within a few timeouts, as a loaded machine may
            # take one or two to reconnect (each attempt is bounded by TIMEOUT).
            deadline = time.monotonic() + 10.0
            while True:
                try:
                    got = await client.get("k")
                except TimeoutError:
                    assert time.monotonic() < deadline, "no answer within 10 s of resuming"
                    continue
                break
            assert got == b"v"
        finally:
            redis.resume()


async def test_dead_server_fails_fast_and_a_restart_is_found(tmp_path: Path) -> None:
    async with redis_server(tmp_path / "r") as redis:
        async with connected(redis.url) as client:
            assert await client.set("k", b"v", px=60_000)
            await redis.kill()
            for _ in range(3):
                with pytest.raises((RedisError, OSError)):
                    await client.get("k")
            await redis.start()
            assert await client.get("k") is None  # restarted empty, and reconnected
        with pytest.raises(RedisConnectionError):
            await client.get("k")  # closed for good
