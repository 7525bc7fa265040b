"""Typed keys for what the HTTP app and its requests carry."""

from __future__ import annotations

from aiohttp import web

from resolver.node import Node
from resolver.verification import LocalVerifier

NODE = web.AppKey("node", Node)
ECHO = web.RequestKey("echo", str)  # the handle that error answers echo
VERIFIER = web.AppKey("verifier", LocalVerifier)  # signature status on human pages
