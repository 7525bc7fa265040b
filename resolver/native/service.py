"""What the native listener answers: one request in, one framed reply out, for both
transports. It calls the node's resolver and nothing else; the decisions of the protocol are
:mod:`.adapter`'s, the bytes the codec's.

Two paths. ``NativeService.hot`` (:mod:`.hot`) answers the common request — an unfiltered,
unsigned resolution of a record the in-process cache holds — synchronously, with a reply
precomputed for its shape; it returns None for everything else, which the transport decodes
and hands to :meth:`NativeService.respond`. Bad bytes are answered by
:meth:`NativeService.refuse` as the reference answers them, or not at all.

Every answer is counted and timed for ``/metrics`` (transport ``native``): by
:meth:`NativeService.respond`, :meth:`~NativeService.busy` and :meth:`~NativeService.refuse`
here, and by the listener for the hot path's replies (always a successful resolution).

Administration (create, delete, add / remove / modify values, list handles) and the answers
to its challenges go to :class:`~resolver.native.admin.NativeAdmin`; over UDP admin op codes
are refused as the reference refuses them. Answered rc 5 "operation not supported": the other
admin op codes (home / unhome prefixes, replication), verify-challenge (op 201) and sessions
(op 400-402). A resolution asking for restricted values is challenged by the admin side too,
and resolved as the identity that answers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import replace
from time import perf_counter

from registry.errors import (
    RC_PROTOCOL_ERROR,
    RC_SERVER_TOO_BUSY,
    AuthenticationNeeded,
    HandleError,
    NotSupported,
    ServerBusy,
    ServerError,
)
from resolver.core import Resolver
from resolver.metrics import Recorder
from resolver.native import adapter
from resolver.native.admin import NativeAdmin
from resolver.native.certify import Certifier
from resolver.native.codes import (
    ADMIN_OP_CODES,
    CATCH_ALL_MESSAGE,
    CT,
    OpCode,
)
from resolver.native.credential import NO_CREDENTIAL, credential_section, signed_bytes
from resolver.native.errors import RemoteProtocolError
from resolver.native.hot import EXPIRATION, HotAnswers
from resolver.native.messages import Message
from resolver.native.settings import NativeLimits
from resolver.native.writers import blind_error, encode, encode_frame, encode_payload
from resolver.siteinfo import SITE_SERIAL

log = logging.getLogger("idnode.native")

NONCE_BYTES = 16
ADMIN_ON_UDP = "Received admin request on non-admin interface"
_NOT_YET = {
    "admin": "Operation not supported over the native protocol: use the HTTP API",
    "auth": "Verifying challenges is not supported",
    "session": "Sessions are not supported",
}
_AUTH_OPS = frozenset({OpCode.RESPONSE_TO_CHALLENGE, OpCode.VERIFY_CHALLENGE})
_SESSION_OPS = frozenset(
    {OpCode.SESSION_SETUP, OpCode.SESSION_TERMINATE, OpCode.SESSION_EXCHANGE_KEY}
)
_MAX_SESSION_ID = 2**31 - 1
# What /metrics counts each operation as (its ``op`` label; any other op code: "other").
_OP_LABELS: dict[int, str] = {
    OpCode.RESOLUTION: "resolve",
    OpCode.GET_SITE_INFO: "siteinfo",
    **dict.fromkeys(ADMIN_OP_CODES, "admin"),
    **dict.fromkeys(_AUTH_OPS, "auth"),
    **dict.fromkeys(_SESSION_OPS, "session"),
}


def op_label(op_code: int) -> str:
    """The ``op`` label a request of ``op_code`` is counted under."""
    return _OP_LABELS.get(op_code, "other")


class NativeService:
    """Answers native requests for one node. ``site`` is the node's site record,
    ``certifier`` signs certified replies, ``recorder`` counts the answers (the node's
    ``native`` transport), ``executor`` runs the signatures too slow for the event loop;
    ``clock`` and ``nonce`` are injectable."""

    def __init__(
        self,
        resolver: Resolver,
        site: bytes,
        certifier: Certifier,
        limits: NativeLimits,
        *,
        recorder: Recorder,
        executor: Executor | None = None,
        clock: Callable[[], float] = time.time,
        nonce: Callable[[int], bytes] = os.urandom,
        admin: NativeAdmin | None = None,
    ) -> None:
        self.resolver = resolver
        self.admin = admin
        self.site = site
        self.certifier = certifier
        self.limits = limits
        self.recorder = recorder
        self.codec_limits = limits.codec
        self.hot = HotAnswers(resolver, self.codec_limits, clock)
        self.executor = executor
        self.clock = clock
        self.nonce = nonce
        self._signing = 0  # certified replies waiting for the executor
        self._session = 0  # the last session id handed to a pending challenge

    def _expiration(self) -> int:
        return int(self.clock()) + EXPIRATION

    def refuse(self, exc: RemoteProtocolError) -> bytes | None:
        """The reply to bytes that could not be decoded, or None when the reference stays
        silent. Logged as the peer's fault, without a traceback."""
        log.debug("native: refused: %s", exc)
        if not exc.answerable:
            return None
        start = perf_counter()
        code = exc.response_code
        frame = encode(blind_error(code, exc.message or "", self._expiration()))
        self.recorder.observe("other", code, perf_counter() - start)
        return frame

    def busy(self, request: Message) -> bytes:
        """The unsigned "server too busy" reply to ``request`` (the listener's: too many in
        flight)."""
        start = perf_counter()
        frame = self._busy(request)
        self.recorder.observe(
            op_label(request.header.op_code), RC_SERVER_TOO_BUSY, perf_counter() - start
        )
        return frame

    def _busy(self, request: Message) -> bytes:
        reply = adapter.error_reply(request, ServerBusy(), self._expiration(), SITE_SERIAL)
        reply.header = replace(reply.header, op_flags=reply.header.op_flags & ~CT)
        return encode_frame(
            reply.envelope, encode_payload(reply.header, reply.body) + NO_CREDENTIAL
        )

    async def respond(self, request: Message, udp: bool, peer: str = "?") -> bytes | None:
        """The framed reply to a decoded message from ``peer`` (its address), or the replies
        one after the other (a list of handles); None: not answered — a reply sent to the
        server is dropped, so two servers cannot be made to answer each other forever."""
        header = request.header
        if not header.is_request:
            log.debug(
                "native: dropped a reply (op %d, rc %d)", header.op_code, header.response_code
            )
            return None
        start = perf_counter()
        frame, code = await self._respond(request, udp, peer)
        self.recorder.observe(op_label(header.op_code), code, perf_counter() - start)
        return frame

    async def _respond(self, request: Message, udp: bool, peer: str) -> tuple[bytes, int]:
        """The framed reply (or replies) to a request, and the responseCode of the first."""
        op = request.header.op_code
        expiration = self._expiration()
        if udp and op in ADMIN_OP_CODES:
            refusal = blind_error(RC_PROTOCOL_ERROR, ADMIN_ON_UDP, expiration, op_code=op)
            return encode(refusal), RC_PROTOCOL_ERROR
        more: list[Message] = []
        try:
            if op == OpCode.RESOLUTION:
                reply = await self._resolution(request, expiration, peer)
            elif op == OpCode.GET_SITE_INFO:
                reply = adapter.site_info_reply(request, self.site, expiration, SITE_SERIAL)
            elif self.admin is not None and self.admin.handles(request):
                reply, *more = await self.admin.respond(request, peer, expiration, SITE_SERIAL)
            elif op in _AUTH_OPS:
                raise NotSupported(_NOT_YET["auth"])
            elif op in _SESSION_OPS:
                raise NotSupported(_NOT_YET["session"])
            else:
                raise NotSupported(_NOT_YET["admin"])
        except HandleError as exc:
            reply = adapter.error_reply(request, exc, expiration, SITE_SERIAL)
        except Exception:
            log.exception("native: op %d failed", op)
            reply = adapter.error_reply(
                request, ServerError(CATCH_ALL_MESSAGE), expiration, SITE_SERIAL
            )
        frame, code = await self._finish(request, reply)
        for next_reply in more:
            frame += (await self._finish(request, next_reply))[0]
        return frame, code

    async def _resolution(self, request: Message, expiration: int, peer: str) -> Message:
        try:
            answer = await self.resolver.resolve(adapter.query_of(request))
        except AuthenticationNeeded:
            if self.admin is not None:  # a challenge that can be answered
                return self.admin.challenge(request, peer, expiration, SITE_SERIAL)
            return adapter.challenge_reply(
                request, self.nonce(NONCE_BYTES), self._next_session(), expiration, SITE_SERIAL
            )
        return adapter.answer_reply(request, answer, expiration, SITE_SERIAL)

    def _next_session(self) -> int:
        self._session = self._session % _MAX_SESSION_ID + 1
        return self._session

    async def _finish(self, request: Message, reply: Message) -> tuple[bytes, int]:
        """Encode ``reply``, signed when its CT flag says so; and its responseCode (too
        busy, when too many replies wait to be signed)."""
        code = reply.header.response_code
        payload = encode_payload(reply.header, reply.body, reply.digest)
        if not reply.header.op_flags & CT:
            return encode_frame(reply.envelope, payload + NO_CREDENTIAL), code
        certifier = self.certifier
        data = signed_bytes(reply.envelope, 0, payload)
        if not certifier.blocking:
            credential = certifier.credential(data)
        elif self._signing >= self.limits.max_signing_queue:
            return self._busy(request), RC_SERVER_TOO_BUSY
        else:
            self._signing += 1
            try:
                loop = asyncio.get_running_loop()
                credential = await loop.run_in_executor(self.executor, certifier.credential, data)
            finally:
                self._signing -= 1
        return encode_frame(reply.envelope, payload + credential_section(credential)), code
