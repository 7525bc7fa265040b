"""What the cache holds for one key, and its Redis encoding.

An entry is ready to send: the public view of the record is computed once, and each
transport memoises its own rendering of it (``rendered``), so a hot record is never
re-serialised per request.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from registry.errors import InvalidValue
from registry.model.values import TTL_ABSOLUTE, Value
from registry.model.wire import decode_values, encode_values
from registry.store.base import Record

_MAGIC = b"IDC1"
# magic, epoch, generation, expires_at (epoch seconds, float), flags (1 = found)
_HEAD = struct.Struct(">4sQQdB")


@dataclass(slots=True, eq=False)
class CacheEntry:
    """A record (or its absence) as of generation ``gen`` of its key's slot."""

    key: str
    record: Record | None
    epoch: int
    gen: int
    expires_at: float
    public: tuple[Value, ...] = ()
    all_public: bool = True
    rendered: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def build(
        cls, key: str, record: Record | None, epoch: int, gen: int, expires_at: float
    ) -> CacheEntry:
        if record is None:
            return cls(key, None, epoch, gen, expires_at)
        public = tuple(v for v in record.values if v.public_read)
        return cls(key, record, epoch, gen, expires_at, public, len(public) == len(record.values))

    def render(self, fmt: str, fn: Callable[[CacheEntry], bytes]) -> bytes:
        """``fn(self)`` computed once per format (e.g. the JSON array of public values)."""
        out = self.rendered.get(fmt)
        if out is None:
            out = self.rendered[fmt] = fn(self)
        return out

    @property
    def size(self) -> int:
        """Approximate bytes held, for the in-process tier's byte budget."""
        base = 200 + 2 * len(self.key)
        if self.record is not None:
            base += sum(120 + len(v.data) + len(v.type) for v in self.record.values)
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


def encode_entry(entry: CacheEntry) -> bytes:
    head = _HEAD.pack(
        _MAGIC, entry.epoch, entry.gen, entry.expires_at, 1 if entry.record is not None else 0
    )
    if entry.record is None:
        return head
    handle = entry.record.handle.encode("utf-8")
    return head + struct.pack(">I", len(handle)) + handle + encode_values(entry.record.values)


def decode_entry(key: str, blob: bytes) -> CacheEntry | None:
    """The entry in ``blob``, or None when it is not one of ours (never raises)."""
    try:
        magic, epoch, gen, expires_at, flags = _HEAD.unpack_from(blob, 0)
        if magic != _MAGIC:
            return None
        if not flags & 1:
            return CacheEntry.build(key, None, epoch, gen, expires_at)
        offset = _HEAD.size
        (n,) = struct.unpack_from(">I", blob, offset)
        offset += 4
        handle = blob[offset : offset + n].decode("utf-8")
        values = decode_values(blob[offset + n :])
    except (struct.error, UnicodeDecodeError, InvalidValue):
        return None
    return CacheEntry.build(key, Record(handle, values), epoch, gen, expires_at)
