"""The raw entry points of the hot path: the most common request read without building
dataclasses, and its reply written around a value list encoded beforehand.

Nearly every request a busy node sees is the same shape: a whole resolution request of one
handle with no index or type filter and no credential. :func:`peek_resolution` recognises
exactly that shape with one ``unpack`` and returns the few fields a reply needs; anything else
(fragments, filters, credentials, odd lengths, other op codes, and every malformed message)
gives None and goes through :func:`~resolver.native.readers.decode`, which also decides what
to answer to bad input. So the fast reader needs no error handling of its own: when it
accepts a frame, ``decode`` reads the same fields from it (tests/test_native_server.py checks
this on random frames).

:func:`resolution_frame` writes the reply: envelope, header, the handle field exactly as the
request carried it, the value list (``i32 count`` + values, e.g. a cache entry's encoding,
:func:`registry.model.wire.encode_values`) and an empty credential.
"""

from __future__ import annotations

import struct

from resolver.native.codes import CT, VERSION, OpCode, ResponseCode
from resolver.native.credential import NO_CREDENTIAL
from resolver.native.envelope import ENVELOPE_SIZE, HEADER_SIZE
from resolver.native.limits import DEFAULT_LIMITS, Limits

# Envelope, header and the handle's length: the fixed part of a resolution request.
_REQUEST = struct.Struct(">BBBBiiiiiiIhBBiii")
# What follows the handle: index count, type count, credential length (all 0).
_TAIL = struct.Struct(">iii")
_TAIL_SIZE = _TAIL.size
_FIXED = _REQUEST.size + _TAIL_SIZE  # a request with an empty handle: 60 bytes
# Envelope and header of a reply.
_REPLY = struct.Struct(">BBBBiiiiiiIhBBii")
_OVERHEAD = HEADER_SIZE + len(NO_CREDENTIAL)  # message bytes besides the body
_RESOLUTION = int(OpCode.RESOLUTION)
_SUCCESS = int(ResponseCode.SUCCESS)
_VERSION_MAJOR, _VERSION_MINOR = VERSION


def peek_resolution(
    frame: bytes, limits: Limits = DEFAULT_LIMITS
) -> tuple[int, int, int, int, int, str, int] | None:
    """For an unfiltered, unsigned, whole resolution request: ``(major, minor, session id,
    request id, op flags, handle, handle end)`` with the version the reply is to carry (the
    negotiated one) and the offset after the handle; None for any other frame."""
    n = len(frame) - _FIXED
    if n < 0 or n > limits.max_handle_length:
        return None
    (
        major,
        minor,
        flags,
        suggested_minor,
        session,
        request_id,
        _message_id,
        length,
        op,
        rc,
        op_flags,
        _serial,
        _recursion,
        _reserved,
        _expiration,
        body_length,
        handle_length,
    ) = _REQUEST.unpack_from(frame)
    if (
        op != _RESOLUTION
        or rc
        or flags & 0xFC  # compressed, encrypted or a fragment
        or handle_length != n
        or length != n + 40
        or body_length != n + 12
        or length > limits.max_message_length
        or op_flags & CT
    ):
        return None
    end = _REQUEST.size + n
    if _TAIL.unpack_from(frame, end) != (0, 0, 0):
        return None
    try:
        handle = frame[_REQUEST.size : end].decode()
    except UnicodeDecodeError:
        return None
    suggested_major = flags & 3
    if suggested_major:
        major, minor = suggested_major, suggested_minor
    if (major, minor) > VERSION:
        major, minor = VERSION
    return major, minor, session, request_id, op_flags, handle, end


def resolution_frame(
    frame: bytes,
    peeked: tuple[int, int, int, int, int, str, int],
    op_flags: int,
    serial: int,
    expiration: int,
    values: bytes,
) -> bytes:
    """The reply (envelope + message) to the request ``frame`` that :func:`peek_resolution`
    read as ``peeked``: rc 1 with ``values`` (an encoded value list), echoing the handle."""
    major, minor, session, request_id, _, _, end = peeked
    handle_field = frame[ENVELOPE_SIZE + HEADER_SIZE : end]
    body_length = len(handle_field) + len(values)
    head = _REPLY.pack(
        major,
        minor,
        _VERSION_MAJOR,
        _VERSION_MINOR,
        session,
        request_id,
        0,
        body_length + _OVERHEAD,
        _RESOLUTION,
        _SUCCESS,
        op_flags,
        serial,
        0,
        0,
        expiration,
        body_length,
    )
    return b"".join((head, handle_field, values, NO_CREDENTIAL))
