"""The top-level node's HTTP service: the intake API, the Handle API for its records, the
read-only views, and the failures it injects on demand.

Every database call runs on one thread of the service's own (:meth:`TopLevel.call`), in
order, so the event loop never waits on SQLite or on signing, and writes never contend
inside the process.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import signal
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import orjson
from aiohttp import web

from registry.errors import NO_VALUES, SUCCESS, HandleError, HandleNotFound
from registry.model import jsonapi
from registry.model.filters import ValueFilter
from registry.model.identifiers import prefix_handle
from registry.model.jsonvalues import value_to_json
from sync import protocol
from sync.toplevel import home, intake, page, views
from sync.toplevel.intake import IntakeError, Signed
from sync.toplevel.records import DEFAULT_RECORD_TTL

log = logging.getLogger("idnode.toplevel")

R = TypeVar("R")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

INTAKE = "/intake/"
API_HANDLES = jsonapi.API_HANDLES
JSON_TYPE = "application/json;charset=utf-8"


@dataclass(frozen=True)
class Faults:
    """Failures injected on demand: ``latency_ms`` before every answer; for intake requests,
    a fraction ``error_rate`` answered 503 without being looked at, and a downtime window
    ``[down_after, down_after + down_for)`` seconds after the service started in which every
    intake request is answered 503. ``seed`` makes the error draws repeatable."""

    latency_ms: int = 0
    error_rate: float = 0.0
    down_after: float | None = None
    down_for: float | None = None
    seed: int | None = None


class TopLevel:
    """The service's state: its database connection (used on one thread), root and settings."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        root: home.Root,
        *,
        record_ttl: int = DEFAULT_RECORD_TTL,
        faults: Faults | None = None,
    ) -> None:
        self.conn = conn
        self.root = root
        self.record_ttl = record_ttl
        self.faults = faults or Faults()
        self.rng = random.Random(self.faults.seed)
        self.started = time.monotonic()
        self._db = ThreadPoolExecutor(1, thread_name_prefix="toplevel-db")

    async def call(self, fn: Callable[..., R], *args: Any) -> R:
        """``fn(conn, *args)`` on the database thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db, partial(fn, self.conn, *args))

    def downtime_left(self) -> float:
        """Seconds left of the injected downtime window, 0 outside it."""
        after, length = self.faults.down_after, self.faults.down_for
        if after is None or length is None:
            return 0.0
        elapsed = time.monotonic() - self.started
        return max(0.0, after + length - elapsed) if elapsed >= after else 0.0

    def close(self) -> None:
        self._db.shutdown(wait=True)
        self.conn.close()


TL = web.AppKey("toplevel", TopLevel)


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        headers={"Content-Type": JSON_TYPE, **(headers or {})},
    )


def handle_error(exc: HandleError, handle: str | None) -> web.Response:
    """A Handle API error, answered as idnode answers it."""
    return json_response(jsonapi.error_json(exc, handle), exc.status)


def error(status: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    return json_response({"error": reason}, status, headers)


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Injected failures first, then every refusal as ``{"error": reason}``."""
    tl = request.app[TL]
    if tl.faults.latency_ms:
        await asyncio.sleep(tl.faults.latency_ms / 1000)
    if request.path.startswith(INTAKE):
        left = tl.downtime_left()
        if left > 0:
            retry = {"Retry-After": str(math.ceil(left))}
            return error(503, "down for maintenance (injected downtime)", retry)
        if tl.faults.error_rate and tl.rng.random() < tl.faults.error_rate:
            return error(503, "injected failure")
    try:
        return await handler(request)
    except IntakeError as exc:
        headers = {"WWW-Authenticate": protocol.SCHEME} if exc.status == 401 else None
        return error(exc.status, exc.reason, headers)
    except web.HTTPException as exc:
        if exc.status >= 400:
            allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
            return error(exc.status, exc.reason.lower(), allow)
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error(500, "internal error")


# --- intake ----------------------------------------------------------------------------------


async def _signed(request: web.Request) -> tuple[Signed, Any]:
    """The request's signature parameters, its body and the body's JSON."""
    try:
        auth = protocol.parse_auth(request.headers.get("Authorization"))
    except protocol.ProtocolError as exc:
        raise IntakeError(401, str(exc)) from None
    if request.content_length is not None and request.content_length > protocol.MAX_BODY:
        raise IntakeError(413, f"request body larger than {protocol.MAX_BODY} bytes")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise IntakeError(413, f"request body larger than {protocol.MAX_BODY} bytes") from None
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise IntakeError(400, f"malformed JSON: {exc}") from None
    return Signed(auth, request.method, request.raw_path, body), obj


async def register(request: web.Request) -> web.Response:
    tl = request.app[TL]
    req, body = await _signed(request)
    answer = await tl.call(intake.register, tl.root, req, body, int(time.time()))
    return json_response(answer)


