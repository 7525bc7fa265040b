"""The credential section that ends a message, and the bytes a credential signs
(handle-native.md §6).

Section: ``i32 length`` + credential (length 0: unsigned). Credential: ``u8 version,
u8 reserved, u16 flags, bytes signer handle, i32 signer index, bytes signature type,
i32 length of the rest, bytes hash algorithm, bytes signature``. The signer index carries the
session counter (0 outside sessions). HS_SIGNED is RSASSA-PKCS1-v1.5 under the server key
published in the site record; HS_MAC an HMAC under the session key. Signing itself is the
caller's (keys are not the codec's business); this module says what is signed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from resolver.native.envelope import Envelope
from resolver.native.errors import LocalProtocolError, MalformedBody

HS_SIGNED = "HS_SIGNED"
HS_MAC = "HS_MAC"
SHA256 = "SHA-256"
HMAC_SHA256 = "HMAC-SHA256"

_I32 = struct.Struct(">i")
_HEAD = struct.Struct(">BBH")
_PREFIX_2_8 = struct.Struct(">BBBBiii")  # versions, session id, request id, session counter
_PREFIX_2_7 = struct.Struct(">BBiii")
NO_CREDENTIAL = b"\0\0\0\0"


@dataclass(slots=True)
class Credential:
    """One credential. Treat instances as immutable."""

    signature_type: str
    hash_algorithm: str
    signature: bytes
    signer_handle: str = ""
    signer_index: int = 0  # the session counter inside a session
    version: int = 0
    reserved: int = 0
    flags: int = 0


def signed_bytes(envelope: Envelope, session_counter: int, header_and_body: bytes) -> bytes:
    """What a credential on a message with ``envelope`` signs.

    From 2.8: ``major, minor, suggested major, suggested minor`` (the suggested major without
    the flag bits), ``i32 session id, i32 request id, i32 session counter``, then header and
    body. 2.7 leaves out the suggested octets; below 2.6 only header and body are signed. 2.6's
    prefix encoder is broken in the reference, so idnode neither signs nor checks at 2.6.
    """
    version = (envelope.major, envelope.minor)
    if version >= (2, 8):
        prefix = _PREFIX_2_8.pack(
            envelope.major,
            envelope.minor,
            envelope.suggested_major,
            envelope.suggested_minor,
            envelope.session_id,
            envelope.request_id,
            session_counter,
        )
    elif version == (2, 7):
        prefix = _PREFIX_2_7.pack(
            envelope.major,
            envelope.minor,
            envelope.session_id,
            envelope.request_id,
            session_counter,
        )
    elif version < (2, 6):
        return header_and_body
    else:
        raise LocalProtocolError("protocol 2.6 signs a malformed prefix; not supported")
    return prefix + header_and_body


def _field(raw: bytes) -> bytes:
    return _I32.pack(len(raw)) + raw


def credential_section(credential: Credential | None) -> bytes:
    """The ``i32 length`` + credential that ends every message."""
    if credential is None:
        return NO_CREDENTIAL
    try:
        rest = _field(credential.hash_algorithm.encode()) + _field(credential.signature)
        raw = b"".join(
            (
                _HEAD.pack(credential.version, credential.reserved, credential.flags),
                _field(credential.signer_handle.encode()),
                _I32.pack(credential.signer_index),
                _field(credential.signature_type.encode()),
                _field(rest),
            )
        )
    except struct.error as exc:
        raise LocalProtocolError(f"credential field out of range: {exc}") from None
    return _field(raw)


def _read_field(buf: bytes, off: int, end: int, what: str) -> tuple[bytes, int]:
    if off + 4 > end:
        raise MalformedBody(f"credential {what}: no room for its length")
    (n,) = _I32.unpack_from(buf, off)
    off += 4
    if n < 0 or off + n > end:
        raise MalformedBody(f"credential {what}: length {n} runs past the credential")
    return buf[off : off + n], off + n


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise MalformedBody(f"credential {what} is not UTF-8") from None


def decode_credential(buf: bytes, off: int, end: int) -> Credential:
    """The credential in ``buf[off:end]`` (without its section length); it must fill it."""
    if off + _HEAD.size > end:
        raise MalformedBody("credential shorter than its fixed fields")
    version, reserved, flags = _HEAD.unpack_from(buf, off)
    signer, off = _read_field(buf, off + _HEAD.size, end, "signer handle")
    if off + 4 > end:
        raise MalformedBody("credential ends before the signer index")
    (index,) = _I32.unpack_from(buf, off)
    sig_type, off = _read_field(buf, off + 4, end, "signature type")
    rest, off = _read_field(buf, off, end, "signed data")
    if off != end:
        raise MalformedBody(f"{end - off} stray bytes after the credential")
    algorithm, roff = _read_field(rest, 0, len(rest), "hash algorithm")
    signature, roff = _read_field(rest, roff, len(rest), "signature")
    if roff != len(rest):
        raise MalformedBody(f"{len(rest) - roff} stray bytes after the signature")
    return Credential(
        _text(sig_type, "signature type"),
        _text(algorithm, "hash algorithm"),
        signature,
        _text(signer, "signer handle"),
        index,
        version,
        reserved,
        flags,
    )
