"""The reference server's sessions API, with which Handle clients sign in before they write.

``POST /api/sessions`` → 201 ``{"sessionId","nonce"}`` (a new challenge). ``PUT`` (or
``POST``) ``/api/sessions/this`` with the signed answer — in an ``Authorization: Handle``
header, or as the same fields in a JSON body — → 200 ``{"sessionId","nonce",
"authenticated":true,"id"}``, or 401 with ``"error"`` and a fresh nonce. ``GET`` shows the
session the header names, ``DELETE`` ends it (204). A session this process does not know →
403, as the reference answers; so is any of it over a transport that may not carry
credentials.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
from aiohttp import web

from registry.errors import CREDENTIALS_NEED_TLS, AuthenticationFailed, AuthenticationNeeded
from registry.sessions import Session
from resolver.http.credentials import transport_allows
from resolver.http.handleauth import HandleAuthorization, parse_authorization
from resolver.http.handlelogin import sign_in
from resolver.http.keys import NODE
from resolver.http.respond import auth_headers, json_response
from resolver.node import Node


def _check_transport(request: web.Request, node: Node) -> None:
    if not transport_allows(request, node.config.plain_credentials):
        raise AuthenticationNeeded(
            "Credentials are accepted only over HTTPS", outcome=CREDENTIALS_NEED_TLS
        )


def _body(session: Session, error: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "sessionId": session.id,
        "nonce": base64.b64encode(session.nonce).decode("ascii"),
    }
    if session.who is not None:
        ident = session.who.identity
        out.update(authenticated=True, id=f"{ident.index}:{ident.handle}")
    if error:
        out["error"] = error
    return out


async def _fields(request: web.Request) -> HandleAuthorization:
    """The header's fields, completed by a JSON body's (the header wins)."""
    header = request.headers.get("Authorization", "")
    parsed = parse_authorization(header) if header else None
    params = dict(parsed.params) if parsed else {}
    raw = await request.read()
    if raw.strip():
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise web.HTTPBadRequest(reason="Invalid JSON in sessions request") from None
        if isinstance(body, dict):
            for name, value in body.items():
                if isinstance(value, str):
                    params.setdefault(name.lower(), value)
    return HandleAuthorization(params)


async def create_session(request: web.Request) -> web.Response:
    node = request.app[NODE]
    _check_transport(request, node)
    if (await _fields(request)).session_id:
        raise web.HTTPBadRequest(reason="A new session cannot name one")
    session = node.sessions.challenge()
    return json_response(_body(session), 201, {"Location": "/api/sessions/this"})


async def this_session(request: web.Request) -> web.StreamResponse:
    node = request.app[NODE]
    _check_transport(request, node)
    fields = await _fields(request)
    session = node.sessions.get(fields.session_id or "")
    if session is None:  # the reference's answer: 403, no body
        return web.Response(status=403)
    if request.method == "DELETE":
        node.sessions.end(session.id)
        return web.Response(status=204)
    if request.method in ("PUT", "POST") and fields.signing:
        try:
            session = await sign_in(request, node, fields)
        except AuthenticationFailed as exc:
            response = json_response(_body(session, exc.message), 401)
            for k, v in auth_headers(session, basic=False, error=exc.message):
                response.headers.add(k, v)
            return response
    return json_response(_body(session))
