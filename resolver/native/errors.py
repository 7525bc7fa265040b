"""Codec errors, split by whose fault it was (as h11 does).

:class:`RemoteProtocolError`: the peer sent bytes that break the protocol. Each carries the
responseCode and message the reference server answers it with (handle-native.md §10), so the
transport can reply without knowing why; ``detail`` says precisely what was wrong, for logs and
tests. Whatever the reference's decoder throws on it answers with the catch-all rc 2 text, and
so does idnode; only a short message, an incomplete stream and op code 0 get rc 4.

:class:`LocalProtocolError`: idnode asked the encoder for something the protocol cannot carry
(a field out of range, a digest without the RD flag). Always a bug on this side.

All are :class:`registry.errors.HandleError`, the node's one error hierarchy.
"""

from __future__ import annotations

from registry.errors import RC_ERROR, RC_PROTOCOL_ERROR, HandleError
from resolver.native.codes import CATCH_ALL_MESSAGE


class NativeError(HandleError):
    """A native-protocol codec error; ``str()`` is the detail, ``message`` the reply text."""

    def __init__(
        self, detail: str, *, response_code: int | None = None, message: str | None = None
    ):
        super().__init__(message)
        if response_code is not None:
            self.response_code = response_code
        self.detail = detail

    def __str__(self) -> str:
        return self.detail


class RemoteProtocolError(NativeError):
    """The peer's bytes break the protocol. ``answerable`` is False when the reference stays
    silent (the datagram is dropped)."""

    response_code = RC_ERROR
    default_message = CATCH_ALL_MESSAGE
    answerable = True


class InvalidLength(RemoteProtocolError):
    """A length field disagrees with the bytes: a negative message length, or a body or
    credential running past the end of the message."""


class MessageTooShort(InvalidLength):
    """Fewer than 20 envelope bytes, or a message length under the 24-byte header. The reference
    reads the missing bytes as zeros and so always sees a length under 24."""

    response_code = RC_PROTOCOL_ERROR
    default_message = "Invalid message length"


class IncompleteMessage(RemoteProtocolError):
    """A TCP stream ended inside a message."""

    response_code = RC_PROTOCOL_ERROR

    def __init__(self, expected: int, received: int) -> None:
        text = f"Expecting {expected} bytes, only received {received}"
        super().__init__(text, message=text)
        self.expected = expected
        self.received = received


class UnknownOpCode(RemoteProtocolError):
    """A request op code the protocol does not define (0 gets rc 4, others the catch-all)."""

    def __init__(self, op_code: int) -> None:
        if op_code == 0:
            text = "Unknown opCode in message: 0"
            super().__init__(text, response_code=RC_PROTOCOL_ERROR, message=text)
        else:
            super().__init__(f"Unknown opCode in message: {op_code}")
        self.op_code = op_code


class MalformedBody(RemoteProtocolError):
    """A body or credential field cannot be read (truncated, bad count, bad UTF-8, ...)."""


class LimitExceeded(RemoteProtocolError):
    """A configured limit (:class:`resolver.native.limits.Limits`) was exceeded."""

    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(f"{what} is {size}, over the limit of {limit}")
        self.what = what
        self.size = size
        self.limit = limit


class FragmentError(RemoteProtocolError):
    """A UDP fragment that cannot belong to a well-formed message. Never answered: the reference
    answers no fragment set it has not fully received."""

    answerable = False


class LocalProtocolError(NativeError):
    """idnode tried to encode something the protocol cannot carry."""

    response_code = RC_ERROR
    default_message = "Internal server error"
