"""Whether a node can serve: the checks behind ``/readyz`` (and ``idnode status``), for any
transport or operator tool that holds a :class:`~resolver.node.Node`.

- ``store``: a point read of the node's prefix handle answers within ``ready_timeout``;
- ``keys``: the sealing key and the signing keys are still where the node loaded them from
  (a write needs both);
- ``redis`` (when configured): a PING answers, and the tier's circuit breaker is closed.
  Reported always, but it decides readiness only under ``ready_requires_redis`` (the
  default): a node whose Redis is down still answers, from its own tier and the store;
- ``sync_backlog``: the outbox holds at most ``ready_max_backlog`` items not yet delivered
  to the top-level.

The checks run concurrently, each bounded by ``ready_timeout``; a check that fails says why,
so that the answer is what an operator needs to act on. Liveness (``/healthz``) is not here:
that the process answers at all is the whole of it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

from registry.model.identifiers import handle_key
from registry.store.factory import check_location
from resolver.node import Node, require_keys


@dataclass(frozen=True)
class Check:
    """One check's outcome; ``facts`` are JSON values (timings, counts, the error).
    A check that is not ``required`` is reported but does not decide readiness."""

    name: str
    ok: bool
    facts: dict[str, Any] = field(default_factory=dict)
    required: bool = True

    def to_json(self) -> dict[str, Any]:
        shown = {"ok": self.ok, **self.facts}
        if not self.required:
            shown["required"] = False
        return shown


@dataclass(frozen=True)
class Readiness:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok or not c.required for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": "ready" if self.ok else "not ready",
            "checks": {c.name: c.to_json() for c in self.checks},
        }


async def readiness(node: Node) -> Readiness:
    """Every check of ``node``, run concurrently; kept as the node's last readiness (which
    ``/metrics`` reports)."""
    backend = check_location(node.config.store_location)
    checks: list[Awaitable[Check]] = [
        _bounded(node, "store", _store, {"backend": backend}),
        _bounded(node, "keys", _keys),
        _bounded(node, "sync_backlog", _backlog),
    ]
    if node.cache.redis is not None:
        checks.insert(2, _bounded(node, "redis", _redis, required=node.config.ready_requires_redis))
    ready = Readiness(tuple(await asyncio.gather(*checks)))
    node.telemetry.readiness = (time.time(), ready)
    return ready


async def _bounded(
    node: Node,
    name: str,
    check: Callable[[Node], Awaitable[Check]],
    known: dict[str, Any] | None = None,
    *,
    required: bool = True,
) -> Check:
    """``check`` within ``ready_timeout``, as a :class:`Check` whatever happens; ``known``:
    facts that hold either way (which store it is)."""
    timeout = node.config.ready_timeout
    try:
        async with asyncio.timeout(timeout):
            done = await check(node)
        facts = done.facts
    except TimeoutError:
        done, facts = None, {"error": f"no answer within {timeout:g} s"}
    except Exception as exc:  # whatever broke, the answer says so (and stays an answer)
        done, facts = None, {"error": _said(exc)}
    ok = done is not None and done.ok
    return Check(name, ok, {**(known or {}), **facts}, required)


def _said(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


async def _store(node: Node) -> Check:
    start = perf_counter()
    await node.store.get(handle_key(node.keyring.handle))
    return Check("store", True, {"seconds": round(perf_counter() - start, 6)})


async def _keys(node: Node) -> Check:
    await asyncio.to_thread(require_keys, node.config)  # file checks: off the event loop
    return Check("keys", True)


async def _redis(node: Node) -> Check:
    assert node.cache.redis is not None
    state = await node.cache.redis.ping()
    return Check("redis", state == "up", {"state": state})


async def _backlog(node: Node) -> Check:
    summary = await node.store.outbox_summary()
    limit = node.config.ready_max_backlog
    return Check(
        "sync_backlog", summary.pending <= limit, {"pending": summary.pending, "max": limit}
    )
