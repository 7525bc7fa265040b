"""A raw-socket HTTP client for tests of what no well-behaved client sends: partial and
malformed requests, and connections that say nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

HOST = "127.0.0.1"
DEADLINE = 10.0  # seconds any one wait for the server may take on a busy machine


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self) -> Any:
        assert self.headers.get("content-type", "").startswith("application/json"), self
        return orjson.loads(self.body)


def parse(raw: bytes) -> Answer:
    """The first HTTP answer in ``raw`` (with a Content-Length body)."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    assert sep, f"no complete answer in {raw[:200]!r}"
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", len(rest)))
    return Answer(status, headers, rest[:length])


class Conn:
    """One client connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def until_closed(self, within: float = DEADLINE) -> bytes:
        """Everything the server sends until it closes the connection, which it must do
        within ``within`` seconds (TimeoutError otherwise)."""
        out = bytearray()
        async with asyncio.timeout(within):
            while True:
                try:
                    chunk = await self.reader.read(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                out += chunk
        return bytes(out)

    async def answer(self, within: float = DEADLINE) -> Answer:
        """The next answer (one with a Content-Length), the connection kept open."""
        async with asyncio.timeout(within):
            head = await self.reader.readuntil(b"\r\n\r\n")
            length = parse(head).headers.get("content-length", "0")
            body = await self.reader.readexactly(int(length))
        return parse(head + body)

    def close(self) -> None:
        self.writer.close()


async def connect(port: int) -> Conn:
    reader, writer = await asyncio.open_connection(HOST, port)
    return Conn(reader, writer)


@contextlib.asynccontextmanager
async def connected(port: int) -> AsyncIterator[Conn]:
    conn = await connect(port)
    try:
        yield conn
    finally:
        conn.close()


def get(path: str, *headers: str, close: bool = False) -> bytes:
    """A GET request for ``path`` (sent as given, not encoded)."""
    lines = [f"GET {path} HTTP/1.1", "Host: idnode", *headers]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def exchange(port: int, data: bytes, within: float = DEADLINE) -> bytes:
    """Send ``data`` on a new connection; everything answered until the server closes."""
    async with connected(port) as conn:
        await conn.send(data)
        return await conn.until_closed(within)
