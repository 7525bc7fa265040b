"""The 24-byte message header (handle-native.md §3).

``i32 op code, i32 response code, u32 op flags, i16 site-info serial, u8 recursion count,
u8 reserved, i32 expiration, i32 body length``. The body length is framing: the decoder checks
it against the message and drops it, the encoder computes it. The reserved octet is read as
ignored and written as 0.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from resolver.native.errors import LocalProtocolError

HEADER = struct.Struct(">iiIhBBii")


@dataclass(slots=True)
class Header:
    """One header. ``op_code``/``response_code`` compare equal to
    :class:`~resolver.native.codes.OpCode`/``ResponseCode`` members; ``op_flags`` is the bit
    set of :class:`~resolver.native.codes.OpFlag`. Treat instances as immutable."""

    op_code: int
    response_code: int = 0
    op_flags: int = 0
    site_info_serial: int = -1
    recursion_count: int = 0
    expiration: int = 0

    @property
    def is_request(self) -> bool:
        """Requests carry response code 0."""
        return self.response_code == 0


def encode_header(header: Header, body_length: int) -> bytes:
    try:
        return HEADER.pack(
            header.op_code,
            header.response_code,
            header.op_flags,
            header.site_info_serial,
            header.recursion_count,
            0,
            header.expiration,
            body_length,
        )
    except struct.error as exc:
        raise LocalProtocolError(f"header field out of range: {exc}") from None
