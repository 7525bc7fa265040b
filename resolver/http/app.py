"""The aiohttp application: routes, the error middleware, and the node's lifetime in
``cleanup_ctx``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from registry.errors import HandleError, ProtocolError, ServerError
from resolver.config import Config
from resolver.http import api, metrics, proxy
from resolver.http.keys import ECHO, NODE
from resolver.http.respond import error_response
from resolver.node import Node
from sync.agent import SyncAgent

log = logging.getLogger("idnode.http")

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every HandleError once; unknown methods → 501; never leak a traceback."""
    if request.method not in METHODS:
        return error_response(ProtocolError(f"Unknown method {request.method}", http=501), None)
    if request.method == "OPTIONS":
        return web.Response(headers={"Allow": ", ".join(METHODS)})
    try:
        return await handler(request)
    except HandleError as exc:
        return error_response(exc, request.get(ECHO))
    except web.HTTPException as exc:
        if request.path.startswith("/api") and exc.status >= 400:
            return error_response(ProtocolError(exc.reason, http=exc.status), request.get(ECHO))
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(ServerError(), request.get(ECHO))


async def _cors(request: web.Request, response: web.StreamResponse) -> None:
    origin = request.headers.get("Origin")
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = "Content-Length"
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = ", ".join(METHODS)
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"


def make_app(config: Config, node: Node | None = None) -> web.Application:
    """The HTTP app for ``config``. With ``node`` the caller owns the node's lifetime."""
    app = web.Application(middlewares=[errors], client_max_size=config.max_body)

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        opened = node or await Node.open(config)
        app[NODE] = opened
        agent = SyncAgent(opened)  # reporting to the top-level, cross-node routing
        await agent.start()
        try:
            yield
        finally:
            await agent.stop()
            if node is None:
                await opened.close()

    app.cleanup_ctx.append(lifetime)
    app.on_response_prepare.append(_cors)
    r = app.router
    for method in ("GET", "HEAD", "POST"):
        r.add_route(method, "/api/handles", api.list_handles)
        r.add_route(method, "/api/handles/{handle:.*}", api.get_handle)
        r.add_route(method, "/api/site", api.get_site)
    r.add_route("PUT", "/api/handles", api.put_handle)
    r.add_route("DELETE", "/api/handles", api.delete_handle)
    r.add_route("PUT", "/api/handles/{handle:.*}", api.put_handle)
    r.add_route("DELETE", "/api/handles/{handle:.*}", api.delete_handle)
    r.add_get("/api/prefixes", api.list_prefixes)
    r.add_get("/metrics", metrics.metrics)
    r.add_get("/hrls/handles", api.reverse_lookup)
    r.add_get("/hrls/handles/", api.reverse_lookup)
    r.add_route("*", "/api{tail:.*}", api.unknown_api)
    r.add_get("/", proxy.landing)
    r.add_get("/resolve", proxy.resolve_form)
    r.add_get("/{handle:.+}", proxy.proxy)
    return app
