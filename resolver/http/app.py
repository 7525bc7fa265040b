"""The aiohttp application: routes and the error boundary around every handler, over a node
the serving shell (:mod:`resolver.shell`) opened and will close.

The error boundary (:func:`resolver.http.respond.guard`) is what an aiohttp middleware would
be, applied to each route's handler when the route is added instead: aiohttp wraps every
request of an app that has middlewares in two extra coroutine layers (its own
``_fix_request_current_app`` and the middleware), which cost about a tenth of a cached
resolution. A catch-all route (added last)
brings every request that no other route takes — unknown methods, ``OPTIONS``, a method a
path does not allow — inside the boundary too, so every request is answered by it.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from resolver.config import Config
from resolver.console import routes as console
from resolver.http import api, audit, health, lifecycle, metrics, proxy, sessionsapi
from resolver.http.keys import NODE, ROOT_JWK, VERIFIER
from resolver.http.observe import with_request_id
from resolver.http.respond import Handler, guard
from resolver.node import Node
from resolver.verification import LocalVerifier


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


# Path variables matching any character, line breaks too ('.' does not): a path with an
# encoded CR or LF (``%0A``) is still the handlers' to answer, not the router's plain 404.
HANDLE, SOME_HANDLE, TAIL = r"{handle:[\s\S]*}", r"{handle:[\s\S]+}", r"{tail:[\s\S]*}"


# What /metrics counts each route's requests as (resolution counts itself: api.get_handle).
OPERATIONS: dict[Handler, str] = {
    api.put_handle: "write",
    api.delete_handle: "delete",
    api.list_handles: "list",
    api.list_prefixes: "prefixes",
    audit.audit_entries: "audit",
    api.get_site: "site",
    api.reverse_lookup: "reverse_lookup",
    sessionsapi.create_session: "session",
    sessionsapi.this_session: "session",
    lifecycle.apply: "enterprise",
    lifecycle.list_enterprises: "enterprise",
    lifecycle.show_enterprise: "enterprise",
    lifecycle.act: "enterprise",
    lifecycle.put_template: "template",
    lifecycle.get_template: "template",
    lifecycle.list_templates: "template",
    metrics.metrics: "metrics",
    health.healthz: "health",
    health.readyz: "health",
    proxy.proxy: "proxy",
    proxy.landing: "page",
    proxy.resolve_form: "page",
}
OPERATIONS |= {handler: "console" for _, _, handler in console.ROUTES}


async def _load_root_jwk(app: web.Application) -> None:
    # Reading (and, with a passphrase, decrypting) the key file is no work for the loop.
    keyring = app[NODE].keyring
    root = await asyncio.get_running_loop().run_in_executor(None, keyring.key, 0)
    app[ROOT_JWK] = root.public_jwk()


def make_app(config: Config, node: Node) -> web.Application:
    """The HTTP app for ``config`` over ``node`` (whose lifetime is the caller's)."""
    app = web.Application(client_max_size=config.max_body)
    # Cached records carry this API's rendering of them, through Redis too.
    node.cache.renderers[api.PUBLIC_JSON] = api.render_public
    app[NODE] = node
    app[lifecycle.APPLY_LIMIT] = lifecycle.ApplyLimit()
    app.on_startup.append(_load_root_jwk)
    app[VERIFIER] = LocalVerifier(node)
    r = app.router

    def route(methods: tuple[str, ...], path: str, handler: Handler, inline: bool = False) -> None:
        """``inline``: the handler is its own error boundary (see api.get_handle)."""
        resource = r.add_resource(path)
        op = OPERATIONS.get(handler, "resolve" if inline else "other")
        served = handler if inline else guard(handler, op)
        if config.access_log or node.tracing:  # every request gets an id, to find it by
            served = with_request_id(served)
        if node.tracing is not None:
            served = node.tracing.http(served, op)
        for method in methods:
            resource.add_route(method, served)

    read = ("GET", "HEAD", "POST")
    # Resolution first: the router tries the resources of one path prefix in this order.
    route(read, "/api/handles/" + HANDLE, api.get_handle, inline=True)
    route(("PUT",), "/api/handles/" + HANDLE, api.put_handle)
    route(("DELETE",), "/api/handles/" + HANDLE, api.delete_handle)
    route(read, "/api/handles", api.list_handles)
    route(("PUT",), "/api/handles", api.put_handle)
    route(("DELETE",), "/api/handles", api.delete_handle)
    route(read, "/api/site", api.get_site)
    route(("GET", "HEAD"), "/api/prefixes", api.list_prefixes)
    route(("GET", "HEAD"), "/api/audit", audit.audit_entries)
    route(("POST",), "/api/enterprises", lifecycle.apply)
    route(("GET", "HEAD"), "/api/enterprises", lifecycle.list_enterprises)
    route(("GET", "HEAD"), "/api/enterprises/{prefix}", lifecycle.show_enterprise)
    route(("POST",), "/api/enterprises/{prefix}/{action}", lifecycle.act)
    route(("GET", "HEAD"), "/api/templates", lifecycle.list_templates)
    route(("GET", "HEAD"), "/api/templates/{name}", lifecycle.get_template)
    route(("PUT",), "/api/templates/{name}", lifecycle.put_template)
    route(("GET", "HEAD"), "/metrics", metrics.metrics)
    route(("GET", "HEAD"), "/healthz", health.healthz)
    route(("GET", "HEAD"), "/readyz", health.readyz)
    route(("GET", "HEAD"), "/hrls/handles", api.reverse_lookup)
    route(("GET", "HEAD"), "/hrls/handles/", api.reverse_lookup)
    route(("POST",), "/api/sessions", sessionsapi.create_session)
    route(("POST",), "/api/sessions/", sessionsapi.create_session)
    route(("GET", "HEAD", "PUT", "POST", "DELETE"), "/api/sessions/this", sessionsapi.this_session)
    route(("*",), "/api" + TAIL, api.unknown_api)
    console.install(app, config, route)
    route(("GET", "HEAD"), "/", proxy.landing)
    route(("GET", "HEAD"), "/resolve", proxy.resolve_form)
    route(("GET", "HEAD"), "/" + SOME_HANDLE, proxy.proxy)
    route(("*",), "/" + TAIL, no_route)
    return app
