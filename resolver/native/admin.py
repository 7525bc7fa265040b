"""Administration over the native protocol (TCP): challenge-response, then the registry's
writes. Only decoding, mapping to :class:`~registry.service.Registry` calls and building the
replies live here; who may do what is decided by the registry exactly as for the HTTP API, and
the secrets and keys that prove an identity never leave it.

The flow, as the reference runs it (handle-native.md §5, vectors 09a-09e):

1. An admin request (create 100, delete 101, add 102, remove 103, modify 104, list 105) is
   first checked for what the reference refuses before any challenge (a prefix not homed here,
   a create of an existing handle, a modify of missing values: :meth:`Registry.precheck`).
2. Then it is challenged: rc 402, a random nonce, a digest of the request, and a session id
   naming the pending challenge (:mod:`.pending`, bound to the peer's address).
3. The answer (op 200, usually on a new connection) is checked by the registry — HS_SECKEY: the
   MAC its secret gives; HS_PUBKEY: a signature under its key — through the node's failure
   throttle, as HTTP credentials are. An unknown, expired or replayed answer gets rc 405.
4. The original request is carried out as the proven identity and answered under the
   answer's request id, session id 0. A resolution asking for restricted values (PO clear)
   is challenged the same way (:meth:`NativeAdmin.challenge`) and, once answered, resolved
   by the core as that identity. A list of handles comes in messages of
   :data:`HANDLES_PER_MESSAGE`, all but the last flagged CN.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import replace

from registry.audit import Caller
from registry.auth import FailureThrottle
from registry.authz import Principal
from registry.errors import (
    AuthenticationFailed,
    AuthenticationTimeout,
    HandleError,
    InvalidValue,
    NotSupported,
)
from registry.listing import Listings
from registry.model.admin import AdminRef
from registry.model.identifiers import parse
from registry.service import Registry
from resolver.core import Resolver
from resolver.native import adapter
from resolver.native.challenge import (
    decode_public_key_answer,
    decode_secret_key_answer,
    proof_of,
)
from resolver.native.codes import MINT, OVRW
from resolver.native.messages import (
    ADMIN_REQUEST_BODIES,
    AddValueRequest,
    ChallengeAnswer,
    CreateHandleRequest,
    CreateHandleResponse,
    DeleteHandleRequest,
    EmptyResponse,
    ListHandlesRequest,
    ListHandlesResponse,
    Message,
    ModifyValueRequest,
    RemoveValueRequest,
    ResolutionRequest,
)
from resolver.native.pending import Pending, PendingChallenges

NONCE_BYTES = 16
HANDLES_PER_MESSAGE = 50  # as the reference splits a list of handles
HS_SECKEY = "HS_SECKEY"
HS_PUBKEY = "HS_PUBKEY"
_NO_MINT = "Minting a suffix over the native protocol is not supported: use the HTTP API"


class NativeAdmin:
    """The admin side of a node's native listener. ``nonce`` is injectable."""

    def __init__(
        self,
        resolver: Resolver,
        registry: Registry,
        listings: Listings,
        throttle: FailureThrottle,
        pending: PendingChallenges,
        nonce: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.resolver = resolver
        self.registry = registry
        self.listings = listings
        self.throttle = throttle
        self.pending = pending
        self.nonce = nonce

    @staticmethod
    def handles(request: Message) -> bool:
        """Whether ``request`` is one this module answers (an admin op it implements, or a
        challenge answer)."""
        return isinstance(request.body, (*ADMIN_REQUEST_BODIES, ChallengeAnswer))

    async def respond(
        self, request: Message, peer: str, expiration: int, serial: int
    ) -> list[Message]:
        """The replies to an admin request or a challenge answer from ``peer``. Raises a
        :class:`~registry.errors.HandleError` for the caller to answer."""
        if isinstance(request.body, ChallengeAnswer):
            return await self._answered(request, request.body, peer, expiration, serial)
        await self._precheck(request)
        return [self.challenge(request, peer, expiration, serial)]

    def challenge(self, request: Message, peer: str, expiration: int, serial: int) -> Message:
        """rc 402 for ``request`` from ``peer`` (an admin request, or a resolution that asks
        for restricted values), recorded as pending."""
        digest = adapter.challenge_digest(request)
        nonce = self.nonce(NONCE_BYTES)
        session = self.pending.issue(request, peer, nonce, digest.digest)
        return adapter.challenge_reply(request, nonce, session, expiration, serial, digest)

    async def _precheck(self, request: Message) -> None:
        body = request.body
        flags = request.header.op_flags
        match body:
            case CreateHandleRequest(handle):
                if flags & MINT:
                    raise NotSupported(_NO_MINT)
                await self.registry.precheck(parse(handle), absent=not flags & OVRW)
            case DeleteHandleRequest(handle):
                parse(handle)  # the reference challenges even for a handle it lacks
            case AddValueRequest(handle, values):
                await self.registry.precheck(parse(handle))
                if not values:
                    raise InvalidValue("Value list was empty")
            case ModifyValueRequest(handle, values):
                await self.registry.precheck(parse(handle), indexes=[v.index for v in values])
            case RemoveValueRequest(handle):
                await self.registry.precheck(parse(handle))
            case ListHandlesRequest():
                pass
            case _:
                raise NotSupported("Operation not supported over the native protocol")

    async def _answered(
        self, answer: Message, body: ChallengeAnswer, peer: str, expiration: int, serial: int
    ) -> list[Message]:
        pending = self.pending.take(answer.envelope.session_id, peer)
        if pending is None:
            raise AuthenticationTimeout()
        original = pending.request
        try:
            who = await self._authenticate(body, pending, peer)
            replies = await self._perform(original, who, Caller("native", peer), expiration, serial)
        except HandleError as exc:
            # Told as a reply to the original request (its op code), as the reference does.
            replies = [adapter.error_reply(original, exc, expiration, serial)]
        rid = answer.envelope.request_id
        return [
            replace(r, envelope=replace(r.envelope, request_id=rid, session_id=0)) for r in replies
        ]

    async def _authenticate(self, body: ChallengeAnswer, pending: Pending, peer: str) -> Principal:
        authenticator = self.registry.authenticator
        prove: Callable[[AdminRef], Awaitable[Principal]]
        if body.auth_type == HS_SECKEY:
            proof = proof_of(decode_secret_key_answer(body.answer))

            async def prove(identity: AdminRef) -> Principal:
                return await authenticator.verify_secret_mac(identity, proof, pending.message)

        elif body.auth_type == HS_PUBKEY:
            signed = decode_public_key_answer(body.answer)

            async def prove(identity: AdminRef) -> Principal:
                return await authenticator.verify_signature(
                    identity, pending.message, signed.signature, signed.hash_algorithm
                )

        else:
            raise AuthenticationFailed("")
        identity = AdminRef(body.identity_index, body.identity_handle)
        return await self.throttle.attempt(peer, identity, prove, "native")

    async def _perform(
        self, request: Message, who: Principal, caller: Caller, expiration: int, serial: int
    ) -> list[Message]:
        """Carry out ``request`` as ``who``: the registry authorises it."""
        registry = self.registry
        flags = request.header.op_flags
        match request.body:
            case CreateHandleRequest(handle, values):
                await registry.put_record(
                    parse(handle), values, overwrite=bool(flags & OVRW), who=who, caller=caller
                )
                return [
                    adapter.success_reply(request, CreateHandleResponse(handle), expiration, serial)
                ]
            case DeleteHandleRequest(handle):
                await registry.delete_record(parse(handle), who, caller)
            case AddValueRequest(handle, values):
                await registry.put_values(
                    parse(handle), values, overwrite=bool(flags & OVRW), who=who, caller=caller
                )
            case ModifyValueRequest(handle, values):
                await registry.put_values(
                    parse(handle), values, overwrite=True, who=who, caller=caller
                )
            case RemoveValueRequest(handle, indexes):
                await registry.delete_values(parse(handle), indexes, who, caller)
            case ListHandlesRequest(prefix):
                return await self._list(request, prefix, who, expiration, serial)
            case ResolutionRequest():  # restricted values, which the core decides on
                query = replace(adapter.query_of(request), who=who)
                answer = await self.resolver.resolve(query)
                return [adapter.answer_reply(request, answer, expiration, serial)]
            case _:  # never challenged for: _precheck refused it
                raise NotSupported()
        return [adapter.success_reply(request, EmptyResponse(), expiration, serial)]

    async def _list(
        self, request: Message, prefix: str, who: Principal, expiration: int, serial: int
    ) -> list[Message]:
        _, chunks = await self.listings.stream_handles(prefix, who)
        handles: list[str] = []
        async for chunk in chunks:
            handles += chunk
        parts = [
            tuple(handles[i : i + HANDLES_PER_MESSAGE])
            for i in range(0, len(handles), HANDLES_PER_MESSAGE)
        ] or [()]
        last = len(parts) - 1
        return [
            adapter.success_reply(
                request, ListHandlesResponse(part), expiration, serial, more=i < last
            )
            for i, part in enumerate(parts)
        ]
