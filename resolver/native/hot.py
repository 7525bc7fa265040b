"""The hot path: replies to the common request, precomputed per request shape.

Nearly every request a busy node answers is an unfiltered, unsigned resolution of a record the
in-process cache holds, sent again and again with the same bytes but for two fields: the
request id and the expiration. So the reply to each such request shape is built once, from the
cache entry's value list encoded once (:func:`public_values`, :mod:`.fast`), kept with the
entry it came from, and afterwards only copied with the request's id and a fresh expiration
patched in — for UDP already split into its datagrams, and cut so that patching copies each
datagram once. Before a kept reply is used the core's
:meth:`~resolver.core.Resolver.cached` must still return the very entry it was built from: a
write (in any process) or an expiry makes a new entry, and the reply is built again.

Bounded: at most :data:`MAX_SHAPES` shapes and :data:`MAX_BYTES` bytes are kept; past either,
all are dropped and rebuilt on demand (so a client varying its requests to evict others costs
itself a rebuild per request, and everyone else one rebuild).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from registry.cache.entry import CacheEntry
from registry.model.wire import encode_values
from resolver.core import Resolver
from resolver.native.adapter import reply_flags
from resolver.native.codes import PO
from resolver.native.fast import peek_resolution, resolution_frame
from resolver.native.limits import Limits
from resolver.native.udp import split_frame
from resolver.siteinfo import SITE_SERIAL

EXPIRATION = 43_200  # seconds: what the reference writes in every header (now + 12 h)
NATIVE = "native"  # a cache entry's rendering: its public values' wire encoding
MAX_SHAPES = 4096
MAX_BYTES = 8 * 2**20
MAX_REPLY = 65_536  # longer replies are built for each request
_I32 = struct.Struct(">i")

# A reply cut around the request id (bytes 8-12) and the expiration (36-40) of its first
# datagram or frame: (before the id, between them, after the expiration), then each further
# datagram's (before the id, after it).
_Cut = tuple[bytes, bytes, bytes, tuple[tuple[bytes, bytes], ...]]
# Kept per request shape: the entry the reply was built from, the handle, the reply as one
# frame (TCP) and as datagrams (UDP, cut when first asked for).
_Shape = tuple[CacheEntry, str, _Cut, _Cut | None]
Send = Callable[[bytes, Any], None]


def _render_public(entry: CacheEntry) -> bytes:
    return encode_values(entry.public)


def public_values(entry: CacheEntry) -> bytes:
    """The encoded value list of ``entry``'s public values, made once per entry: a record
    without restricted values is its own encoding (which the cache keeps anyway)."""
    if entry.all_public:
        return entry.encoded()[1]
    return entry.rendered.get(NATIVE) or entry.render(NATIVE, _render_public)


class HotAnswers:
    """Answers the common request without the core's coroutine (see the module docstring).
    ``clock`` gives the time for the expiration."""

    def __init__(self, resolver: Resolver, limits: Limits, clock: Callable[[], float]) -> None:
        self.cached = resolver.cached
        self.limits = limits
        self.clock = clock
        self._shapes: dict[bytes, _Shape] = {}
        self._bytes = 0
        self._expiration = b""
        self.tick()

    def __len__(self) -> int:
        return len(self._shapes)

    def tick(self) -> None:
        """Take the time for the expiration of the replies from now on (the listener calls
        this twice a second, so the hot path does not read the clock)."""
        self._expiration = _I32.pack(int(self.clock()) + EXPIRATION)

    def frame(self, request: bytes) -> bytes | None:
        """The reply frame to ``request``, or None when the core must answer it."""
        key = request[:8] + request[12:36] + request[40:]
        shape = self._shapes.get(key)
        entry = None if shape is None else self.cached(shape[1])
        if shape is None or entry is not shape[0]:
            shape = self._build(key, request, shape, entry)
            if shape is None:
                return None
        head, middle, tail, _ = shape[2]
        return b"".join((head, request[8:12], middle, self._expiration, tail))

    def send(self, request: bytes, addr: Any, sendto: Send) -> bool:
        """Send the reply to the datagram ``request`` to ``addr``, split as the reference
        splits it; False when the core must answer (nothing sent)."""
        # frame()'s steps inlined: this runs for nearly every datagram.
        key = request[:8] + request[12:36] + request[40:]
        shape = self._shapes.get(key)
        entry = None if shape is None else self.cached(shape[1])
        if shape is None or entry is not shape[0]:
            shape = self._build(key, request, shape, entry)
            if shape is None:
                return False
        cut = shape[3]
        if cut is None:
            cut = self._split(key, shape)
        rid = request[8:12]
        head, middle, tail, rest = cut
        sendto(b"".join((head, rid, middle, self._expiration, tail)), addr)
        for head, tail in rest:
            sendto(b"".join((head, rid, tail)), addr)
        return True

    def _build(
        self, key: bytes, request: bytes, stale: _Shape | None, entry: CacheEntry | None
    ) -> _Shape | None:
        """The reply to a request of shape ``key`` whose kept reply is ``stale`` (built from
        another entry than the current ``entry``) or missing (``stale`` None)."""
        if stale is not None:
            self._drop(key)
            if entry is None:
                return None  # not cached any more: the core answers
        peeked = peek_resolution(request, self.limits)
        if peeked is None:
            return None
        if entry is None:
            entry = self.cached(peeked[5])
            if entry is None:
                return None
        flags = peeked[4]
        # PO clear asks for restricted values too, which only the core may refuse.
        if not (entry.all_public or (flags & PO and entry.any_public)):
            return None
        reply = resolution_frame(
            request,
            peeked,
            reply_flags(flags, signed=False),
            SITE_SERIAL,
            0,  # the expiration is patched in for each request
            public_values(entry),
        )
        shape = (entry, peeked[5], _cut([reply]), None)
        if len(reply) <= MAX_REPLY:
            size = len(key) + len(reply)
            if len(self._shapes) >= MAX_SHAPES or self._bytes + size > MAX_BYTES:
                self._shapes.clear()
                self._bytes = 0
            self._shapes[key] = shape
            self._bytes += size
        return shape

    def _split(self, key: bytes, shape: _Shape) -> _Cut:
        """The reply's datagrams, kept with it from now on."""
        head, middle, tail, _ = shape[2]
        frame = b"".join((head, bytes(4), middle, bytes(4), tail))
        cut = _cut(split_frame(frame))
        if self._shapes.get(key) is shape:
            self._shapes[key] = (shape[0], shape[1], shape[2], cut)
            self._bytes += len(frame)
        return cut

    def _drop(self, key: bytes) -> None:
        shape = self._shapes.pop(key)
        size = len(shape[2][2]) + 40
        self._bytes -= len(key) + size + (0 if shape[3] is None else size)


def _cut(grams: list[bytes]) -> _Cut:
    first = grams[0]
    rest = tuple((gram[:8], gram[12:]) for gram in grams[1:])
    return first[:8], first[12:36], first[40:], rest
