"""The shared Redis tier: short timeouts, a circuit breaker, never an error to a client.

A standalone server named by ``redis://`` or ``unix://`` (no options but ``db``) is spoken to
by :mod:`registry.cache.resp`, a pipelined client that costs a seventh of redis-py's CPU per
command; ``rediss://``, Redis Cluster (``redis+cluster://host:port,host:port``), Sentinel
(``redis+sentinel://host:port,host:port/service``) and URLs with other options go through
redis-py's own clients. Every call is bounded by ``timeout``; any failure counts against the
breaker and reads as a miss, so resolution carries on from the store while Redis is down,
slow or restarting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar, cast
from urllib.parse import parse_qs, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import RedisError

from registry.cache import resp
from registry.cache.breaker import Breaker
from registry.cache.stats import CacheStats

log = logging.getLogger("idnode.cache")
T = TypeVar("T")
MAX_FILLS_IN_FLIGHT = 256


class RedisConfigError(ValueError):
    """The Redis URL cannot be used."""


def _hosts(netloc: str, default_port: int) -> list[tuple[str, int]]:
    out = []
    for part in netloc.rsplit("@", 1)[-1].split(","):
        host, _, port = part.rpartition(":") if ":" in part else (part, "", "")
        host = host.strip("[]") or "127.0.0.1"
        try:
            out.append((host, int(port) if port else default_port))
        except ValueError:
            raise RedisConfigError(f"bad port in {part!r}") from None
    return out


def connect(url: str, timeout: float) -> Any:
    """A redis-py asyncio client for ``url`` (see module doc for the schemes)."""
    common: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "decode_responses": False,
    }
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("redis", "rediss", "unix"):
        return aioredis.Redis.from_url(url, retry_on_timeout=False, **common)
    if scheme in ("redis+cluster", "rediss+cluster"):
        nodes = [ClusterNode(h, p) for h, p in _hosts(parts.netloc, 6379)]
        return RedisCluster(
            startup_nodes=nodes,
            ssl=scheme.startswith("rediss"),
            password=parts.password,
            username=parts.username,
            require_full_coverage=False,
            **common,
        )
    if scheme == "redis+sentinel":
        service = parts.path.strip("/")
        if not service:
            raise RedisConfigError("redis+sentinel:// needs the service name as its path")
        query = parse_qs(parts.query)
        db = int(query.get("db", ["0"])[0])
        # Typed through a cast: redis-py < 8 leaves Sentinel.__init__ unannotated, 8.x
        # annotates it, and a "type: ignore" would be unused under one or the other.
        make_sentinel = cast("Callable[..., Sentinel]", Sentinel)
        sentinel = make_sentinel(
            _hosts(parts.netloc, 26379), sentinel_kwargs=dict(common), **common
        )
        return sentinel.master_for(service, db=db, password=parts.password)
    raise RedisConfigError(f"unsupported Redis URL scheme {parts.scheme!r}")


class RedisTier:
    def __init__(
        self,
        url: str,
        namespace: str,
        timeout: float,
        stats: CacheStats,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        # The pipelined client bounds each of its commands itself; redis-py's need a timeout.
        self.resp = resp.RespClient(url, timeout) if resp.supports(url) else None
        self.client: Any = self.resp or connect(url, timeout)
        self.timeout = timeout
        self.stats = stats
        self.prefix = f"idn:{namespace}:r:"
        self.breaker = Breaker(f"Redis at {_safe(url)}", clock=clock, on_open=self._opened)
        self._fills: set[asyncio.Task[None]] = set()

    def _opened(self) -> None:
        self.stats.breaker_opens += 1

    async def _call(self, op: Callable[[], Awaitable[T]]) -> T | None:
        if not self.breaker.allow():
            return None
        try:
            if self.resp is not None:
                result = await op()
            else:
                # asyncio.timeout, not wait_for: no extra task per call.
                async with asyncio.timeout(self.timeout):
                    result = await op()
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)
            return None
        self.breaker.success()
        return result

    def _failed(self, exc: BaseException) -> None:
        self.stats.redis_errors += 1
        self.breaker.failure(exc)

    async def get(self, key: str) -> bytes | None:
        if self.resp is None:
            blob: bytes | None = await self._call(lambda: self.client.get(self.prefix + key))
            return blob
        # The warm path, without _call's extra coroutine: the same breaker and bounds.
        if not self.breaker.allow():
            return None
        try:
            blob = await self.resp.command(b"GET", self.prefix + key)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)
            return None
        self.breaker.success()
        return blob

    async def ping(self) -> str:
        """The tier's state for a readiness check: ``up``, ``down`` (the PING failed, which
        counts against the breaker as any failure does) or ``circuit open`` (the breaker
        allows no call yet; once it allows a probe, this PING may be the one)."""
        if not self.breaker.allow():
            return "circuit open"
        try:
            async with asyncio.timeout(self.timeout):
                if self.resp is not None:
                    await self.resp.command(b"PING")
                else:
                    await self.client.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)
            return "down"
        self.breaker.success()
        return "up"

    def fill(self, key: str, blob: bytes, ttl: float) -> None:
        """Store ``blob`` in the background (the resolution does not wait for Redis)."""
        if len(self._fills) >= MAX_FILLS_IN_FLIGHT or self.breaker.is_open:
            return
        ms = max(1, int(ttl * 1000))
        task = asyncio.create_task(self._fill(key, blob, ms))
        self._fills.add(task)
        task.add_done_callback(self._fills.discard)

    async def _fill(self, key: str, blob: bytes, ms: int) -> None:
        if await self._call(lambda: self.client.set(self.prefix + key, blob, px=ms)) is not None:
            self.stats.redis_fills += 1

    async def delete(self, keys: Iterable[str]) -> None:
        """Best effort: entries are validated by generation anyway; this frees memory."""
        names = [self.prefix + k for k in keys]
        if names:
            await self._call(lambda: self._delete(names))

    async def _delete(self, names: list[str]) -> int:
        # One DEL per key: in a cluster the keys live in different slots.
        total = 0
        for name in names:
            total += int(await self.client.delete(name))
        return total

    async def flush(self) -> None:
        """Wait for the background fills in flight."""
        await asyncio.gather(*list(self._fills), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._fills):
            task.cancel()
        await asyncio.gather(*self._fills, return_exceptions=True)
        try:
            await self.client.aclose()
        except (RedisError, OSError) as exc:  # closing a dead connection is not an error
            log.debug("closing Redis client: %s", exc)


def _safe(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url
