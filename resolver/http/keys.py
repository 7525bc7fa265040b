"""Typed keys for what the HTTP app and its requests carry."""

from __future__ import annotations

from aiohttp import web

from registry.sessions import Session
from resolver.node import Node

NODE = web.AppKey("node", Node)
ECHO = web.RequestKey("echo", str)  # the handle that error answers echo
# The login session a 401 to this request should challenge in (else a new one).
CHALLENGE = web.RequestKey("challenge", Session)
