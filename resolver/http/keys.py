"""Typed keys for what the HTTP app and its requests carry."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from registry.sessions import Session
from resolver.node import Node
from resolver.verification import LocalVerifier

NODE = web.AppKey("node", Node)
ECHO = web.RequestKey("echo", str)  # the handle that error answers echo
# The login session a 401 to this request should challenge in (else a new one).
CHALLENGE = web.RequestKey("challenge", Session)
# The node's root public key (JWK), loaded once at start-up: /api/site publishes it.
ROOT_JWK = web.AppKey("root_jwk", dict[str, Any])
VERIFIER = web.AppKey("verifier", LocalVerifier)  # signature status on human pages
