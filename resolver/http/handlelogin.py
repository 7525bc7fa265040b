"""The server side of ``Authorization: Handle`` (see :mod:`resolver.http.handleauth` for the
header, :mod:`registry.sessions` for the session table): an answer to a session's nonce —
signed with an HS_PUBKEY's key, or (``type="HS_SECKEY"``) a MAC under the secret
(:mod:`registry.secretmac`) — checked by the registry's authenticator and judged by the
node's throttle like a Basic secret; then the session id alone.

As the reference server: a header naming a session this process does not know (expired,
ended, or made by another worker) is a failed login answered 401 with a fresh challenge; a
signed answer is verified once, against the nonce current when it arrives.
"""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

from registry.auth import parse_identity
from registry.authz import Principal
from registry.errors import AuthenticationFailed, AuthenticationNeeded
from registry.model.admin import AdminRef
from registry.model.values import HS_PUBKEY, HS_SECKEY
from registry.secretmac import SecretMac, parse_alg
from registry.sessions import Session
from resolver.http.handleauth import HandleAuthorization, parse_authorization
from resolver.http.keys import CHALLENGE
from resolver.node import Node

UNKNOWN_SESSION = "Unknown or expired session; sign in again"


def _b64(text: str) -> bytes:
    """Base64 as clients send it: standard or URL-safe alphabet, padded or not, line breaks
    (Ruby's ``encode64``) ignored."""
    text = "".join(text.split())
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise AuthenticationFailed("Malformed base64 in Authorization: Handle") from None


def _secret_mac(auth: HandleAuthorization, alg: str) -> SecretMac:
    """How an HS_SECKEY answer was computed: ``alg``, and PBKDF2's ``salt``, ``iterations``
    and ``length`` (in bits) fields."""
    try:
        salt = _b64(auth.get("salt") or "")
        return parse_alg(alg, salt, int(auth.get("iterations") or 0), int(auth.get("length") or 0))
    except ValueError as exc:
        raise AuthenticationFailed(str(exc)) from None


async def sign_in(request: web.Request, node: Node, auth: HandleAuthorization) -> Session:
    """Check the signed answer ``auth`` in the session it names; that session, now
    authenticated. AuthenticationFailed (the 401 challenging in the session again, with a
    fresh nonce), Throttled after repeated failures."""
    session = node.sessions.get(auth.session_id or "")
    if session is None:
        raise AuthenticationFailed(UNKNOWN_SESSION if auth.session_id else "No sessionId")
    request[CHALLENGE] = session
    nonce = node.sessions.take_nonce(session)
    identity: AdminRef | None = None
    if auth.get("id"):
        identity = parse_identity(auth.get("id") or "")

    async def prove(identity: AdminRef) -> Principal:
        if auth.missing:
            raise AuthenticationFailed(f"Missing fields in authentication data: {auth.missing}")
        if auth.get("version") not in (None, "0"):
            raise AuthenticationFailed("Unknown version in Authorization: Handle")
        cnonce = _b64(auth.get("cnonce") or "")
        signature = _b64(auth.get("signature") or "")
        alg = auth.get("alg") or ""
        authenticator = node.registry.authenticator
        kind = auth.get("type")
        if kind == HS_PUBKEY:
            return await authenticator.verify_signature(identity, nonce + cnonce, signature, alg)
        if kind == HS_SECKEY:
            how = _secret_mac(auth, alg)
            return await authenticator.verify_handle_mac(identity, how, nonce + cnonce, signature)
        raise AuthenticationFailed(f"Unknown authentication type {kind!r}")

    who = await node.throttle.attempt(request.remote or "?", identity, prove)
    node.sessions.authenticate(session, who)
    return session


async def handle_principal(
    request: web.Request, node: Node, header: str, *, required: bool
) -> Principal | None:
    """The caller an ``Authorization: Handle`` header proves: by a signed answer, or by
    naming an authenticated session; None (anonymous) for a session not yet signed into,
    unless ``required``."""
    auth = parse_authorization(header)
    if auth is None:  # malformed: a failed attempt all the same
        return await node.throttle.attempt(request.remote or "?", None, _never)
    if auth.signing:
        return (await sign_in(request, node, auth)).who
    session = node.sessions.get(auth.session_id or "")
    if session is None:
        raise AuthenticationFailed(UNKNOWN_SESSION if auth.session_id else "No sessionId")
    request[CHALLENGE] = session
    if session.who is None and required:
        raise AuthenticationNeeded()
    return session.who


async def _never(identity: AdminRef) -> Principal:  # pragma: no cover - never called
    raise AuthenticationFailed()
