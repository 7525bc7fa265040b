""":class:`~resolver.native.messages.Message` → bytes.

Layered so that a certified reply can be signed between the steps::

    payload = encode_payload(header, body, digest)          # header + body: what is signed
    message = payload + credential_section(credential)      # the message
    frame = encode_frame(envelope, message)                 # TCP, or one datagram
    datagrams = udp.datagrams(envelope, message)            # UDP, split as the reference does

:func:`encode` does all of it for an unsigned (or already signed) message. Body and message
lengths are computed here, never taken from the dataclasses. Anything the protocol cannot
carry raises :class:`~resolver.native.errors.LocalProtocolError`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from registry.model.values import Value
from registry.model.wire import encode_value
from resolver.native.codes import DIGEST_SIZES, RD, DigestType
from resolver.native.credential import Credential, credential_section
from resolver.native.envelope import Envelope, blind_envelope, encode_envelope
from resolver.native.errors import LocalProtocolError
from resolver.native.header import Header, encode_header
from resolver.native.messages import (
    AddValueRequest,
    Body,
    Challenge,
    ChallengeAnswer,
    CreateHandleRequest,
    CreateHandleResponse,
    DeleteHandleRequest,
    Digest,
    EmptyResponse,
    ErrorResponse,
    ListHandlesRequest,
    ListHandlesResponse,
    Message,
    ModifyValueRequest,
    OpaqueBody,
    RemoveValueRequest,
    ResolutionRequest,
    ResolutionResponse,
    SessionSetupRequest,
    SessionSetupResponse,
    SiteInfoRequest,
    SiteInfoResponse,
    body_types,
)

_I32 = struct.Struct(">i")
_U16 = struct.Struct(">H")
_pack_i32 = _I32.pack
# The reference counts a session setup's u16 key exchange mode as four bytes, so both session
# setup bodies end with two zero bytes [09c-admin-genericbatch-session].
_SESSION_PAD = b"\0\0"
# Flags of a reply built without a parsed request (handle-native.md §10): REC|CA|PO.
BLIND_FLAGS = 0x19000000


def _field(raw: bytes) -> bytes:
    return _pack_i32(len(raw)) + raw


def _text(text: str) -> bytes:
    raw = text.encode()
    return _pack_i32(len(raw)) + raw


def _ints(items: tuple[int, ...]) -> bytes:
    return _pack_i32(len(items)) + struct.pack(f">{len(items)}i", *items)


def _values(values: Iterable[Value]) -> bytes:
    encoded = [encode_value(v) for v in values]
    return _pack_i32(len(encoded)) + b"".join(encoded)


def encode_body(body: Body) -> bytes:
    """The bytes of ``body`` (without a digest prefix)."""
    try:
        return _body_bytes(body)
    except (struct.error, UnicodeEncodeError) as exc:
        raise LocalProtocolError(f"{type(body).__name__}: {exc}") from None


def _body_bytes(body: Body) -> bytes:
    # Most frequent first: a match tries its cases in order.
    match body:
        case ResolutionResponse(handle, values):
            return _text(handle) + _values(values)
        case ErrorResponse(message):
            return _text(message)
        case ResolutionRequest(handle, indexes, types):
            return b"".join(
                (_text(handle), _ints(indexes), _pack_i32(len(types)), *map(_text, types))
            )
        case SiteInfoRequest(handle) | DeleteHandleRequest(handle) | ListHandlesRequest(handle):
            return _text(handle)
        case SiteInfoResponse(site):
            return site
        case Challenge(nonce):
            return _field(nonce)
        case EmptyResponse():
            return b""
        case OpaqueBody(data):
            return data
        case (
            CreateHandleRequest(handle, values)
            | AddValueRequest(handle, values)
            | ModifyValueRequest(handle, values)
        ):
            return _text(handle) + _values(values)
        case CreateHandleResponse(handle):
            return b"" if handle is None else _text(handle)
        case RemoveValueRequest(handle, indexes):
            return _text(handle) + _ints(indexes)
        case ListHandlesResponse(handles):
            return _pack_i32(len(handles)) + b"".join(map(_text, handles))
        case ChallengeAnswer(auth_type, identity, index, answer):
            return b"".join((_text(auth_type), _text(identity), _pack_i32(index), _field(answer)))
        case SessionSetupRequest(mode, timeout, identity, index, key):
            return b"".join(
                (
                    _U16.pack(mode),
                    _pack_i32(timeout),
                    _text(identity),
                    _pack_i32(index),
                    _field(key),
                    _SESSION_PAD,
                )
            )
        case SessionSetupResponse(mode, data):
            return _U16.pack(mode) + _field(data) + _SESSION_PAD
    raise LocalProtocolError(f"not a message body: {body!r}")


def encode_digest(digest: Digest) -> bytes:
    """The RD prefix of a reply body: ``u8 hash type`` + the digest."""
    if digest.hash_type == DigestType.LEGACY_MD5:
        return b"\0" + _field(digest.digest)
    if DIGEST_SIZES.get(digest.hash_type) != len(digest.digest):
        raise LocalProtocolError(
            f"a type {digest.hash_type} digest cannot be {len(digest.digest)} bytes long"
        )
    return bytes((digest.hash_type,)) + digest.digest


def _check(header: Header, body: Body, digest: Digest | None) -> None:
    """Refuse a message the decoders would read differently (the round-trip invariant)."""
    allowed = body_types(header.op_code, header.response_code)
    if type(body) not in allowed or (
        type(body) is OpaqueBody and not body.data and EmptyResponse in allowed
    ):
        raise LocalProtocolError(
            f"{type(body).__name__} under op code {header.op_code},"
            f" response code {header.response_code}"
        )
    if (digest is not None) != (header.response_code != 0 and bool(header.op_flags & RD)):
        raise LocalProtocolError("a reply carries a request digest exactly when RD is set")


def encode_payload(header: Header, body: Body, digest: Digest | None = None) -> bytes:
    """Header and body (with its digest prefix): what digests and credentials cover."""
    _check(header, body, digest)
    raw = encode_body(body)
    if digest is not None:
        raw = encode_digest(digest) + raw
    return encode_header(header, len(raw)) + raw


def encode_message(
    header: Header, body: Body, credential: Credential | None = None, digest: Digest | None = None
) -> bytes:
    """The message: header, body, credential section (no envelope)."""
    return encode_payload(header, body, digest) + credential_section(credential)


def encode_frame(envelope: Envelope, message: bytes) -> bytes:
    """Envelope + message: a TCP frame, or a datagram when the message fits one."""
    return encode_envelope(envelope, len(message)) + message


def encode(msg: Message) -> bytes:
    """One framed message (see :func:`encode_frame`)."""
    return encode_frame(
        msg.envelope, encode_message(msg.header, msg.body, msg.credential, msg.digest)
    )


def blind_error(response_code: int, message: str, expiration: int, op_code: int = 0) -> Message:
    """The reply the reference sends before it could parse a request (handle-native.md §10):
    envelope 2.3 suggesting 2.11, request id -1, op code 0 (or the one given), flags REC|CA|PO,
    site-info serial -1."""
    header = Header(op_code, response_code, BLIND_FLAGS, -1, 0, expiration)
    return Message(blind_envelope(), header, ErrorResponse(message))


def referral_body(handle: str, values: Iterable[Value]) -> OpaqueBody:
    """The body of a service or prefix referral (rc 302/303): the referral handle and its
    values (the HS_SITE values of the service referred to), laid out as a resolution reply's
    body. Decoders keep it opaque (:mod:`.messages`)."""
    try:
        return OpaqueBody(_text(handle) + _values(values))
    except (struct.error, UnicodeEncodeError) as exc:
        raise LocalProtocolError(f"referral: {exc}") from None
