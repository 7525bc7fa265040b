"""The native Handle protocol (RFC 3651/3652, protocol 2.x) as a pure codec: bytes in,
dataclasses out, and back. No sockets, clocks, keys or resolution logic live here; the
listeners move bytes and the core decides. handle-native.md is the reference; the captures in
tests/vectors/handle-native are the ground truth.

Invariants:

* Round trip: encoding a decoded message gives back its bytes (lengths are recomputed, the
  header's reserved octet is written as 0, bytes after a body's fields are dropped); the encoder
  refuses what the decoder would read as another message (a body under the wrong op or
  response code, a digest without RD). Every captured reply re-encodes byte for byte.
* Nothing a peer sends is trusted: each length and count is checked against the bytes present
  and against :class:`Limits` before it is used, so decoding costs at most time and memory in
  proportion to the input. Every failure is a :class:`RemoteProtocolError` (the peer's fault,
  carrying the responseCode and text the reference answers with) or, when encoding, a
  :class:`LocalProtocolError` (ours). Nothing else escapes.
* Where the reference is lenient and no harm follows (a datagram shorter than its length field,
  no credential length, TC on a whole datagram), idnode is too; where leniency would mean
  reading bytes that are not there, it refuses.
* A UDP message is answered only once every fragment arrived (:mod:`.udp`); a TCP stream is
  cut into frames by :class:`Framer` without trusting its length fields beyond the limit.

Layout: :mod:`.codes` numbers, :mod:`.envelope` and :mod:`.header` the fixed parts,
:mod:`.messages` the typed bodies and :class:`Message`, :mod:`.readers` / :mod:`.writers`
the codecs, :mod:`.credential` signatures, :mod:`.challenge` challenge material, :mod:`.udp`
and :mod:`.tcp` the transports' framing, :mod:`.errors` and :mod:`.limits`.
"""

from resolver.native.codes import DigestType, OpCode, OpFlag, ResponseCode
from resolver.native.credential import Credential, credential_section, signed_bytes
from resolver.native.envelope import Envelope, reply_envelope, reply_version
from resolver.native.errors import LocalProtocolError, NativeError, RemoteProtocolError
from resolver.native.header import Header
from resolver.native.limits import DEFAULT_LIMITS, Limits
from resolver.native.messages import Body, Digest, Message
from resolver.native.readers import decode, decode_message
from resolver.native.tcp import Framer
from resolver.native.udp import Reassembler, datagrams
from resolver.native.writers import (
    blind_error,
    encode,
    encode_frame,
    encode_message,
    encode_payload,
)

__all__ = [
    "DEFAULT_LIMITS",
    "Body",
    "Credential",
    "Digest",
    "DigestType",
    "Envelope",
    "Framer",
    "Header",
    "Limits",
    "LocalProtocolError",
    "Message",
    "NativeError",
    "OpCode",
    "OpFlag",
    "Reassembler",
    "RemoteProtocolError",
    "ResponseCode",
    "blind_error",
    "credential_section",
    "datagrams",
    "decode",
    "decode_message",
    "encode",
    "encode_frame",
    "encode_message",
    "encode_payload",
    "reply_envelope",
    "reply_version",
    "signed_bytes",
]
