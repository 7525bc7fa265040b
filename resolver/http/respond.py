"""JSON answers, CORS headers, and the error boundary: the one place HandleErrors become HTTP
responses, and where every request but a resolution is counted and timed for ``/metrics``."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any, TypeVar

import orjson
from aiohttp import web

from registry.errors import (
    RC_SUCCESS,
    UNKNOWN_METHOD,
    AuthenticationFailed,
    AuthenticationNeeded,
    HandleError,
    ProtocolError,
    ServerError,
    Throttled,
    UnsupportedAuthScheme,
    protocol_outcome,
)
from registry.model.jsonapi import error_json
from registry.sessions import Session
from resolver.http import handleauth
from resolver.http.keys import CHALLENGE, ECHO, NODE
from resolver.http.observe import adopt_incoming, echo_request_id, response_code

log = logging.getLogger("idnode.http")

JSON_TYPE = "application/json;charset=utf-8"
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS")
KNOWN_METHODS = frozenset(METHODS)
ALLOW = ", ".join(METHODS)
R = TypeVar("R", bound=web.StreamResponse)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def cors(request: web.Request, response: R) -> R:
    """``response`` with the CORS headers a request with an ``Origin`` gets, and the
    request's id if it has one (before it is prepared: a handler streaming its answer calls
    this before ``prepare``)."""
    echo_request_id(response)
    origin = request.headers.get("Origin")
    if origin and not response.prepared:
        headers = response.headers
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Expose-Headers"] = "Content-Length"
        if request.method == "OPTIONS":
            headers["Access-Control-Allow-Methods"] = ", ".join(METHODS)
            headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
    return response


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        headers={"Content-Type": JSON_TYPE, **(headers or {})},
    )


def auth_headers(
    challenge: Session | None, basic: bool = True, error: str | None = None
) -> list[tuple[str, str]]:
    """The ``WWW-Authenticate`` headers of a 401: Basic (unless the client spoke another
    scheme) and the Handle scheme's challenge in ``challenge`` (a session of the node's
    table: its nonce is the one a signature must answer)."""
    out = []
    if basic:
        out.append(("WWW-Authenticate", 'Basic realm="handle"'))
    if challenge is not None:
        out.append(("WWW-Authenticate", handleauth.challenge(challenge.id, challenge.nonce, error)))
    return out


def error_response(
    exc: HandleError, handle: str | None, challenge: Session | None = None, basic: bool = True
) -> web.Response:
    """The HTTP answer for ``exc``: ``{"responseCode":N[,"message":M][,"handle":H]}``; a 401
    invites a Handle-scheme signature in ``challenge``, and Basic credentials if ``basic``."""
    if isinstance(exc, AuthenticationFailed):
        # Wrong credentials: 401 (the table's row for them) with no body, as Handle clients
        # expect.
        resp = web.Response(status=exc.status)
        basic = basic and not isinstance(exc, UnsupportedAuthScheme)
        for k, v in auth_headers(challenge, basic=basic, error=exc.message):
            resp.headers.add(k, v)
        return resp
    resp = json_response(error_json(exc, handle), exc.status)
    if isinstance(exc, AuthenticationNeeded) and exc.status == 401:
        for k, v in auth_headers(challenge, basic=basic):
            resp.headers.add(k, v)
    if isinstance(exc, Throttled):
        resp.headers["Retry-After"] = str(exc.retry_after)
    return resp


def _challenge_for(request: web.Request, exc: HandleError) -> Session | None:
    """The session a 401 for ``exc`` challenges in: the one the request named, else new."""
    if not isinstance(exc, AuthenticationFailed | AuthenticationNeeded) or exc.status != 401:
        return None
    return request.get(CHALLENGE) or request.app[NODE].sessions.challenge()


def failure(request: web.Request, exc: Exception) -> web.StreamResponse:
    """The answer for an exception a handler raised: every HandleError rendered once,
    aiohttp's HTTP errors as JSON under ``/api``, never a traceback. Other HTTP exceptions
    (redirects, errors outside ``/api``) are raised again for aiohttp to send."""
    if isinstance(exc, HandleError):
        challenge = _challenge_for(request, exc)
        # As the reference: a client that sent another scheme is not offered Basic.
        basic = request.headers.get("Authorization", "basic").lstrip().lower().startswith("basic")
        return cors(request, error_response(exc, request.get(ECHO), challenge, basic))
    if isinstance(exc, web.HTTPException):
        if request.path.startswith("/api") and exc.status >= 400:
            error = ProtocolError(exc.reason, outcome=protocol_outcome(exc.status))
            return cors(request, error_response(error, request.get(ECHO)))
        raise cors(request, exc)
    log.exception("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return cors(request, error_response(ServerError(), request.get(ECHO)))


def guard(handler: Handler, op: str = "other") -> Handler:
    """``handler`` inside the error boundary: unknown methods → 501, ``OPTIONS`` → the
    methods allowed, exceptions → :func:`failure`, CORS headers and the request id on every
    answer it returns (a handler that prepares a streamed answer itself calls :func:`cors`
    first). Each request is counted and timed under operation ``op``."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        start = perf_counter()
        code = RC_SUCCESS
        try:
            adopt_incoming(request)
            method = request.method
            if method not in KNOWN_METHODS:
                error = ProtocolError(f"Unknown method {method}", outcome=UNKNOWN_METHOD)
                code = error.response_code
                return cors(request, error_response(error, None))
            if method == "OPTIONS":
                return cors(request, web.Response(headers={"Allow": ALLOW}))
            try:
                response = await handler(request)
            except Exception as exc:
                code = response_code(exc)
                return failure(request, exc)
            return cors(request, response)
        finally:
            request.app[NODE].telemetry.http.observe(op, code, perf_counter() - start)

    return guarded
