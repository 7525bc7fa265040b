"""HTTP authentication of Handle identities: Basic read here, the ``Handle`` scheme (a
signature by an HS_PUBKEY's key, then a session) in :mod:`resolver.http.handlelogin`; every
attempt judged by the node's throttle and authenticator
(:meth:`registry.auth.FailureThrottle.attempt`, shared with every protocol that
authenticates).

The user name is the percent-encoded identity ``index:handle`` (``300%3A0.NA%2F88.118.8``);
the password is the HS_SECKEY secret. Credentials are honoured over TLS, and over plain HTTP
only where ``plain_credentials`` allows (loopback clients by default); elsewhere they are
ignored, as the reference server does.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from urllib.parse import unquote

from aiohttp import web

from registry.auth import parse_identity
from registry.authz import Principal
from registry.errors import CREDENTIALS_NEED_TLS, AuthenticationNeeded, UnsupportedAuthScheme
from registry.model.admin import AdminRef
from resolver.http.handleauth import SCHEME
from resolver.http.handlelogin import handle_principal
from resolver.node import Node


def _is_loopback(request: web.Request) -> bool:
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        return False


def transport_allows(request: web.Request, policy: str) -> bool:
    if request.secure or policy == "any":
        return True
    return policy == "loopback" and _is_loopback(request)


async def principal(request: web.Request, node: Node, *, required: bool) -> Principal | None:
    """The authenticated caller, or None for an anonymous one.

    Raises AuthenticationNeeded (401, or 403 over a transport that may not carry credentials)
    when ``required`` and nobody is authenticated, AuthenticationFailed for wrong credentials,
    Throttled after repeated failures.
    """
    header = request.headers.get("Authorization")
    if not header:
        if required:
            raise AuthenticationNeeded()
        return None
    if not transport_allows(request, node.config.plain_credentials):
        if required:
            raise AuthenticationNeeded(
                "Credentials are accepted only over HTTPS", outcome=CREDENTIALS_NEED_TLS
            )
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() == SCHEME:
        return await handle_principal(request, node, header, required=required)
    if scheme.lower() != "basic":
        raise UnsupportedAuthScheme()
    identity: AdminRef | None
    secret = b""
    try:
        user, sep, secret = base64.b64decode(token.strip(), validate=True).partition(b":")
        if not sep:
            raise ValueError("no password")
        identity = parse_identity(unquote(user.decode("utf-8"), errors="strict"))
    except (binascii.Error, ValueError):
        identity = None  # malformed: a failed attempt all the same

    async def prove(identity: AdminRef) -> Principal:
        return await node.registry.authenticator.verify_secret(identity, secret)

    return await node.throttle.attempt(request.remote or "?", identity, prove)
