"""UDP: splitting a message into datagrams and reassembling it (handle-native.md §7).

A message longer than 492 bytes travels as ⌈length/492⌉ datagrams, each a full envelope with
TC set, the same request id, message id = fragment number and message length = the *total*
length; fragment *i* carries message bytes ``492·i …``. A receiver knows it is done when every
fragment arrived. Reassembly is keyed by sender address and request id (the reference ignores
the port), gives up after a timeout, and answers nothing it has not fully received.
"""

from __future__ import annotations

import struct
from collections.abc import Hashable
from dataclasses import dataclass, replace

from resolver.native.codes import ENV_TC
from resolver.native.envelope import ENVELOPE_SIZE, Envelope, decode_envelope, encode_envelope
from resolver.native.errors import FragmentError, LimitExceeded
from resolver.native.limits import DEFAULT_LIMITS, Limits
from resolver.native.messages import Message
from resolver.native.readers import decode, decode_message

DATAGRAM_SIZE = 512  # both ends receive into 512-byte buffers
PAYLOAD_SIZE = DATAGRAM_SIZE - ENVELOPE_SIZE  # 492
_MESSAGE_ID = struct.Struct(">i")


def fragment_count(message_length: int) -> int:
    return -(-message_length // PAYLOAD_SIZE)


def datagrams(envelope: Envelope, message: bytes) -> list[bytes]:
    """``message`` as the datagrams the reference sends: one if it fits (flags as in
    ``envelope``), else fragments of 492 bytes with TC set."""
    length = len(message)
    if length <= PAYLOAD_SIZE:
        return [encode_envelope(envelope, length) + message]
    view = memoryview(message)
    return [
        encode_envelope(envelope, length, i, ENV_TC) + view[off : off + PAYLOAD_SIZE]
        for i, off in enumerate(range(0, length, PAYLOAD_SIZE))
    ]


def split_frame(frame: bytes) -> list[bytes]:
    """A framed message (envelope + message, e.g. from :func:`~.writers.encode_frame`) as the
    datagrams :func:`datagrams` sends for it, reusing the frame's envelope bytes."""
    length = len(frame) - ENVELOPE_SIZE
    if length <= PAYLOAD_SIZE:
        return [frame]
    view = memoryview(frame)
    head = bytes((frame[0], frame[1], frame[2] | ENV_TC)) + view[3:12]
    total = view[16:ENVELOPE_SIZE]
    return [
        b"".join((head, _MESSAGE_ID.pack(i), total, view[off : off + PAYLOAD_SIZE]))
        for i, off in enumerate(range(ENVELOPE_SIZE, len(frame), PAYLOAD_SIZE))
    ]


@dataclass(slots=True)
class _Partial:
    envelope: Envelope  # of the first fragment that arrived
    started: float
    parts: list[bytes | None]
    missing: int


class Reassembler:
    """Collects the fragments of multi-datagram messages. Pure: the caller passes the time.

    At most ``max_pending`` messages and ``max_pending_bytes`` (counted by their announced
    lengths) wait at once; a new message beyond that evicts the oldest, so a flood of partial
    messages costs bounded memory and delays only itself. Messages not complete within
    ``timeout`` seconds are dropped silently, as the reference does after 5 s.
    """

    def __init__(
        self,
        *,
        timeout: float = 5.0,
        max_pending: int = 1024,
        max_pending_bytes: int = 16 * 2**20,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.timeout = timeout
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self.limits = limits
        self._pending: dict[tuple[Hashable, int], _Partial] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._pending)

    def add(
        self, source: Hashable, envelope: Envelope, payload: bytes, now: float
    ) -> tuple[Envelope, bytes] | None:
        """File one fragment (``payload``: its bytes after the envelope). Returns the envelope
        and the whole message once the last fragment is in, else None. Raises
        :class:`FragmentError` (never answered) for a fragment that cannot belong to a
        well-formed message; a fragment contradicting its message's others discards it."""
        self.expire(now)
        length = envelope.message_length  # already checked by decode_envelope
        count = fragment_count(length)
        mid = envelope.message_id
        if not 0 <= mid < count:
            raise FragmentError(f"fragment {mid} of a {count}-fragment message")
        expected = PAYLOAD_SIZE if mid < count - 1 else length - PAYLOAD_SIZE * (count - 1)
        if len(payload) != expected:
            raise FragmentError(f"fragment {mid} carries {len(payload)} bytes, not {expected}")
        if count == 1:
            return envelope, payload
        key = (source, envelope.request_id)
        partial = self._pending.get(key)
        if partial is None:
            if length > self.max_pending_bytes:
                raise LimitExceeded("pending message length", length, self.max_pending_bytes)
            while self._pending and (
                len(self._pending) >= self.max_pending
                or self._bytes + length > self.max_pending_bytes
            ):
                self._drop(next(iter(self._pending)))
            partial = _Partial(envelope, now, [None] * count, count)
            self._pending[key] = partial
            self._bytes += length
        elif len(partial.parts) != count or partial.envelope.message_length != length:
            self._drop(key)
            raise FragmentError(f"fragment {mid} disagrees with its message's length")
        held = partial.parts[mid]
        if held is not None:
            if held != payload:  # a client retry repeats its datagrams unchanged
                self._drop(key)
                raise FragmentError(f"fragment {mid} arrived twice with different bytes")
            return None
        partial.parts[mid] = bytes(payload)
        partial.missing -= 1
        if partial.missing:
            return None
        self._drop(key)
        # The message's envelope is the first fragment's, whichever arrived first.
        return replace(partial.envelope, message_id=0), b"".join(partial.parts)  # type: ignore[arg-type]

    def expire(self, now: float) -> int:
        """Drop messages older than the timeout; returns how many."""
        dropped = 0
        deadline = now - self.timeout
        while self._pending:
            key, partial = next(iter(self._pending.items()))
            if partial.started > deadline:
                break  # insertion order is arrival order
            self._drop(key)
            dropped += 1
        return dropped

    def _drop(self, key: tuple[Hashable, int]) -> None:
        partial = self._pending.pop(key)
        self._bytes -= partial.envelope.message_length


def receive(
    datagram: bytes,
    source: Hashable,
    now: float,
    reassembler: Reassembler,
    limits: Limits = DEFAULT_LIMITS,
) -> Message | None:
    """Decode one received datagram: the message, or None while fragments are missing."""
    if len(datagram) < ENVELOPE_SIZE or not datagram[2] & ENV_TC:
        return decode(datagram, limits)
    envelope = decode_envelope(datagram, limits)
    done = reassembler.add(source, envelope, datagram[ENVELOPE_SIZE:], now)
    if done is None:
        return None
    return decode_message(done[0], done[1], limits)
