"""What the cache holds for one key, and its Redis encoding.

An entry is ready to send: the public view of the record is computed once, and each
transport memoises its own rendering of it (``rendered``), so a hot record is never
re-serialised per request. The renderings made when an entry is loaded from the store travel
with it through Redis: a Redis hit in any process is the bytes a transport sends, with the
record itself decoded only if something asks for it (a filtered or authenticated query).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

from registry.errors import InvalidValue
from registry.model.values import TTL_ABSOLUTE, Value
from registry.model.wire import decode_values, encode_values
from registry.store.base import Record

_MAGIC = b"IDC2"
# magic, epoch, generation, expires_at (epoch seconds, float), flags, CRC-32 of the rest
_HEAD = struct.Struct(">4sQQdBI")
_U32 = struct.Struct(">I")
_FOUND, _ALL_PUBLIC, _ANY_PUBLIC = 1, 2, 4

Renderer = Callable[["CacheEntry"], bytes]


class CacheEntry:
    """A record (or its absence) as of generation ``gen`` of its key's slot.

    ``record`` and ``public`` may be decoded lazily (an entry from Redis carries the encoded
    values and its renderings); ``found``, ``all_public`` and ``any_public`` never need it.
    """

    __slots__ = (
        "_blob",
        "_public",
        "_record",
        "all_public",
        "any_public",
        "epoch",
        "expires_at",
        "found",
        "gen",
        "key",
        "rendered",
        "slot",
    )

    def __init__(
        self,
        key: str,
        record: Record | None,
        epoch: int,
        gen: int,
        expires_at: float,
    ) -> None:
        self.key = key
        self.epoch = epoch
        self.gen = gen
        self.expires_at = expires_at
        self.rendered: dict[str, bytes] = {}
        self.slot = -1  # the offset of the key's generation, set by the cache that holds it
        self._record = record
        self._blob: tuple[str, bytes] | None = None  # (handle, encoded values), undecoded
        self.found = record is not None
        if record is None:
            self._public: tuple[Value, ...] | None = ()
            self.all_public = True
            self.any_public = False
        else:
            public = tuple(v for v in record.values if v.public_read)
            self._public = public
            self.all_public = len(public) == len(record.values)
            self.any_public = bool(public)

    @classmethod
    def build(
        cls, key: str, record: Record | None, epoch: int, gen: int, expires_at: float
    ) -> CacheEntry:
        return cls(key, record, epoch, gen, expires_at)

    @property
    def record(self) -> Record | None:
        if self._record is None and self._blob is not None:
            handle, blob = self._blob  # kept: Redis fills send it as it is
            self._record = Record(handle, decode_values(blob))
        return self._record

    @property
    def public(self) -> tuple[Value, ...]:
        """The values anyone may read, in stored order."""
        if self._public is None:
            record = self.record
            assert record is not None
            self._public = tuple(v for v in record.values if v.public_read)
        return self._public

    @property
    def handle(self) -> str:
        """The found record's handle as it is stored (spelling included)."""
        if self._blob is not None:
            return self._blob[0]
        assert self._record is not None, "no record"
        return self._record.handle

    def encoded(self) -> tuple[str, bytes]:
        """(handle, the values' wire encoding) of a found record, encoded once."""
        if self._blob is None:
            assert self._record is not None, "no record to encode"
            self._blob = (self._record.handle, encode_values(self._record.values))
        return self._blob

    def compact(self) -> None:
        """Keep the record encoded from now on (decoded again only if asked for): a cached
        entry is then a few objects instead of a dozen, and the garbage collector's full
        collections, which walk every object, stay short however many entries are held."""
        if self.found:
            self.encoded()
            self._record = None
            self._public = None

    def render(self, fmt: str, fn: Renderer) -> bytes:
        """``fn(self)`` computed once per format (e.g. the JSON array of public values)."""
        out = self.rendered.get(fmt)
        if out is None:
            out = self.rendered[fmt] = fn(self)
        return out

    @property
    def size(self) -> int:
        """Approximate bytes held, for the in-process tier's byte budget."""
        base = 200 + 2 * len(self.key)
        if self._blob is not None:
            base += 2 * len(self._blob[1])
        elif self._record is not None:
            base += sum(120 + len(v.data) + len(v.type) for v in self._record.values)
        return base + sum(len(r) for r in self.rendered.values())


def record_ttl(record: Record | None, now: float, cap: float, negative: float) -> float:
    """Seconds the entry may live: the record's smallest value TTL, at most ``cap``; an
    absent record lives ``negative`` seconds."""
    if record is None:
        return min(negative, cap)
    ttl = cap
    for v in record.values:
        t = float(v.ttl) - now if v.ttl_type == TTL_ABSOLUTE else float(v.ttl)
        if t < ttl:
            ttl = t
    return max(ttl, 0.0)


def _flags(entry: CacheEntry) -> int:
    return (
        (_FOUND if entry.found else 0)
        | (_ALL_PUBLIC if entry.all_public else 0)
        | (_ANY_PUBLIC if entry.any_public else 0)
    )


def encode_entry(entry: CacheEntry) -> bytes:
    """The entry as Redis holds it: header, then (when found) the handle, the encoded values
    and every rendering made so far; a CRC-32 in the header covers all of it."""
    parts: list[bytes] = []
    if entry.found:
        text, values = entry.encoded()
        handle = text.encode("utf-8")
        parts += [_U32.pack(len(handle)), handle, _U32.pack(len(values)), values]
        parts.append(_U32.pack(len(entry.rendered)))
        for fmt, data in entry.rendered.items():
            name = fmt.encode("utf-8")
            parts += [_U32.pack(len(name)), name, _U32.pack(len(data)), data]
    body = b"".join(parts)
    head = _HEAD.pack(
        _MAGIC, entry.epoch, entry.gen, entry.expires_at, _flags(entry), zlib.crc32(body)
    )
    return head + body


def _field(blob: bytes, offset: int) -> tuple[bytes, int]:
    (n,) = _U32.unpack_from(blob, offset)
    offset += 4
    end = offset + n
    if end > len(blob):
        raise InvalidValue("truncated cache entry")
    return blob[offset:end], end


def decode_entry(key: str, blob: bytes) -> CacheEntry | None:
    """The entry in ``blob``, or None when it is not one of ours (never raises). The values
    stay encoded until something asks for the record."""
    try:
        magic, epoch, gen, expires_at, flags, crc = _HEAD.unpack_from(blob, 0)
        if magic != _MAGIC or zlib.crc32(memoryview(blob)[_HEAD.size :]) != crc:
            return None
        entry = CacheEntry(key, None, epoch, gen, expires_at)
        if not flags & _FOUND:
            return entry if len(blob) == _HEAD.size else None
        handle, offset = _field(blob, _HEAD.size)
        values, offset = _field(blob, offset)
        (count,) = _U32.unpack_from(blob, offset)
        offset += 4
        rendered = entry.rendered
        for _ in range(count):
            fmt, offset = _field(blob, offset)
            rendered[fmt.decode("utf-8")], offset = _field(blob, offset)
        if offset != len(blob):
            return None
        entry._blob = (handle.decode("utf-8"), values)
    except (struct.error, UnicodeDecodeError, InvalidValue):
        return None
    entry.found = True
    entry.all_public = bool(flags & _ALL_PUBLIC)
    entry.any_public = bool(flags & _ANY_PUBLIC)
    entry._public = None
    return entry
