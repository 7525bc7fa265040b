"""The aiohttp application: routes, the error boundary around every handler, and the node's
lifetime in ``cleanup_ctx``.

The error boundary (:func:`guard`) is what an aiohttp middleware would be, applied to each
route's handler when the route is added instead: aiohttp wraps every request of an app that
has middlewares in two extra coroutine layers (its own ``_fix_request_current_app`` and the
middleware), which cost about a tenth of a cached resolution. A catch-all route (added last)
brings every request that no other route takes — unknown methods, ``OPTIONS``, a method a
path does not allow — inside the boundary too, so every request is answered by it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from registry.errors import HandleError, ProtocolError, ServerError
from resolver.config import Config
from resolver.http import api, metrics, proxy
from resolver.http.keys import ECHO, NODE
from resolver.http.respond import METHODS, cors, error_response
from resolver.node import Node

log = logging.getLogger("idnode.http")

KNOWN_METHODS = frozenset(METHODS)
ALLOW = ", ".join(METHODS)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def failure(request: web.Request, exc: Exception) -> web.StreamResponse:
    """The answer for an exception a handler raised: every HandleError rendered once,
    aiohttp's HTTP errors as JSON under ``/api``, never a traceback. Other HTTP exceptions
    (redirects, errors outside ``/api``) are raised again for aiohttp to send."""
    if isinstance(exc, HandleError):
        return cors(request, error_response(exc, request.get(ECHO)))
    if isinstance(exc, web.HTTPException):
        if request.path.startswith("/api") and exc.status >= 400:
            error = ProtocolError(exc.reason, http=exc.status)
            return cors(request, error_response(error, request.get(ECHO)))
        raise cors(request, exc)
    log.exception("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return cors(request, error_response(ServerError(), request.get(ECHO)))


def guard(handler: Handler) -> Handler:
    """``handler`` inside the error boundary: unknown methods → 501, ``OPTIONS`` → the
    methods allowed, exceptions → :func:`failure`, CORS headers on every answer it returns
    (a handler that prepares a streamed answer itself calls :func:`cors` first)."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        method = request.method
        if method not in KNOWN_METHODS:
            error = ProtocolError(f"Unknown method {method}", http=501)
            return cors(request, error_response(error, None))
        if method == "OPTIONS":
            return cors(request, web.Response(headers={"Allow": ALLOW}))
        try:
            response = await handler(request)
        except Exception as exc:
            return failure(request, exc)
        return cors(request, response)

    return guarded


async def no_route(request: web.Request) -> web.StreamResponse:
    """Whatever no other route takes (the catch-all, added last): 405 when another route
    has this path with other methods, else 404 — as aiohttp's router says it."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is not request.match_info.route.resource:
            _, methods = await resource.resolve(request)
            allowed |= methods
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound()


def make_app(config: Config, node: Node | None = None) -> web.Application:
    """The HTTP app for ``config``. With ``node`` the caller owns the node's lifetime."""
    app = web.Application(client_max_size=config.max_body)

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        opened = node or await Node.open(config)
        # Cached records carry this API's rendering of them, through Redis too.
        opened.cache.renderers[api.PUBLIC_JSON] = api.render_public
        app[NODE] = opened
        yield
        if node is None:
            await opened.close()

    app.cleanup_ctx.append(lifetime)
    r = app.router

    def route(methods: tuple[str, ...], path: str, handler: Handler) -> None:
        resource = r.add_resource(path)
        for method in methods:
            resource.add_route(method, guard(handler))

    read = ("GET", "HEAD", "POST")
    # Resolution first: the router tries the resources of one path prefix in this order.
    route(read, "/api/handles/{handle:.*}", api.get_handle)
    route(("PUT",), "/api/handles/{handle:.*}", api.put_handle)
    route(("DELETE",), "/api/handles/{handle:.*}", api.delete_handle)
    route(read, "/api/handles", api.list_handles)
    route(("PUT",), "/api/handles", api.put_handle)
    route(("DELETE",), "/api/handles", api.delete_handle)
    route(read, "/api/site", api.get_site)
    route(("GET", "HEAD"), "/api/prefixes", api.list_prefixes)
    route(("GET", "HEAD"), "/metrics", metrics.metrics)
    route(("GET", "HEAD"), "/hrls/handles", api.reverse_lookup)
    route(("GET", "HEAD"), "/hrls/handles/", api.reverse_lookup)
    route(("*",), "/api{tail:.*}", api.unknown_api)
    route(("GET", "HEAD"), "/", proxy.landing)
    route(("GET", "HEAD"), "/resolve", proxy.resolve_form)
    route(("GET", "HEAD"), "/{handle:.+}", proxy.proxy)
    route(("*",), "/{tail:.*}", no_route)
    return app
