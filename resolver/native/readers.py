"""Bytes → :class:`~resolver.native.messages.Message`.

:func:`decode` takes one framed message (envelope + message: a TCP frame or a whole
datagram); :func:`decode_message` the message bytes after an envelope decoded elsewhere (a
reassembled UDP message). Every length a peer chooses is checked against the bytes present and
against :class:`~resolver.native.limits.Limits` before it is used, so no input makes the decoder
allocate or loop beyond the size of its input; every failure is a
:class:`~resolver.native.errors.RemoteProtocolError`.

Bytes a body has after the fields of its layout are ignored, as the reference ignores them
(session setup bodies always have two).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from registry.errors import InvalidValue
from registry.model.values import Value
from registry.model.wire import decode_value
from resolver.native.codes import DIGEST_SIZES, KNOWN_OP_CODES, RD, DigestType, OpCode, ResponseCode
from resolver.native.credential import decode_credential
from resolver.native.envelope import (
    ENVELOPE,
    ENVELOPE_SIZE,
    HEADER_SIZE,
    Envelope,
    check_message_length,
)
from resolver.native.errors import (
    InvalidLength,
    LimitExceeded,
    MalformedBody,
    MessageTooShort,
    UnknownOpCode,
)
from resolver.native.header import HEADER, Header
from resolver.native.limits import DEFAULT_LIMITS, Limits
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
)

_I32 = struct.Struct(">i")
_U16 = struct.Struct(">H")
_unpack_i32 = _I32.unpack_from
_unpack_two = struct.Struct(">ii").unpack_from


def decode(frame: bytes, limits: Limits = DEFAULT_LIMITS) -> Message:
    """Decode one framed message: a 20-byte envelope and the message.

    A datagram may hold fewer bytes than its envelope's message length: the reference parses
    such a datagram anyway (from a zero-filled buffer), so the message is decoded from the bytes
    present, and all its fields must lie within them.
    """
    if len(frame) < ENVELOPE_SIZE:
        raise MessageTooShort(f"{len(frame)} bytes cannot hold a 20-byte envelope")
    major, minor, flags, sminor, session, request, mid, length = ENVELOPE.unpack_from(frame)
    check_message_length(length, limits)
    env = Envelope(major, minor, flags & 3, sminor, flags & 0xFC, session, request, mid, length)
    return _decode(env, frame, ENVELOPE_SIZE, min(len(frame), ENVELOPE_SIZE + length), limits)


def decode_message(envelope: Envelope, message: bytes, limits: Limits = DEFAULT_LIMITS) -> Message:
    """Decode the message bytes that follow ``envelope`` (e.g. a reassembled UDP message)."""
    check_message_length(len(message), limits)
    return _decode(envelope, message, 0, len(message), limits)


def _decode(env: Envelope, buf: bytes, start: int, end: int, limits: Limits) -> Message:
    if end - start < HEADER_SIZE:
        raise MessageTooShort(f"{end - start} message bytes cannot hold the 24-byte header")
    op, rc, op_flags, serial, recursion, _, expiration, body_length = HEADER.unpack_from(buf, start)
    off = start + HEADER_SIZE
    body_end = off + body_length
    if body_length < 0 or body_end > end:
        raise InvalidLength(
            f"body length {body_length} runs past the end of the message"
            f" ({end - off} bytes after the header)"
        )
    header = Header(op, rc, op_flags, serial, recursion, expiration)
    digest = None
    body: Body
    if rc == 0:
        reader = _REQUESTS.get(op)
        if reader is not None:
            body = reader(buf, off, body_end, limits)
        elif op in KNOWN_OP_CODES:
            body = OpaqueBody(buf[off:body_end])
        else:
            raise UnknownOpCode(op)
    else:
        if op_flags & RD:
            digest, off = _digest(buf, off, body_end)
        body = _response(op, rc, buf, off, body_end, limits)
    credential = None
    rest = end - body_end
    if rest:
        if rest < 4:
            raise InvalidLength(f"{rest} bytes after the body cannot hold a credential length")
        (cred_length,) = _unpack_i32(buf, body_end)
        if cred_length < 0 or cred_length != rest - 4:
            raise InvalidLength(
                f"credential length {cred_length} disagrees with the {rest - 4} bytes left"
            )
        if cred_length:
            credential = decode_credential(buf, body_end + 4, end)
    # An absent credential length (the message ends with the body) is accepted, as the
    # reference does [08-malformed-udp-no-credential-length].
    return Message(env, header, body, credential, digest, buf[start:body_end])


# --- fields -----------------------------------------------------------------------------------


def _int(buf: bytes, off: int, end: int, what: str) -> int:
    if off + 4 > end:
        raise MalformedBody(f"{what}: body ends at offset {end}, before it")
    (n,) = _unpack_i32(buf, off)
    return int(n)


def _bytes(buf: bytes, off: int, end: int, what: str) -> tuple[bytes, int]:
    if off + 4 > end:
        raise MalformedBody(f"{what}: body ends before its length")
    (n,) = _unpack_i32(buf, off)
    off += 4
    if n < 0 or n > end - off:
        raise MalformedBody(f"{what}: length {n} runs past the body ({end - off} bytes left)")
    return buf[off : off + n], off + n


def _str(buf: bytes, off: int, end: int, what: str) -> tuple[str, int]:
    raw, off = _bytes(buf, off, end, what)
    try:
        return raw.decode(), off
    except UnicodeDecodeError:
        raise MalformedBody(f"{what} is not UTF-8") from None


def _handle(
    buf: bytes, off: int, end: int, limits: Limits, what: str = "handle"
) -> tuple[str, int]:
    # _str() inlined: a handle is read on every request.
    if off + 4 > end:
        raise MalformedBody(f"{what}: body ends before its length")
    (n,) = _unpack_i32(buf, off)
    off += 4
    if n < 0 or n > end - off:
        if n > limits.max_handle_length:
            raise LimitExceeded(f"{what} length", n, limits.max_handle_length)
        raise MalformedBody(f"{what}: length {n} runs past the body ({end - off} bytes left)")
    if n > limits.max_handle_length:
        raise LimitExceeded(f"{what} length", n, limits.max_handle_length)
    try:
        return buf[off : off + n].decode(), off + n
    except UnicodeDecodeError:
        raise MalformedBody(f"{what} is not UTF-8") from None


def _count(buf: bytes, off: int, end: int, what: str, limit: int, min_size: int) -> int:
    """A list count, at most ``limit`` and at most what the rest of the body can hold."""
    n = _int(buf, off, end, f"{what} count")
    if n < 0 or n * min_size > end - off - 4:
        raise MalformedBody(f"{what} count {n} does not fit the body")
    if n > limit:
        raise LimitExceeded(f"{what} count", n, limit)
    return n


def _indexes(buf: bytes, off: int, end: int, limit: int) -> tuple[tuple[int, ...], int]:
    n = _count(buf, off, end, "index list", limit, 4)
    off += 4
    if not n:
        return (), off
    return struct.unpack_from(f">{n}i", buf, off), off + 4 * n


def _values(buf: bytes, off: int, end: int, limits: Limits) -> tuple[tuple[Value, ...], int]:
    n = _count(buf, off, end, "value list", limits.max_values, 26)  # 26: the smallest value
    off += 4
    values = []
    try:
        for _ in range(n):
            value, off = decode_value(buf, off)
            values.append(value)
    except InvalidValue as exc:
        raise MalformedBody(f"value list: {exc.message}") from None
    if off > end:
        raise MalformedBody("value list runs past the body")
    return tuple(values), off


def _digest(buf: bytes, off: int, end: int) -> tuple[Digest, int]:
    if off >= end:
        raise MalformedBody("request digest: body ends before its hash type")
    hash_type = buf[off]
    off += 1
    if hash_type == DigestType.LEGACY_MD5:
        raw, off = _bytes(buf, off, end, "request digest")
        return Digest(hash_type, raw), off
    size = DIGEST_SIZES.get(hash_type)
    if size is None:
        raise MalformedBody(f"request digest: unknown hash type {hash_type}")
    if off + size > end:
        raise MalformedBody("request digest runs past the body")
    return Digest(hash_type, buf[off : off + size]), off + size


# --- request bodies ---------------------------------------------------------------------------


def _resolution(buf: bytes, off: int, end: int, limits: Limits) -> ResolutionRequest:
    handle, off = _handle(buf, off, end, limits)
    if off + 8 <= end and _unpack_two(buf, off) == (0, 0):
        return ResolutionRequest(handle)  # the usual request: no index or type filter
    indexes, off = _indexes(buf, off, end, limits.max_indexes)
    n = _count(buf, off, end, "type list", limits.max_types, 4)
    off += 4
    types = []
    for _ in range(n):
        vtype, off = _str(buf, off, end, "type")
        types.append(vtype)
    return ResolutionRequest(handle, indexes, tuple(types))


def _site_info(buf: bytes, off: int, end: int, limits: Limits) -> SiteInfoRequest:
    return SiteInfoRequest(_handle(buf, off, end, limits)[0])


def _handle_and_values(
    buf: bytes, off: int, end: int, limits: Limits
) -> tuple[str, tuple[Value, ...]]:
    handle, off = _handle(buf, off, end, limits)
    values, off = _values(buf, off, end, limits)
    return handle, values


def _create(buf: bytes, off: int, end: int, limits: Limits) -> CreateHandleRequest:
    return CreateHandleRequest(*_handle_and_values(buf, off, end, limits))


def _add(buf: bytes, off: int, end: int, limits: Limits) -> AddValueRequest:
    return AddValueRequest(*_handle_and_values(buf, off, end, limits))


def _modify(buf: bytes, off: int, end: int, limits: Limits) -> ModifyValueRequest:
    return ModifyValueRequest(*_handle_and_values(buf, off, end, limits))


def _delete(buf: bytes, off: int, end: int, limits: Limits) -> DeleteHandleRequest:
    return DeleteHandleRequest(_handle(buf, off, end, limits)[0])


def _remove(buf: bytes, off: int, end: int, limits: Limits) -> RemoveValueRequest:
    handle, off = _handle(buf, off, end, limits)
    return RemoveValueRequest(handle, _indexes(buf, off, end, limits.max_values)[0])


def _list(buf: bytes, off: int, end: int, limits: Limits) -> ListHandlesRequest:
    return ListHandlesRequest(_handle(buf, off, end, limits, "prefix handle")[0])


def _answer(buf: bytes, off: int, end: int, limits: Limits) -> ChallengeAnswer:
    auth_type, off = _str(buf, off, end, "auth type")
    identity, off = _handle(buf, off, end, limits, "identity handle")
    index = _int(buf, off, end, "identity index")
    answer, off = _bytes(buf, off + 4, end, "answer")
    return ChallengeAnswer(auth_type, identity, index, answer)


def _session_setup(buf: bytes, off: int, end: int, limits: Limits) -> SessionSetupRequest:
    if off + 6 > end:
        raise MalformedBody("session setup: body ends before the timeout")
    (mode,) = _U16.unpack_from(buf, off)
    timeout = _int(buf, off + 2, end, "timeout")
    identity, off = _handle(buf, off + 6, end, limits, "identity handle")
    index = _int(buf, off, end, "identity index")
    key, off = _bytes(buf, off + 4, end, "exchange key")
    return SessionSetupRequest(mode, timeout, identity, index, key)


_Reader = Callable[[bytes, int, int, Limits], Body]

_REQUESTS: dict[int, _Reader] = {
    OpCode.RESOLUTION: _resolution,
    OpCode.GET_SITE_INFO: _site_info,
    OpCode.CREATE_HANDLE: _create,
    OpCode.DELETE_HANDLE: _delete,
    OpCode.ADD_VALUE: _add,
    OpCode.REMOVE_VALUE: _remove,
    OpCode.MODIFY_VALUE: _modify,
    OpCode.LIST_HANDLES: _list,
    OpCode.RESPONSE_TO_CHALLENGE: _answer,
    OpCode.SESSION_SETUP: _session_setup,
}

# --- reply bodies -----------------------------------------------------------------------------


def _resolution_reply(buf: bytes, off: int, end: int, limits: Limits) -> ResolutionResponse:
    return ResolutionResponse(*_handle_and_values(buf, off, end, limits))


def _site_info_reply(buf: bytes, off: int, end: int, limits: Limits) -> SiteInfoResponse:
    return SiteInfoResponse(buf[off:end])


def _create_reply(buf: bytes, off: int, end: int, limits: Limits) -> CreateHandleResponse:
    if off == end:
        return CreateHandleResponse(None)
    return CreateHandleResponse(_handle(buf, off, end, limits)[0])


def _list_reply(buf: bytes, off: int, end: int, limits: Limits) -> ListHandlesResponse:
    n = _count(buf, off, end, "handle list", 2**31 - 1, 4)  # bounded by the message size
    off += 4
    handles = []
    for _ in range(n):
        handle, off = _handle(buf, off, end, limits)
        handles.append(handle)
    return ListHandlesResponse(tuple(handles))


def _session_setup_reply(buf: bytes, off: int, end: int, limits: Limits) -> SessionSetupResponse:
    if off + 2 > end:
        raise MalformedBody("session setup reply: body ends before the key exchange mode")
    (mode,) = _U16.unpack_from(buf, off)
    data, off = _bytes(buf, off + 2, end, "session data")
    return SessionSetupResponse(mode, data)


_SUCCESSES: dict[int, _Reader] = {
    OpCode.RESOLUTION: _resolution_reply,
    OpCode.GET_SITE_INFO: _site_info_reply,
    OpCode.CREATE_HANDLE: _create_reply,
    OpCode.LIST_HANDLES: _list_reply,
    OpCode.SESSION_SETUP: _session_setup_reply,
}


def _response(op: int, rc: int, buf: bytes, off: int, end: int, limits: Limits) -> Body:
    if rc == ResponseCode.SUCCESS:
        reader = _SUCCESSES.get(op)
        if reader is not None:
            return reader(buf, off, end, limits)
        if op not in KNOWN_OP_CODES:
            raise UnknownOpCode(op)
        return EmptyResponse() if off == end else OpaqueBody(buf[off:end])
    if rc == ResponseCode.AUTHENTICATION_NEEDED:
        return Challenge(_bytes(buf, off, end, "nonce")[0])
    if rc in (ResponseCode.SERVICE_REFERRAL, ResponseCode.PREFIX_REFERRAL):
        return OpaqueBody(buf[off:end])
    return ErrorResponse(_str(buf, off, end, "error message")[0])
