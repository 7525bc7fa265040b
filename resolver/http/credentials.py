"""HTTP Basic authentication of Handle identities.

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
from registry.errors import (
    CREDENTIALS_NEED_TLS,
    AuthenticationFailed,
    AuthenticationNeeded,
    Throttled,
    UnsupportedAuthScheme,
)
from registry.model.admin import AdminRef
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
    if scheme.lower() != "basic":
        raise UnsupportedAuthScheme()
    source = request.remote or "?"
    identity: AdminRef | None
    try:
        user, sep, secret = base64.b64decode(token.strip(), validate=True).partition(b":")
        if not sep:
            raise ValueError("no password")
        identity = parse_identity(unquote(user.decode("utf-8"), errors="strict"))
    except (binascii.Error, ValueError):
        identity = None
    throttle = node.throttle
    wait = throttle.retry_after(source, identity)
    if wait > 0:
        raise Throttled(throttle.ceil(wait))
    if identity is None:
        throttle.failed(source, None)
        raise AuthenticationFailed("")
    try:
        who = await node.registry.authenticator.verify_secret(identity, secret)
    except AuthenticationFailed:
        throttle.failed(source, identity)
        raise
    throttle.succeeded(source, identity)
    return who
