"""The hot path: replies to the common request, precomputed per request shape.

Nearly every request a busy node answers is an unfiltered, unsigned resolution of a record the
in-process cache holds, sent again and again with the same bytes but for two fields: the
request id and the expiration. So the reply to each such request shape is built once, from the
cache entry's value list encoded once (:func:`public_values`, :mod:`.fast`), kept with the
entry it came from, and afterwards only copied with the request's id and a fresh expiration
patched in — for UDP already split into its datagrams, and cut so that patching copies each
datagram once. A kept reply is used only while the core says the entry it was built from is
still current (:meth:`~resolver.core.Resolver.still_cached`: no write in any process, not
expired); else the reply is built again from the core's current entry, or the core answers.

Shapes are found by the request's bytes after the expiration (body and credential: the
handle as sent), then the rest of the request is compared in place (``startswith`` at an
offset: nothing is copied); a request differing from the kept shape of its body elsewhere
(another session id, version or flags) is looked up by its whole shape in a second table.
Each shape keeps only the cut its transport needs (a TCP frame or UDP datagrams), made on
first use. A request the core had to answer leaves its shape built (:meth:`HotAnswers.learn`),
so the next one is hot.

Bounded: at most ``max_shapes`` shapes and about ``max_bytes`` reply bytes are kept (by
default more than the in-process cache's defaults hold: 100,000 entries, 64 MiB, so every
record the cache holds can have its reply kept); past either, all are dropped and rebuilt on
demand (so a client varying its requests to evict others costs itself a rebuild per request,
and everyone else one rebuild).
Counted (:attr:`HotAnswers.hits`, ``built``, ``passed``) for ``/metrics`` and the bench.
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
MAX_SHAPES = 131_072
MAX_BYTES = 96 * 2**20
MAX_REPLY = 65_536  # longer replies are built for each request
_I32 = struct.Struct(">i")
_BODY = 40  # a request's bytes from here on (body, credential) find its shape
_SHAPE_OVERHEAD = 400  # bytes a kept shape costs besides its reply and key bytes

# A reply cut around the request id (bytes 8-12) and the expiration (36-40) of its first
# datagram or frame: (before the id, between them, after the expiration), then each further
# datagram's (before the id, after it).
_Cut = tuple[bytes, bytes, bytes, tuple[tuple[bytes, bytes], ...]]
Send = Callable[[bytes, Any], None]


class _Shape:
    """The kept reply to one request shape."""

    __slots__ = ("entry", "frame", "grams", "handle", "head", "middle", "prefix_key", "reply")

    def __init__(
        self, entry: CacheEntry, handle: str, prefix_key: str, request: bytes, reply: bytes
    ) -> None:
        self.entry = entry
        self.handle = handle
        self.prefix_key = prefix_key
        self.head = request[:8]  # the request's bytes besides the id, expiration and body
        self.middle = request[12:36]
        self.reply = reply  # until cut for a transport
        self.frame: _Cut | None = None  # TCP
        self.grams: _Cut | None = None  # UDP


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

    def __init__(
        self,
        resolver: Resolver,
        limits: Limits,
        clock: Callable[[], float],
        *,
        max_shapes: int = MAX_SHAPES,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self.resolver = resolver
        self.current = resolver.still_cached
        self.limits = limits
        self.clock = clock
        self.max_shapes = max_shapes
        self.max_bytes = max_bytes
        self._shapes: dict[bytes, _Shape] = {}  # by the request's body
        self._others: dict[bytes, _Shape] = {}  # by the whole shape, when the body's differs
        self._bytes = 0
        self._expiration = b""
        self.hits = 0  # requests answered from a kept reply
        self.built = 0  # requests answered from a reply built for them (and kept)
        self.passed = 0  # requests left to the core
        self.tick()

    def __len__(self) -> int:
        return len(self._shapes) + len(self._others)

    def tick(self) -> None:
        """Take the time for the expiration of the replies from now on (the listener calls
        this twice a second, so the hot path does not read the clock)."""
        self._expiration = _I32.pack(int(self.clock()) + EXPIRATION)

    def frame(self, request: bytes) -> bytes | None:
        """The reply frame to ``request``, or None when the core must answer it."""
        shape = self._shapes.get(request[_BODY:])
        if (
            shape is None
            or not request.startswith(shape.head)
            or not request.startswith(shape.middle, 12)
            or not self.current(shape.entry, shape.prefix_key)
        ):
            shape = self._find(request)
            if shape is None:
                return None
        else:
            self.hits += 1
        cut = shape.frame or self._cut_frame(shape)
        head, middle, tail, _ = cut
        return b"".join((head, request[8:12], middle, self._expiration, tail))

    def send(self, request: bytes, addr: Any, sendto: Send) -> bool:
        """Send the reply to the datagram ``request`` to ``addr``, split as the reference
        splits it; False when the core must answer (nothing sent)."""
        # frame()'s steps repeated: this runs for nearly every datagram.
        shape = self._shapes.get(request[_BODY:])
        if (
            shape is None
            or not request.startswith(shape.head)
            or not request.startswith(shape.middle, 12)
            or not self.current(shape.entry, shape.prefix_key)
        ):
            shape = self._find(request)
            if shape is None:
                return False
        else:
            self.hits += 1
        head, middle, tail, rest = shape.grams or self._cut_grams(shape)
        rid = request[8:12]
        sendto(b"".join((head, rid, middle, self._expiration, tail)), addr)
        for head, tail in rest:
            sendto(b"".join((head, rid, tail)), addr)
        return True

    def learn(self, request: bytes) -> None:
        """After the core answered ``request``: keep its reply's shape if it has one, so the
        next such request is answered hot."""
        if self._lookup(request) is None:
            self._build(request)

    def _lookup(self, request: bytes) -> _Shape | None:
        """The current kept shape of ``request``, from either table; None when there is
        none (a stale one is dropped)."""
        body = request[_BODY:]
        for table, key in ((self._shapes, body), (self._others, _whole(request))):
            shape = table.get(key)
            if shape is None:
                continue
            if not (request.startswith(shape.head) and request.startswith(shape.middle, 12)):
                continue
            if self.current(shape.entry, shape.prefix_key):
                return shape
            self._drop(table, key)
        return None

    def _find(self, request: bytes) -> _Shape | None:
        """The hot path's miss: the shape from the second table, or built; None when the
        core must answer (counted as such)."""
        shape = self._lookup(request)
        if shape is not None:
            self.hits += 1
            return shape
        shape = self._build(request)
        if shape is None:
            self.passed += 1
        else:
            self.built += 1
        return shape

    def _build(self, request: bytes) -> _Shape | None:
        """The reply to ``request`` from the core's cached entry, kept when not too long;
        None when it is not the common request or its record is not cached."""
        peeked = peek_resolution(request, self.limits)
        if peeked is None:
            return None
        handle = peeked[5]
        entry = self.resolver.cached(handle)
        ident = self.resolver.homed(handle)
        if entry is None or ident is None:
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
        shape = _Shape(entry, handle, ident.prefix_key, request, reply)
        if len(reply) <= MAX_REPLY:
            self._keep(request, shape)
        return shape

    def _keep(self, request: bytes, shape: _Shape) -> None:
        body = request[_BODY:]
        # The body's own slot, unless another shape of it is there and still in use.
        held = self._shapes.get(body)
        table, key = (self._shapes, body)
        if held is not None and self.current(held.entry, held.prefix_key):
            table, key = (self._others, _whole(request))
        if key in table:
            self._drop(table, key)
        size = _size(key, shape)
        if len(self) >= self.max_shapes or self._bytes + size > self.max_bytes:
            self._shapes.clear()
            self._others.clear()
            self._bytes = 0
        table[key] = shape
        self._bytes += size

    def _cut_frame(self, shape: _Shape) -> _Cut:
        shape.frame = _cut([shape.reply])
        return shape.frame

    def _cut_grams(self, shape: _Shape) -> _Cut:
        """The reply's datagrams, kept with it from now on (a second cut of a shape both
        transports use is not counted against the bound: the bound is approximate)."""
        shape.grams = _cut(split_frame(shape.reply))
        return shape.grams

    def _drop(self, table: dict[bytes, _Shape], key: bytes) -> None:
        self._bytes -= _size(key, table.pop(key))


def _whole(request: bytes) -> bytes:
    """A request's shape: its bytes but the request id and the expiration."""
    return request[:8] + request[12:36] + request[_BODY:]


def _size(key: bytes, shape: _Shape) -> int:
    """What a kept shape holds: its key, its reply and one transport's cut of it."""
    return len(key) + 2 * len(shape.reply) + _SHAPE_OVERHEAD


def _cut(grams: list[bytes]) -> _Cut:
    first = grams[0]
    rest = tuple((gram[:8], gram[12:]) for gram in grams[1:])
    return first[:8], first[12:36], first[40:], rest