async def batches(request: web.Request) -> web.Response:
    tl = request.app[TL]
    req, body = await _signed(request)
    return json_response(await tl.call(intake.batch, req, body, int(time.time())))


async def heartbeat(request: web.Request) -> web.Response:
    tl = request.app[TL]
    req, body = await _signed(request)
    return json_response(await tl.call(intake.heartbeat, req, body, int(time.time())))


# --- the Handle API --------------------------------------------------------------------------


async def get_handle(request: web.Request) -> web.Response:
    """``0.0/0.0`` and routed ``0.NA/<prefix>`` records, answered as idnode answers."""
    tl = request.app[TL]
    try:
        handle = jsonapi.path_handle(request.raw_path)
        indexes, _ = jsonapi.indexes(request.query)
        selection = ValueFilter(jsonapi.types(request.query), indexes)
    except HandleError as exc:
        return handle_error(exc, None)
    lookup = handle if "/" in handle else prefix_handle(handle)  # as idnode: 88.118 → 0.NA/…
    values = await tl.call(views.record, tl.root, lookup, tl.record_ttl, int(time.time()))
    if values is None:
        return handle_error(HandleNotFound(), handle)
    if selection:
        values = tuple(selection.select(values))
    if not values:
        return json_response(
            {"responseCode": NO_VALUES.response_code, "values": [], "handle": handle},
            NO_VALUES.http,
        )
    body = {"handle": handle, "values": [value_to_json(v) for v in values]}
    return json_response({"responseCode": SUCCESS.response_code, **body}, SUCCESS.http)


# --- read-only views -------------------------------------------------------------------------


async def nodes_view(request: web.Request) -> web.Response:
    tl = request.app[TL]
    return json_response({"nodes": await tl.call(views.nodes, int(time.time()))})


async def prefixes_view(request: web.Request) -> web.Response:
    tl = request.app[TL]
    return json_response({"prefixes": await tl.call(views.prefixes)})


async def stats_view(request: web.Request) -> web.Response:
    tl = request.app[TL]
    prefix = request.query.get("prefix") or None
    return json_response(await tl.call(views.stats, prefix))


async def items_view(request: web.Request) -> web.Response:
    tl = request.app[TL]
    return json_response({"apps": await tl.call(views.items)})


async def events_view(request: web.Request) -> web.Response:
    tl = request.app[TL]
    return json_response({"events": await tl.call(views.events)})


async def index_page(request: web.Request) -> web.Response:
    tl = request.app[TL]
    now = int(time.time())
    data = await tl.call(views.everything, now)
    return web.Response(text=page.render(data, now), content_type="text/html", charset="utf-8")


def make_app(tl: TopLevel) -> web.Application:
    app = web.Application(middlewares=[middleware], client_max_size=protocol.MAX_BODY)
    app[TL] = tl

    async def close(_app: web.Application) -> None:
        tl.close()

    app.on_cleanup.append(close)
    r = app.router
    r.add_post(protocol.REGISTER_PATH, register)
    r.add_post(protocol.BATCH_PATH, batches)
    r.add_post(protocol.HEARTBEAT_PATH, heartbeat)
    r.add_get(API_HANDLES + "{handle:.*}", get_handle)
    r.add_get("/toplevel/v1/nodes", nodes_view)
    r.add_get("/toplevel/v1/prefixes", prefixes_view)
    r.add_get("/toplevel/v1/stats", stats_view)
    r.add_get("/toplevel/v1/items", items_view)
    r.add_get("/toplevel/v1/events", events_view)
    r.add_get("/", index_page)
    return app


async def _serve(tl: TopLevel, host: str, port: int) -> None:
    runner = web.AppRunner(make_app(tl), handler_cancellation=True)
    await runner.setup()
    tl.started = time.monotonic()  # the downtime window counts from here
    try:
        # Handlers first: whoever reads the line below may signal at once.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        site = web.TCPSite(runner, host, port)
        await site.start()
        for sock in getattr(site._server, "sockets", ()):  # aiohttp has no public accessor
            bound, bound_port = sock.getsockname()[:2]
            # Tests and scripts read this line to find the port when serving on port 0.
            sys.stdout.write(f"idnode-toplevel listening on http://{bound}:{bound_port}\n")
            sys.stdout.flush()
        await stop.wait()
    finally:
        await runner.cleanup()


def serve(data: Path, host: str, port: int, *, record_ttl: int, faults: Faults) -> None:
    """Serve until SIGINT/SIGTERM (prints ``idnode-toplevel listening on http://H:P``)."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
    )
    conn = home.open_db(data)
    try:
        root = home.load_root(data, conn)
    except BaseException:
        conn.close()
        raise
    tl = TopLevel(conn, root, record_ttl=record_ttl, faults=faults)
    main = _serve(tl, host, port)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is optional off Linux
        asyncio.run(main)
    else:
        uvloop.run(main)
