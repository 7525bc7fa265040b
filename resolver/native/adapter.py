"""Native messages ⇄ the resolution core: a decoded request becomes a
:class:`~resolver.core.Query`, an :class:`~resolver.core.Answer` or a
:class:`~registry.errors.HandleError` becomes the reply the reference sends. Pure: no I/O,
clock or randomness (the caller passes the expiration and the nonce).

The reference's rules, as captured in tests/vectors/handle-native:

* Reply flags are the request's plus AT; CT stays only when the reply is signed, RD is set
  exactly when the reply carries a request digest (a challenge). ENC is dropped: idnode has no
  sessions, so it never encrypts.
* The envelope answers at the negotiated version (:func:`~resolver.native.reply_envelope`);
  the header carries the node's site-info serial.
* PO set means public values only (``Query.public_only=True``); PO clear asks for restricted
  values too, which an anonymous client is challenged for (rc 402) by the core's
  ``AuthenticationNeeded``.
* REC clear asks to be referred rather than have the node resolve at another node
  (``Query.recursion=False``); DNRF refuses referrals (``Query.referrals=False``: rc 301
  instead). Both matter only for identifiers of other nodes.
* Error replies echo the op code; codes 100, 101, 200 and 403 carry an empty message, every
  other code its error's text (301: "That prefix doesn't live here").
"""

from __future__ import annotations

from dataclasses import replace

from registry.errors import (
    NO_VALUES,
    RC_AUTHENTICATION_FAILED,
    RC_HANDLE_ALREADY_EXISTS,
    RC_HANDLE_NOT_FOUND,
    RC_VALUES_NOT_FOUND,
    SUCCESS,
    HandleError,
)
from resolver.core import Answer, Query
from resolver.native.challenge import request_digest
from resolver.native.codes import AT, CN, CT, DNRF, PO, RD, REC, DigestType, OpFlag, ResponseCode
from resolver.native.envelope import reply_envelope, reply_version
from resolver.native.header import Header
from resolver.native.messages import (
    Body,
    Challenge,
    Digest,
    ErrorResponse,
    Message,
    ResolutionRequest,
    ResolutionResponse,
    SiteInfoResponse,
)
from resolver.native.writers import referral_body

_SILENT_CODES = frozenset(
    {RC_HANDLE_NOT_FOUND, RC_HANDLE_ALREADY_EXISTS, RC_VALUES_NOT_FOUND, RC_AUTHENTICATION_FAILED}
)
# Request flags a reply does not copy: set by the reply's own content (CT, RD) or meaningless
# without sessions (ENC).
NOT_COPIED = CT | RD | int(OpFlag.ENC)
# 2.6's signed-bytes prefix is broken in the reference (resolver.native.credential).
_UNSIGNABLE_VERSION = (2, 6)


def query_of(request: Message) -> Query:
    """The core's query for a resolution request."""
    body = request.body
    assert isinstance(body, ResolutionRequest)
    header = request.header
    return Query(
        body.handle,
        body.indexes,
        body.types,
        public_only=bool(header.op_flags & PO),
        hops=header.recursion_count,
        recursion=bool(header.op_flags & REC),
        referrals=not header.op_flags & DNRF,
    )


def certified(request: Message) -> bool:
    """Whether the reply to ``request`` is to be signed: the client set CT (and the
    negotiated version has a usable signing prefix)."""
    return bool(request.header.op_flags & CT) and (
        reply_version(request.envelope) != _UNSIGNABLE_VERSION
    )


def reply_flags(request_flags: int, signed: bool, digest: bool = False) -> int:
    """The reply's op flags (see the module docstring)."""
    flags = (request_flags & ~NOT_COPIED) | AT
    if signed:
        flags |= CT
    if digest:
        flags |= RD
    return flags


def _header(
    request: Message, response_code: int, expiration: int, serial: int, *, digest: bool = False
) -> Header:
    flags = reply_flags(request.header.op_flags, certified(request), digest)
    return Header(request.header.op_code, response_code, flags, serial, 0, expiration)


def answer_reply(request: Message, answer: Answer, expiration: int, serial: int) -> Message:
    """The reply to a resolution ``request`` the core answered with ``answer``: its values,
    rc 200 when none may be shown, or a service referral (rc 302: the referral handle and its
    HS_SITE values) when the core refers the client to another node."""
    body = request.body
    assert isinstance(body, ResolutionRequest)
    envelope = reply_envelope(request.envelope)
    outcome = answer.outcome  # the one table's row (registry.errors)
    header = _header(request, outcome.native, expiration, serial)
    if answer.referral is not None:
        return Message(envelope, header, referral_body(answer.referral, answer.values))
    if outcome is NO_VALUES:
        return Message(envelope, header, ErrorResponse(""))
    return Message(envelope, header, ResolutionResponse(body.handle, answer.values))


def site_info_reply(request: Message, site: bytes, expiration: int, serial: int) -> Message:
    """The reply to get-site-info: the node's site record."""
    header = _header(request, SUCCESS.native, expiration, serial)
    return Message(reply_envelope(request.envelope), header, SiteInfoResponse(site))


def error_text(exc: HandleError) -> str:
    """The message an error reply carries (empty for the codes the reference leaves bare)."""
    if exc.response_code in _SILENT_CODES:
        return ""
    return exc.message or ""


def error_reply(request: Message, exc: HandleError, expiration: int, serial: int) -> Message:
    """The reply to ``request`` that failed with ``exc`` (its response code and text)."""
    header = _header(request, exc.outcome.native, expiration, serial)
    return Message(reply_envelope(request.envelope), header, ErrorResponse(error_text(exc)))


def success_reply(
    request: Message, body: Body, expiration: int, serial: int, *, more: bool = False
) -> Message:
    """rc 1 to an admin ``request``, carrying ``body``; ``more``: another message follows
    (CN, a list of handles in several messages)."""
    header = _header(request, SUCCESS.native, expiration, serial)
    if more:
        header = replace(header, op_flags=header.op_flags | CN)
    return Message(reply_envelope(request.envelope), header, body)


def challenge_digest(request: Message) -> Digest:
    """The digest of ``request``'s header and body a challenge carries (SHA-256 from 2.7, as
    the reference's 2.7+ clients expect; SHA-1 before)."""
    hash_type = DigestType.SHA256 if reply_version(request.envelope) >= (2, 7) else DigestType.SHA1
    return request_digest(request.signed, hash_type)


def challenge_reply(
    request: Message,
    nonce: bytes,
    session_id: int,
    expiration: int,
    serial: int,
    digest: Digest | None = None,
) -> Message:
    """rc 402: the challenge to authenticate for ``request``, naming the pending challenge
    ``session_id``; the body starts with the request's :func:`challenge_digest` (``digest``,
    when the caller computed it already)."""
    header = _header(request, ResponseCode.AUTHENTICATION_NEEDED, expiration, serial, digest=True)
    return Message(
        reply_envelope(request.envelope, session_id),
        header,
        Challenge(nonce),
        digest=digest or challenge_digest(request),
    )
