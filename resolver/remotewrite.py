"""Writes to a remote node's HTTP API as a Handle identity that signs in with its key, the
way Handle.Net's clients do: ``POST /api/sessions`` for a nonce, the signature of
``nonce ‖ cnonce`` in ``Authorization: Handle`` on ``PUT /api/sessions/this``, then the
session id on each write (``idnode put|delete --server URL --identity ID --key FILE``). The
requests share one kept-alive connection, so they reach one worker of a node serving with
``--workers N`` (whose sessions are each worker's own).

The key file is a PEM private key as :class:`~registry.signing.keys.SigningKey` reads them
(Ed25519, P-256 or RSA ≥ 2048 bits); its public half must be an HS_PUBKEY value of the
identity's handle (``idnode keys login``).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from registry.model.jsonvalues import value_to_json
from registry.model.values import HS_PUBKEY, Value
from registry.signing.keys import SigningKey

# The Handle name of the algorithm each kind of key signs with (registry.signing.handlesig).
HANDLE_ALG = {"RS256": "SHA256", "ES256": "SHA256", "EdDSA": "EdDSA"}
CNONCE_BYTES = 16


class RemoteError(Exception):
    """The server refused, or answered something that is not the Handle JSON API's."""


def answer_header(session_id: str, nonce: bytes, identity: str, key: SigningKey) -> str:
    """The ``Authorization: Handle`` header that answers ``nonce`` in ``session_id`` as
    ``identity`` (``300:0.NA/88.118.8``), signed with ``key``."""
    cnonce = os.urandom(CNONCE_BYTES)
    signature = key.sign(nonce + cnonce)
    fields = {
        "version": "0",
        "sessionId": session_id,
        "id": quote(identity, safe=""),
        "type": HS_PUBKEY,
        "cnonce": base64.b64encode(cnonce).decode("ascii"),
        "alg": HANDLE_ALG[key.alg],
        "signature": base64.b64encode(signature).decode("ascii"),
    }
    return "Handle " + ", ".join(f'{k}="{v}"' for k, v in fields.items())


async def _json(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        body = await resp.json(content_type=None)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        error = resp.headers.get("WWW-Authenticate", "") if resp.status == 401 else ""
        raise RemoteError(f"HTTP {resp.status} {resp.reason}" + (f": {error}" if error else ""))
    return body


@dataclass
class RemoteNode:
    """A node's HTTP API at ``url``, signed into as ``identity`` with ``key``."""

    http: aiohttp.ClientSession
    url: str
    identity: str
    key: SigningKey
    session_id: str | None = None

    async def sign_in(self) -> str:
        """A session authenticated as the identity; its id."""
        async with self.http.post(f"{self.url}/api/sessions") as resp:
            challenge = await _json(resp)
        if resp.status != 201 or "sessionId" not in challenge:
            raise RemoteError(f"no session: HTTP {resp.status} {challenge}")
        session_id = str(challenge["sessionId"])
        nonce = base64.b64decode(challenge["nonce"])
        header = answer_header(session_id, nonce, self.identity, self.key)
        async with self.http.put(
            f"{self.url}/api/sessions/this", headers={"Authorization": header}
        ) as resp:
            answer = await _json(resp)
        if not answer.get("authenticated"):
            why = answer.get("error") or f"HTTP {resp.status}"
            raise RemoteError(f"signing in as {self.identity} failed: {why}")
        self.session_id = session_id
        return session_id

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f'Handle sessionId="{self.session_id}"'}

    async def _call(
        self, method: str, handle: str, params: list[tuple[str, str]], **kw: Any
    ) -> Any:
        url = f"{self.url}/api/handles/{quote(handle, safe='/')}"
        for attempt in range(2):
            # A 401 on a session we signed into: it expired, or (with several workers) this
            # connection reached a process that does not know it. Sign in again, once.
            if self.session_id is None or attempt:
                await self.sign_in()
            async with self.http.request(
                method, url, params=params, headers=self._auth(), **kw
            ) as r:
                if r.status == 401 and not attempt:
                    continue
                body = await _json(r)
            break
        if body.get("responseCode") != 1:
            message = body.get("message") or ""
            raise RemoteError(f"HTTP {r.status}, responseCode {body.get('responseCode')} {message}")
        return r.status, body

    async def put(
        self, handle: str, values: Sequence[Value], *, add: bool, overwrite: bool
    ) -> tuple[int, dict[str, Any]]:
        """Create or replace ``handle`` (``add``: only these values); (HTTP status, answer)."""
        params = [("overwrite", "true" if overwrite else "false")]
        if add:
            params += [("index", str(v.index)) for v in values]
        body = {"values": [value_to_json(v) for v in values]}
        result: tuple[int, dict[str, Any]] = await self._call("PUT", handle, params, json=body)
        return result

    async def delete(self, handle: str, indexes: Sequence[int]) -> dict[str, Any]:
        """Delete ``handle``, or only its values at ``indexes``."""
        _, body = await self._call("DELETE", handle, [("index", str(i)) for i in indexes])
        result: dict[str, Any] = body
        return result
