"""Signed requests to the top-level node's intake API."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import orjson

from registry.signing.keys import SigningKey
from sync.protocol import sign_request

REQUEST_TIMEOUT = 10.0


class IntakeError(Exception):
    """A request the top-level did not accept. ``transient``: retrying may succeed
    (unreachable, timeout, 5xx, 429); otherwise the request itself was refused."""

    def __init__(self, message: str, *, transient: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status


class IntakeClient:
    """Posts JSON to ``toplevel`` signed with ``key`` as ``app``."""

    def __init__(
        self, session: aiohttp.ClientSession, toplevel: str, app: str, key: SigningKey
    ) -> None:
        self.session = session
        self.base = toplevel.rstrip("/")
        self.app = app
        self.key = key

    async def post(self, path: str, body: Any) -> Any:
        data = orjson.dumps(body)
        auth = sign_request(self.key, self.app, "POST", path, data, int(time.time()))
        headers = {"Authorization": auth, "Content-Type": "application/json"}
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        try:
            async with self.session.post(
                self.base + path, data=data, headers=headers, timeout=timeout
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise IntakeError(
                f"top-level unreachable: {type(exc).__name__}: {exc}", transient=True
            ) from None
        try:
            answer = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            answer = None
        if status == 200 and answer is not None:
            return answer
        reason = answer.get("error") if isinstance(answer, dict) else None
        message = f"top-level answered HTTP {status}" + (f": {reason}" if reason else "")
        transient = status >= 500 or status == 429 or status == 200
        raise IntakeError(message, transient=transient, status=status)
