"""TCP framing (handle-native.md §8): each direction is a stream of ``envelope ‖ message``.

:class:`Framer` is incremental and does no I/O: feed it whatever a read returned, take out the
complete frames. It checks a frame's announced length as soon as its envelope is in, so a lying
or oversized length costs at most 20 buffered bytes, and it holds at most one frame of
``20 + max_message_length`` bytes beyond the bytes of the last :meth:`Framer.feed`.
"""

from __future__ import annotations

from resolver.native.envelope import ENVELOPE, ENVELOPE_SIZE, check_message_length
from resolver.native.errors import IncompleteMessage, MessageTooShort, RemoteProtocolError
from resolver.native.limits import DEFAULT_LIMITS, Limits


class Framer:
    """Splits a byte stream into frames (envelope + message) for
    :func:`~resolver.native.readers.decode`.

    After :meth:`feed_eof`, :meth:`next_frame` still returns the complete frames buffered, then
    None if the stream ended between frames, or raises what the reference answers to a stream
    cut short: an envelope cut short reads as message length 0
    (:class:`~resolver.native.errors.MessageTooShort`), a message cut short is
    :class:`~resolver.native.errors.IncompleteMessage`. After an error the framer stays broken
    (every later call raises it again): a stream cannot be resynchronised.
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._buf = bytearray()
        self._need = 0  # length of the frame being read, once its envelope is in
        self._eof = False
        self._error: RemoteProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as a frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        if self._error is not None:
            raise self._error
        if self._eof:
            raise RuntimeError("bytes fed after the end of the stream")
        self._buf += data

    def feed_eof(self) -> None:
        """The peer closed its side of the stream."""
        self._eof = True

    def next_frame(self) -> bytes | None:
        """The next complete frame, or None until more bytes are fed (or at a clean end)."""
        if self._error is not None:
            raise self._error
        buf = self._buf
        if not self._need and len(buf) >= ENVELOPE_SIZE:
            length = ENVELOPE.unpack_from(buf)[7]
            try:
                check_message_length(length, self.limits)
            except RemoteProtocolError as exc:
                self._error = exc
                raise
            self._need = ENVELOPE_SIZE + length
        need = self._need
        if need and len(buf) >= need:
            frame = bytes(buf) if len(buf) == need else bytes(buf[:need])
            del buf[:need]
            self._need = 0
            return frame
        if self._eof and buf:
            if need:
                self._error = IncompleteMessage(need - ENVELOPE_SIZE, len(buf) - ENVELOPE_SIZE)
            else:
                self._error = MessageTooShort(f"stream ended {len(buf)} bytes into an envelope")
            raise self._error
        return None
