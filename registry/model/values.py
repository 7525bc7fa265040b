"""Handle values: the typed items of a record."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from registry.errors import InvalidValue, ValueExists

# Value permission bits (the wire's u8), written in JSON as "1110" (admin read, admin write,
# public read, public write).
PERM_ADMIN_READ = 0x08
PERM_ADMIN_WRITE = 0x04
PERM_PUBLIC_READ = 0x02
PERM_PUBLIC_WRITE = 0x01
PERM_DEFAULT = PERM_ADMIN_READ | PERM_ADMIN_WRITE | PERM_PUBLIC_READ  # "1110"
PERM_SECRET = PERM_ADMIN_READ | PERM_ADMIN_WRITE  # "1100"

TTL_RELATIVE = 0
TTL_ABSOLUTE = 1
DEFAULT_TTL = 86400

# Indexes are 4-byte signed on the wire (handle-native.md §5): a value's is 1 to MAX_INDEX,
# an identity's (HS_ADMIN, HS_VLIST, references) 0 to MAX_INDEX, 0 meaning any index.
MAX_INDEX = 2**31 - 1
MAX_U32 = 2**32 - 1  # ttl and timestamp are 4-byte unsigned in the wire encoding
MAX_VALUES = 2048
MAX_TYPE_BYTES = 255

HS_ADMIN = "HS_ADMIN"
HS_SECKEY = "HS_SECKEY"
HS_PUBKEY = "HS_PUBKEY"
HS_SITE = "HS_SITE"
HS_VLIST = "HS_VLIST"
URL = "URL"


@dataclass(frozen=True, slots=True)
class Reference:
    handle: str
    index: int


@dataclass(frozen=True, slots=True)
class Value:
    """One value of a record. ``data`` is always the raw (wire) bytes."""

    index: int
    type: str
    data: bytes
    ttl: int = DEFAULT_TTL
    ttl_type: int = TTL_RELATIVE
    timestamp: int = 0
    permissions: int = PERM_DEFAULT
    references: tuple[Reference, ...] = field(default=())

    @property
    def public_read(self) -> bool:
        return bool(self.permissions & PERM_PUBLIC_READ)

    def same_content(self, other: Value) -> bool:
        """Equal in everything a client sets (the timestamp is the server's)."""
        return (
            self.index == other.index
            and self.type == other.type
            and self.data == other.data
            and self.ttl == other.ttl
            and self.ttl_type == other.ttl_type
            and self.permissions == other.permissions
            and self.references == other.references
        )


def type_key(value_type: str) -> str:
    """Types match ignoring ASCII case."""
    return value_type.encode("utf-8").upper().decode("utf-8")


def is_type(value_type: str, key: str) -> bool:
    """``type_key(value_type) == key`` (``key`` upper-case ASCII), without folding types
    of another length: ASCII folding keeps the length, so only those can match."""
    return value_type == key or (len(value_type) == len(key) and type_key(value_type) == key)


def permissions_from_text(text: str) -> int:
    """``"1110"`` → 0x0E. Raises :class:`InvalidValue` on anything but four 0/1 digits."""
    if len(text) != 4 or text.strip("01"):  # four characters, all 0 or 1
        raise InvalidValue(f"Invalid permissions {text!r}: expected four 0/1 digits like '1110'")
    return int(text, 2)


def permissions_to_text(bits: int) -> str:
    return format(bits & 0x0F, "04b")


def check_value(value: Value) -> None:
    """Validate one value's fields (ranges and sizes), raising :class:`InvalidValue`."""
    if value.index <= 0:
        raise InvalidValue("Value indexes must be positive")
    if value.index > MAX_INDEX:
        raise InvalidValue(f"Value index {value.index} is too large")
    if not value.type:
        raise InvalidValue(f"Value {value.index} has an empty type")
    if len(value.type.encode("utf-8")) > MAX_TYPE_BYTES:
        raise InvalidValue(f"Value {value.index} has a type longer than {MAX_TYPE_BYTES} bytes")
    if not 0 <= value.ttl <= MAX_U32:
        raise InvalidValue(f"Value {value.index} has an out-of-range ttl")
    if value.ttl_type not in (TTL_RELATIVE, TTL_ABSOLUTE):
        raise InvalidValue(f"Value {value.index} has an unknown ttl type")
    if not 0 <= value.timestamp <= MAX_U32:
        raise InvalidValue(f"Value {value.index} has an out-of-range timestamp")
    for ref in value.references:
        check_identity_index(ref.index, f"Value {value.index}: reference index")


def check_identity_index(index: int, what: str) -> int:
    """``index`` if it can name an identity's index (0 to :data:`MAX_INDEX`), else
    :class:`InvalidValue` saying ``what`` it is."""
    if not 0 <= index <= MAX_INDEX:
        raise InvalidValue(f"{what} {index} is out of range (0 to {MAX_INDEX})"[:200])
    return index


def check_unique(values: Sequence[Value]) -> None:
    """A record's values: distinct indexes, at most :data:`MAX_VALUES` of them."""
    seen: set[int] = set()
    for v in values:
        if v.index in seen:
            raise ValueExists(f"Index conflict for {v.index}")
        seen.add(v.index)
    if len(values) > MAX_VALUES:
        raise InvalidValue(f"A record holds at most {MAX_VALUES} values")


def stamped(value: Value, timestamp: int) -> Value:
    """``value`` with ``timestamp`` (what ``dataclasses.replace`` does, several times faster)."""
    return Value(
        value.index,
        value.type,
        value.data,
        value.ttl,
        value.ttl_type,
        timestamp,
        value.permissions,
        value.references,
    )


def restored(value: Value, now: int) -> Value:
    """A value restored from an export as it is written at ``now``: it keeps the timestamp
    it carries, if any."""
    return value if value.timestamp else stamped(value, now)
