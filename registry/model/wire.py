"""The binary ("wire") encoding of values (RFC 3651 §3.1, as Handle.Net writes it).

One value, big-endian: ``index:u32, timestamp:u32, ttlType:u8, ttl:u32, permissions:u8,
type:(len:u32, bytes), data:(len:u32, bytes), refCount:u32, {handle:(len, bytes), index:u32}*``.
Digests for signatures, the native protocol and the store's record blob all use it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from registry.errors import InvalidValue
from registry.model.values import Reference, Value

_HEAD = struct.Struct(">IIBIB")  # index, timestamp, ttlType, ttl, permissions
_U32 = struct.Struct(">I")


def encode_value(value: Value) -> bytes:
    vtype = value.type.encode("utf-8")
    parts = [
        _HEAD.pack(value.index, value.timestamp, value.ttl_type, value.ttl, value.permissions),
        _U32.pack(len(vtype)),
        vtype,
        _U32.pack(len(value.data)),
        value.data,
        _U32.pack(len(value.references)),
    ]
    for ref in value.references:
        raw = ref.handle.encode("utf-8")
        parts += (_U32.pack(len(raw)), raw, _U32.pack(ref.index))
    return b"".join(parts)


def decode_value(buf: bytes, offset: int = 0) -> tuple[Value, int]:
    """Decode one value at ``offset``; returns it and the offset after it."""
    try:
        index, timestamp, ttl_type, ttl, perms = _HEAD.unpack_from(buf, offset)
        offset += _HEAD.size
        (n,) = _U32.unpack_from(buf, offset)
        offset += 4
        vtype = buf[offset : offset + n]
        if len(vtype) != n:
            raise InvalidValue("Truncated value type")
        offset += n
        (n,) = _U32.unpack_from(buf, offset)
        offset += 4
        data = bytes(buf[offset : offset + n])
        if len(data) != n:
            raise InvalidValue("Truncated value data")
        offset += n
        (count,) = _U32.unpack_from(buf, offset)
        offset += 4
        refs = []
        for _ in range(count):
            (n,) = _U32.unpack_from(buf, offset)
            offset += 4
            handle = buf[offset : offset + n]
            if len(handle) != n:
                raise InvalidValue("Truncated reference")
            offset += n
            (ref_index,) = _U32.unpack_from(buf, offset)
            offset += 4
            refs.append(Reference(handle.decode("utf-8"), ref_index))
        value = Value(
            index=index,
            type=vtype.decode("utf-8"),
            data=data,
            ttl=ttl,
            ttl_type=ttl_type,
            timestamp=timestamp,
            permissions=perms,
            references=tuple(refs),
        )
    except (struct.error, UnicodeDecodeError) as exc:
        raise InvalidValue(f"Malformed value encoding: {exc}") from None
    return value, offset


def encode_values(values: Iterable[Value]) -> bytes:
    """A value list: ``count:u32`` then each value."""
    return join_values([encode_value(v) for v in values])


def join_values(encoded: Sequence[bytes]) -> bytes:
    """The value list of values already encoded one by one (:func:`encode_value`)."""
    return _U32.pack(len(encoded)) + b"".join(encoded)


def decode_values(buf: bytes) -> tuple[Value, ...]:
    try:
        (count,) = _U32.unpack_from(buf, 0)
    except struct.error:
        raise InvalidValue("Malformed value list") from None
    offset = 4
    out = []
    for _ in range(count):
        value, offset = decode_value(buf, offset)
        out.append(value)
    return tuple(out)
