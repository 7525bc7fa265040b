"""HS_ADMIN and HS_VLIST data: who may do what to a record.

HS_ADMIN data is ``u16 permissions, bytes admin handle, i32 admin index``; the 12 permission
bits are written in JSON as a 12-character string, most significant bit first.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from registry.errors import InvalidValue

ADD_HANDLE = 0x001
DELETE_HANDLE = 0x002
ADD_DERIVED_PREFIX = 0x004
DELETE_DERIVED_PREFIX = 0x008
MODIFY_VALUE = 0x010
REMOVE_VALUE = 0x020
ADD_VALUE = 0x040
MODIFY_ADMIN = 0x080
REMOVE_ADMIN = 0x100
ADD_ADMIN = 0x200
READ_VALUE = 0x400
LIST_HANDLES = 0x800
ALL_RIGHTS = 0xFFF

RIGHT_NAMES = {
    ADD_HANDLE: "add handle",
    DELETE_HANDLE: "delete handle",
    ADD_DERIVED_PREFIX: "add derived prefix",
    DELETE_DERIVED_PREFIX: "delete derived prefix",
    MODIFY_VALUE: "modify value",
    REMOVE_VALUE: "remove value",
    ADD_VALUE: "add value",
    MODIFY_ADMIN: "modify admin",
    REMOVE_ADMIN: "remove admin",
    ADD_ADMIN: "add admin",
    READ_VALUE: "read value",
    LIST_HANDLES: "list handles",
}


@dataclass(frozen=True, slots=True)
class AdminRef:
    """An identity ``index:handle``; index 0 means "any secret/key of the handle"."""

    index: int
    handle: str

    def __str__(self) -> str:
        return f"{self.index}:{self.handle}"


@dataclass(frozen=True, slots=True)
class AdminData:
    admin: AdminRef
    permissions: int


def rights_from_text(text: str) -> int:
    if len(text) != 12 or text.strip("01"):  # twelve characters, all 0 or 1
        raise InvalidValue(f"Invalid admin permissions {text!r}: expected twelve 0/1 digits")
    return int(text, 2)


def rights_to_text(bits: int) -> str:
    return format(bits & ALL_RIGHTS, "012b")


def _read_bytes(data: bytes, offset: int) -> tuple[bytes, int]:
    if offset + 4 > len(data):
        raise InvalidValue("Truncated length field")
    (length,) = struct.unpack_from(">i", data, offset)
    offset += 4
    if length < 0 or offset + length > len(data):
        raise InvalidValue("Length field points past the end of the data")
    return data[offset : offset + length], offset + length


def encode_admin(admin: AdminData) -> bytes:
    handle = admin.admin.handle.encode("utf-8")
    return struct.pack(
        f">Hi{len(handle)}si", admin.permissions & 0xFFFF, len(handle), handle, admin.admin.index
    )


def decode_admin(data: bytes) -> AdminData:
    if len(data) < 2:
        raise InvalidValue("HS_ADMIN data too short")
    (perms,) = struct.unpack_from(">H", data, 0)
    handle, offset = _read_bytes(data, 2)
    if offset + 4 > len(data):
        raise InvalidValue("HS_ADMIN data has no admin index")
    (index,) = struct.unpack_from(">i", data, offset)
    # Old records carry two extra trailing bytes: tolerated.
    try:
        text = handle.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidValue("HS_ADMIN admin handle is not UTF-8") from None
    return AdminData(AdminRef(index, text), perms & ALL_RIGHTS)


def encode_vlist(refs: list[AdminRef]) -> bytes:
    parts = [struct.pack(">i", len(refs))]
    for ref in refs:
        raw = ref.handle.encode("utf-8")
        parts.append(struct.pack(f">i{len(raw)}si", len(raw), raw, ref.index))
    return b"".join(parts)


def decode_vlist(data: bytes) -> list[AdminRef]:
    if len(data) < 4:
        raise InvalidValue("HS_VLIST data too short")
    (count,) = struct.unpack_from(">i", data, 0)
    if count < 0 or count > len(data) // 8:
        raise InvalidValue("HS_VLIST count is out of range")
    offset = 4
    refs = []
    for _ in range(count):
        handle, offset = _read_bytes(data, offset)
        if offset + 4 > len(data):
            raise InvalidValue("HS_VLIST entry has no index")
        (index,) = struct.unpack_from(">i", data, offset)
        offset += 4
        try:
            refs.append(AdminRef(index, handle.decode("utf-8")))
        except UnicodeDecodeError:
            raise InvalidValue("HS_VLIST handle is not UTF-8") from None
    return refs
