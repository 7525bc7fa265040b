"""Typed message bodies, and :class:`Message`, one whole message (handle-native.md §5).

A body class per layout. Requests carry response code 0; which class a decoder picks follows
from the op code (requests) or the op code and response code (replies):

* rc 1 (success): the op's reply body, or :class:`EmptyResponse` / :class:`OpaqueBody`
  for ops whose success reply idnode does not parse.
* rc 402: :class:`Challenge` (the nonce), whatever the op code.
* rc 302/303 (referrals): :class:`OpaqueBody`; their layout is not in the captures.
* any other rc: :class:`ErrorResponse`.

Handles, types and texts are ``str`` (strict UTF-8 on the wire, which re-encodes to the same
bytes); values are :class:`registry.model.values.Value`, encoded by
:mod:`registry.model.wire`. All classes are slotted dataclasses: cheaper to build than frozen
ones on the hot path; treat them as immutable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from registry.model.values import Value
from resolver.native.codes import KNOWN_OP_CODES, OpCode, ResponseCode
from resolver.native.credential import Credential
from resolver.native.envelope import Envelope
from resolver.native.header import Header

# --- requests ---------------------------------------------------------------------------------


@dataclass(slots=True)
class ResolutionRequest:
    """Op 1: ``bytes handle, i32 n + n x i32 index, i32 m + m x bytes type``; a value matches
    if its index or its type is listed, and empty lists mean all values."""

    OP: ClassVar[int | None] = OpCode.RESOLUTION
    handle: str
    indexes: tuple[int, ...] = ()
    types: tuple[str, ...] = ()


@dataclass(slots=True)
class SiteInfoRequest:
    """Op 2: ``bytes handle`` (the reference client sends "/")."""

    OP: ClassVar[int | None] = OpCode.GET_SITE_INFO
    handle: str = "/"


@dataclass(slots=True)
class CreateHandleRequest:
    """Op 100: ``bytes handle, i32 count, values``."""

    OP: ClassVar[int | None] = OpCode.CREATE_HANDLE
    handle: str
    values: tuple[Value, ...]


@dataclass(slots=True)
class DeleteHandleRequest:
    """Op 101: ``bytes handle``."""

    OP: ClassVar[int | None] = OpCode.DELETE_HANDLE
    handle: str


@dataclass(slots=True)
class AddValueRequest:
    """Op 102 (RFC 3652; not in the captures): ``bytes handle, i32 count, values``."""

    OP: ClassVar[int | None] = OpCode.ADD_VALUE
    handle: str
    values: tuple[Value, ...]


@dataclass(slots=True)
class RemoveValueRequest:
    """Op 103 (RFC 3652; not in the captures): ``bytes handle, i32 n + n x i32 index``."""

    OP: ClassVar[int | None] = OpCode.REMOVE_VALUE
    handle: str
    indexes: tuple[int, ...]


@dataclass(slots=True)
class ModifyValueRequest:
    """Op 104 (RFC 3652; not in the captures): ``bytes handle, i32 count, values``."""

    OP: ClassVar[int | None] = OpCode.MODIFY_VALUE
    handle: str
    values: tuple[Value, ...]


@dataclass(slots=True)
class ListHandlesRequest:
    """Op 105 (RFC 3652; not in the captures): ``bytes prefix handle`` (``0.NA/…``)."""

    OP: ClassVar[int | None] = OpCode.LIST_HANDLES
    prefix_handle: str


@dataclass(slots=True)
class ChallengeAnswer:
    """Op 200, the answer to a 402 challenge: ``bytes auth type, bytes identity handle,
    i32 identity index, bytes answer``. ``answer`` layouts are in :mod:`.challenge`."""

    OP: ClassVar[int | None] = OpCode.RESPONSE_TO_CHALLENGE
    auth_type: str
    identity_handle: str
    identity_index: int
    answer: bytes


@dataclass(slots=True)
class SessionSetupRequest:
    """Op 400: ``u16 key exchange mode, i32 timeout, bytes identity handle, i32 identity index,
    bytes exchange key`` (the client's DH public key in mode 4), then two zero bytes: the
    reference counts the u16 mode as four bytes in the body length."""

    OP: ClassVar[int | None] = OpCode.SESSION_SETUP
    key_exchange_mode: int
    timeout: int
    identity_handle: str
    identity_index: int
    exchange_key: bytes


# --- replies ----------------------------------------------------------------------------------


@dataclass(slots=True)
class ResolutionResponse:
    """Op 1, rc 1: ``bytes handle`` (as the client sent it), ``i32 count``, values."""

    OP: ClassVar[int | None] = OpCode.RESOLUTION
    handle: str
    values: tuple[Value, ...]


@dataclass(slots=True)
class SiteInfoResponse:
    """Op 2, rc 1: the site record, the same bytes as HS_SITE data
    (:mod:`registry.model.site`)."""

    OP: ClassVar[int | None] = OpCode.GET_SITE_INFO
    site: bytes


@dataclass(slots=True)
class CreateHandleResponse:
    """Op 100, rc 1: ``bytes handle`` (the created handle), or an empty body (``None``)."""

    OP: ClassVar[int | None] = OpCode.CREATE_HANDLE
    handle: str | None = None


@dataclass(slots=True)
class ListHandlesResponse:
    """Op 105, rc 1 (RFC 3652; not in the captures): ``i32 count + count x bytes handle``;
    a long list comes in several messages flagged CN."""

    OP: ClassVar[int | None] = OpCode.LIST_HANDLES
    handles: tuple[str, ...]


@dataclass(slots=True)
class SessionSetupResponse:
    """Op 400, rc 1: ``u16 key exchange mode, bytes data`` (mode 4: ``i32 cipher`` + the
    server's DH public key), then two zero bytes as in the request."""

    OP: ClassVar[int | None] = OpCode.SESSION_SETUP
    key_exchange_mode: int
    data: bytes


@dataclass(slots=True)
class EmptyResponse:
    """rc 1 with an empty body (delete handle, add/remove/modify value)."""

    OP: ClassVar[int | None] = None


@dataclass(slots=True)
class Challenge:
    """rc 402, any op: ``bytes nonce``. The reply also carries the request digest
    (:attr:`Message.digest`)."""

    OP: ClassVar[int | None] = None
    nonce: bytes


@dataclass(slots=True)
class ErrorResponse:
    """rc ≥ 2: ``bytes message`` (UTF-8, often empty)."""

    OP: ClassVar[int | None] = None
    message: str = ""


@dataclass(slots=True)
class OpaqueBody:
    """The body of a known op code (or referral) whose layout idnode does not parse, as bytes."""

    OP: ClassVar[int | None] = None
    data: bytes = b""


Body = (
    ResolutionRequest
    | SiteInfoRequest
    | CreateHandleRequest
    | DeleteHandleRequest
    | AddValueRequest
    | RemoveValueRequest
    | ModifyValueRequest
    | ListHandlesRequest
    | ChallengeAnswer
    | SessionSetupRequest
    | ResolutionResponse
    | SiteInfoResponse
    | CreateHandleResponse
    | ListHandlesResponse
    | SessionSetupResponse
    | EmptyResponse
    | Challenge
    | ErrorResponse
    | OpaqueBody
)

# The administration idnode answers (over TCP, after a challenge).
ADMIN_REQUEST_BODIES: tuple[type[Body], ...] = (
    CreateHandleRequest,
    DeleteHandleRequest,
    AddValueRequest,
    RemoveValueRequest,
    ModifyValueRequest,
    ListHandlesRequest,
)
REQUEST_BODIES: tuple[type[Body], ...] = (
    ResolutionRequest,
    SiteInfoRequest,
    *ADMIN_REQUEST_BODIES,
    ChallengeAnswer,
    SessionSetupRequest,
)


REQUEST_TYPES: dict[int, type[Body]] = {cls.OP: cls for cls in REQUEST_BODIES if cls.OP}
SUCCESS_TYPES: dict[int, type[Body]] = {
    cls.OP: cls
    for cls in (
        ResolutionResponse,
        SiteInfoResponse,
        CreateHandleResponse,
        ListHandlesResponse,
        SessionSetupResponse,
    )
    if cls.OP
}
_REFERRALS = frozenset({ResponseCode.SERVICE_REFERRAL, ResponseCode.PREFIX_REFERRAL})


def body_types(op_code: int, response_code: int) -> tuple[type[Body], ...]:
    """The body classes a message with this op code and response code carries (none: the
    protocol has no such message). The decoders pick among them as the module docstring says."""
    if response_code == 0:
        cls = REQUEST_TYPES.get(op_code)
        if cls is not None:
            return (cls,)
        return (OpaqueBody,) if op_code in KNOWN_OP_CODES else ()
    if response_code == ResponseCode.SUCCESS:
        cls = SUCCESS_TYPES.get(op_code)
        if cls is not None:
            return (cls,)
        return (EmptyResponse, OpaqueBody) if op_code in KNOWN_OP_CODES else ()
    if response_code == ResponseCode.AUTHENTICATION_NEEDED:
        return (Challenge,)
    if response_code in _REFERRALS:
        return (OpaqueBody,)
    return (ErrorResponse,)


@dataclass(slots=True)
class Digest:
    """A request digest: what a reply with RD set starts with (handle-native.md §4)."""

    hash_type: int
    digest: bytes


@dataclass(slots=True)
class Message:
    """A whole message. ``digest`` is the RD prefix of a reply's body. ``signed`` is, for a
    decoded message, its header and body as received: what a request digest covers and, after
    :func:`~resolver.native.credential.signed_bytes`' prefix, what a credential signs."""

    envelope: Envelope
    header: Header
    body: Body
    credential: Credential | None = None
    digest: Digest | None = None
    signed: bytes = field(default=b"", compare=False, repr=False)
