"""A minimal pipelined RESP client for the Redis tier's own commands on one standalone
server (``redis://``, ``unix://``).

redis-py spends ~60 µs of CPU per GET on its pool, retry, observability and parser layers;
the tier needs three commands (GET, SET PX, DEL) and no connection pool. Here every command
is packed by hiredis, written with the others issued in the same event-loop pass (one
``write``), and answered in order on one connection, parsed by hiredis: ~8 µs per GET.

Every command is bounded by ``timeout`` without a timer per call: the oldest unanswered
command's deadline is watched, and when it passes the connection is dropped, failing every
command still waiting on it (they were all behind it). The next command reconnects.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

# URL query parameters this client honours; any other asks for redis-py's full client.
SUPPORTED_QUERY = frozenset({"db"})


def pack(*args: bytes | str | int) -> bytes:
    """One command in RESP, packed by hiredis."""
    packed: bytes = hiredis.pack_command(args)  # type: ignore[arg-type]  # its stub is narrow
    return packed


def supports(url: str) -> bool:
    """Whether :class:`RespClient` can serve ``url`` (else use redis-py)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("redis", "unix"):
        return False
    return set(parse_qs(parts.query)) <= SUPPORTED_QUERY


class _Connection(asyncio.Protocol):
    """One connection: commands go out in order, answers come back in that order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop = loop
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader()
        self.waiting: deque[tuple[float, asyncio.Future[Any]]] = deque()
        self.out: list[bytes] = []
        self.timer: asyncio.TimerHandle | None = None
        self.error: Exception | None = None

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiting = self.waiting
        try:
            while (reply := self.reader.gets()) is not False:
                _, future = waiting.popleft()
                if future.done():  # its caller gave up (cancelled)
                    continue
                if isinstance(reply, hiredis.ReplyError):
                    future.set_exception(ResponseError(str(reply)))
                else:
                    future.set_result(reply)
        except (hiredis.ProtocolError, IndexError) as exc:  # garbage, or an unasked answer
            self.fail(RedisConnectionError(f"Redis protocol error: {exc!r}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError(f"Connection to Redis lost: {exc or 'closed'}"))

    # -- commands

    def send(self, command: bytes) -> asyncio.Future[Any]:
        """Queue one packed command; its answer resolves the returned future."""
        loop = self.loop
        future: asyncio.Future[Any] = loop.create_future()
        if self.error is not None:
            future.set_exception(self.error)
            return future
        if not self.out:
            loop.call_soon(self.flush)
        self.out.append(command)
        deadline = loop.time() + self.timeout
        self.waiting.append((deadline, future))
        if self.timer is None:
            self.timer = loop.call_at(deadline, self.check)
        return future

    def flush(self) -> None:
        if self.out and self.transport is not None and self.error is None:
            self.transport.write(b"".join(self.out))
        self.out.clear()

    def check(self) -> None:
        """The oldest command's deadline came: answered meanwhile, or the end."""
        self.timer = None
        if not self.waiting:
            return
        deadline = self.waiting[0][0]
        if deadline <= self.loop.time():
            self.fail(TimeoutError(f"Redis did not answer within {self.timeout:g} s"))
        else:
            self.timer = self.loop.call_at(deadline, self.check)

    def fail(self, error: Exception) -> None:
        """Drop the connection; every command still waiting fails with ``error``."""
        if self.error is None:
            self.error = error
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.transport is not None:
            self.transport.abort()
        self.out.clear()
        while self.waiting:
            _, future = self.waiting.popleft()
            if not future.done():
                future.set_exception(self.error)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a shared attempt's failure as seen (its waiters may all have given up)."""
    if not future.cancelled():
        future.exception()


class RespClient:
    """GET, SET PX and DEL over one pipelined connection, (re)connected on demand."""

    def __init__(self, url: str, timeout: float) -> None:
        if not supports(url):
            raise ValueError(f"not a plain redis:// or unix:// URL: {url!r}")
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        self.timeout = timeout
        self.path: str | None = None
        self.host, self.port = "127.0.0.1", 6379
        db_text = query.get("db", [""])[0]
        if parts.scheme.lower() == "unix":
            self.path = unquote(parts.path)
        else:
            self.host = unquote(parts.hostname or "127.0.0.1")
            self.port = parts.port or 6379
            db_text = db_text or unquote(parts.path).strip("/")
        self.db = int(db_text or 0)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self._conn: _Connection | None = None
        self._connecting: asyncio.Future[_Connection] | None = None
        self._closed = False

    def command(self, *args: bytes | str | int) -> Awaitable[Any]:
        """The answer to one command (raises on an error answer, a lost connection or a
        timeout)."""
        packed = pack(*args)
        conn = self._conn
        if conn is not None and conn.error is None:
            return conn.send(packed)  # the common case: no coroutine, no await in between
        return self._reconnect_and_send(packed)

    async def get(self, name: str) -> bytes | None:
        reply: bytes | None = await self.command(b"GET", name)
        return reply

    async def set(self, name: str, value: bytes, *, px: int) -> bool:
        return bool(await self.command(b"SET", name, value, b"PX", px))

    async def delete(self, name: str) -> int:
        return int(await self.command(b"DEL", name))

    async def _reconnect_and_send(self, packed: bytes) -> Any:
        # Bounded as a whole, connecting included; callers arriving while a connection is
        # being made share that one attempt and its outcome.
        async with asyncio.timeout(self.timeout):
            conn = self._conn
            if conn is None or conn.error is not None:
                if self._closed:
                    raise RedisConnectionError("Redis client closed")
                if self._connecting is None:
                    self._connecting = asyncio.ensure_future(self._connect())
                    self._connecting.add_done_callback(_retrieve)
                conn = await asyncio.shield(self._connecting)
            return await conn.send(packed)

    async def _connect(self) -> _Connection:
        try:
            self._conn = None
            conn = await self._open()
            if self._closed:
                conn.fail(RedisConnectionError("Redis client closed"))
            self._conn = conn
            return conn
        finally:
            self._connecting = None

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        conn = _Connection(loop, self.timeout)
        setup: list[asyncio.Future[Any]] = []
        try:
            async with asyncio.timeout(self.timeout):
                if self.path is not None:
                    await loop.create_unix_connection(lambda: conn, self.path)
                else:
                    await loop.create_connection(lambda: conn, self.host, self.port)
                if self.password is not None:
                    user = () if self.username is None else (self.username,)
                    setup.append(conn.send(pack(b"AUTH", *user, self.password)))
                if self.db:
                    setup.append(conn.send(pack(b"SELECT", self.db)))
                for answer in setup:
                    await answer
        except BaseException as exc:
            conn.fail(RedisConnectionError(f"Cannot connect to Redis: {exc!r}"))
            for answer in setup:  # failed with the connection: nobody else will look
                if answer.done() and not answer.cancelled():
                    answer.exception()
            raise
        return conn

    async def aclose(self) -> None:
        self._closed = True
        if self._conn is not None:
            self._conn.fail(RedisConnectionError("Redis client closed"))
            self._conn = None
