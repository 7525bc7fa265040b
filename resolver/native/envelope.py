"""The 20-byte message envelope (handle-native.md §2) and version negotiation.

``u8 major, u8 minor, u8 flags|suggested major, u8 suggested minor, i32 session id,
i32 request id, i32 message id, i32 message length``. The third octet holds the CP/EC/TC bits
high and the suggested major version in its low two bits; :class:`Envelope` keeps them apart.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from resolver.native.codes import ENV_CP, ENV_EC, ENV_TC, VERSION, VERSION_NO_SITE_INFO
from resolver.native.errors import InvalidLength, LimitExceeded, LocalProtocolError, MessageTooShort
from resolver.native.limits import DEFAULT_LIMITS, Limits

ENVELOPE = struct.Struct(">BBBBiiii")
ENVELOPE_SIZE = ENVELOPE.size  # 20
HEADER_SIZE = 24  # the smallest message: a header with an empty body
_SUGGESTED_MAJOR_MASK = 0x03


@dataclass(slots=True)
class Envelope:
    """One envelope. ``message_id`` (fragment number) and ``message_length`` are framing:
    decoders fill them in, encoders compute them and ignore what is here.

    ``flags`` holds the third octet without the suggested major (CP/EC/TC and any unused bits,
    kept so that decoding loses nothing). Treat instances as immutable.
    """

    major: int
    minor: int
    suggested_major: int
    suggested_minor: int
    flags: int = 0
    session_id: int = 0
    request_id: int = 0
    message_id: int = 0
    message_length: int = 0

    @property
    def truncated(self) -> bool:
        """TC: one fragment of a message split over several datagrams."""
        return bool(self.flags & ENV_TC)

    @property
    def compressed(self) -> bool:
        return bool(self.flags & ENV_CP)

    @property
    def encrypted(self) -> bool:
        return bool(self.flags & ENV_EC)


def decode_envelope(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Envelope:
    """The envelope at the start of ``data``; checks the message length against ``limits``."""
    if len(data) < ENVELOPE_SIZE:
        raise MessageTooShort(f"{len(data)} bytes cannot hold a 20-byte envelope")
    major, minor, flags, sminor, session, request, mid, length = ENVELOPE.unpack_from(data)
    check_message_length(length, limits)
    return Envelope(major, minor, flags & 3, sminor, flags & 0xFC, session, request, mid, length)


def check_message_length(length: int, limits: Limits) -> None:
    """Refuse a message length no message can have, before any byte of it is awaited."""
    if length < HEADER_SIZE:
        if length < 0:
            raise InvalidLength(f"negative message length {length}")
        raise MessageTooShort(f"message length {length} is under the 24-byte header")
    if length > limits.max_message_length:
        raise LimitExceeded("message length", length, limits.max_message_length)


def encode_envelope(env: Envelope, message_length: int, message_id: int = 0, tc: int = 0) -> bytes:
    """The envelope of a message of ``message_length`` bytes (fragment ``message_id``); ``tc``
    is OR-ed into the flags."""
    try:
        return ENVELOPE.pack(
            env.major,
            env.minor,
            (env.flags & 0xFC) | tc | (env.suggested_major & _SUGGESTED_MAJOR_MASK),
            env.suggested_minor,
            env.session_id,
            env.request_id,
            message_id,
            message_length,
        )
    except struct.error as exc:
        raise LocalProtocolError(f"envelope field out of range: {exc}") from None


def reply_version(request: Envelope) -> tuple[int, int]:
    """The version the reference answers ``request`` at: the suggested version (a suggested
    major of 0 means the message's own), capped at the version idnode speaks."""
    if request.suggested_major:
        version = (request.suggested_major, request.suggested_minor)
    else:
        version = (request.major, request.minor)
    return min(version, VERSION)


def reply_envelope(request: Envelope, session_id: int | None = None) -> Envelope:
    """The envelope of the reply to ``request``: negotiated version, suggesting idnode's own,
    the request's request id and (unless given) session id.

    The reference builds its reply envelope from the request's and so keeps TC: a reply to a
    multi-datagram request is marked truncated even when it fits in one datagram
    ``[07b-multipacket-request-udp]``. Clients accept both; idnode answers the same way.
    """
    major, minor = reply_version(request)
    return Envelope(
        major,
        minor,
        VERSION[0],
        VERSION[1],
        request.flags & ENV_TC,
        request.session_id if session_id is None else session_id,
        request.request_id,
    )


def blind_envelope() -> Envelope:
    """The envelope of a reply built before the request could be parsed (handle-native.md §10,
    marked †): 2.3 suggesting 2.11, no session, request id -1."""
    return Envelope(*VERSION_NO_SITE_INFO, *VERSION, 0, 0, -1)
