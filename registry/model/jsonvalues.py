"""Values as the Handle JSON API writes them, and parsing of client-supplied JSON values.

Output format is chosen by type (HS_ADMIN → admin, HS_VLIST → vlist, HS_SITE* → site,
HS_PUBKEY → key) and otherwise by the bytes (UTF-8 → string, else base64), exactly like the
reference server. Input accepts a bare string or ``{"format": ..., "value": ...}`` with any of
string, base64, hex, admin, vlist, site, key (format case-insensitive).
"""

from __future__ import annotations

import base64
import calendar
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from registry.errors import HandleError, InvalidValue, ProtocolError
from registry.model import admin as adm
from registry.model.pubkey import pubkey_from_jwk, pubkey_json
from registry.model.site import site_from_bytes, site_to_bytes
from registry.model.values import (
    DEFAULT_TTL,
    HS_ADMIN,
    HS_PUBKEY,
    HS_VLIST,
    PERM_DEFAULT,
    TTL_ABSOLUTE,
    TTL_RELATIVE,
    Reference,
    Value,
    check_value,
    permissions_from_text,
    permissions_to_text,
)


@lru_cache(maxsize=4096)  # values written together share their second: renders repeat it
def iso_time(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def parse_iso_time(text: str) -> int:
    try:
        return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))
    except (TypeError, ValueError):
        raise InvalidValue(f"Invalid timestamp {text!r}: expected YYYY-MM-DDTHH:MM:SSZ") from None


# ---------------------------------------------------------------- output


# The types the reference renders in "site" format.
SITE_TYPES = frozenset({"HS_SITE", "HS_SITE.PREFIX", "HS_NA_DELEGATE"})
# Control characters other than tab, newline and carriage return mark data as binary. In
# UTF-8 they are single bytes (never inside a multi-byte sequence), so the raw bytes are
# checked: deleting them in one C pass costs a small fraction of a regex search.
_BINARY = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])


def data_to_json(vtype: str, data: bytes) -> dict[str, Any]:
    """``{"format": F, "value": V}`` for a value's data."""
    try:
        if vtype == HS_ADMIN:
            a = adm.decode_admin(data)
            return {
                "format": "admin",
                "value": {
                    "handle": a.admin.handle,
                    "index": a.admin.index,
                    "permissions": adm.rights_to_text(a.permissions),
                },
            }
        if vtype == HS_VLIST:
            refs = adm.decode_vlist(data)
            return {
                "format": "vlist",
                "value": [{"handle": r.handle, "index": r.index} for r in refs],
            }
        if vtype in SITE_TYPES:
            return {"format": "site", "value": site_from_bytes(data)}
        if vtype == HS_PUBKEY:
            return pubkey_json(data)
    except InvalidValue:
        pass  # stored bytes that do not parse as their type are shown raw
    if len(data.translate(None, _BINARY)) == len(data):
        try:
            return {"format": "string", "value": data.decode("utf-8")}
        except UnicodeDecodeError:
            pass
    return {"format": "base64", "value": base64.b64encode(data).decode("ascii")}


def value_to_json(value: Value, data: bytes | None = None) -> dict[str, Any]:
    """A value in the reference's key order. ``data`` overrides the stored bytes (unsealed
    secrets)."""
    out: dict[str, Any] = {
        "index": value.index,
        "type": value.type,
        "data": data_to_json(value.type, value.data if data is None else data),
    }
    if value.permissions != PERM_DEFAULT:
        out["permissions"] = permissions_to_text(value.permissions)
    if value.ttl_type == TTL_ABSOLUTE:
        out["ttlType"] = 1
    out["ttl"] = value.ttl
    out["timestamp"] = iso_time(value.timestamp)
    if value.references:
        out["references"] = [{"handle": r.handle, "index": r.index} for r in value.references]
    return out


# ---------------------------------------------------------------- input


def _is_object(obj: Any) -> bool:
    """A JSON object: a dict (checked first: the ABC check costs far more) or a Mapping."""
    return type(obj) is dict or isinstance(obj, Mapping)


def _int(obj: Any, what: str) -> int:
    if type(obj) is int:  # the common case, first (bool is an int, but not of type int)
        return obj
    if isinstance(obj, bool):
        raise ProtocolError(f"{what} must be an integer")
    if isinstance(obj, int):
        return obj
    if isinstance(obj, str):
        try:
            return int(obj.strip(), 10)
        except ValueError:
            pass
    raise ProtocolError(f"{what} must be an integer, got {obj!r}"[:200])


def _str(obj: Any, what: str) -> str:
    if not isinstance(obj, str):
        raise ProtocolError(f"{what} must be a string")
    return obj


def _admin_from_json(obj: Any) -> bytes:
    if not _is_object(obj):
        raise ProtocolError("admin data must be an object with handle, index and permissions")
    handle = _str(obj.get("handle"), "admin handle")
    if not handle:
        raise InvalidValue("admin handle must not be empty")
    index = _int(obj.get("index"), "admin index")
    perms = obj.get("permissions", "111111111111")
    return _admin_bytes(handle, index, _str(perms, "admin permissions"))


@lru_cache(maxsize=1024)
def _admin_bytes(handle: str, index: int, perms: str) -> bytes:
    # Remembered: an import repeats the same few HS_ADMIN values on every record.
    bits = adm.rights_from_text(perms)
    return adm.encode_admin(adm.AdminData(adm.AdminRef(index, handle), bits))


def _vlist_from_json(obj: Any) -> bytes:
    if not isinstance(obj, list):
        raise ProtocolError("vlist data must be a list of {handle, index}")
    refs = []
    for item in obj:
        if not isinstance(item, Mapping):
            raise ProtocolError("vlist entries must be objects with handle and index")
        refs.append(
            adm.AdminRef(
                _int(item.get("index"), "vlist index"), _str(item.get("handle"), "vlist handle")
            )
        )
    return adm.encode_vlist(refs)


def data_from_json(obj: Any) -> bytes:
    """The bytes of a ``data`` field."""
    if isinstance(obj, str):
        return obj.encode("utf-8")
    if not _is_object(obj):
        raise ProtocolError("data must be a string or an object with format and value")
    fmt = obj.get("format")
    if not isinstance(fmt, str):
        raise ProtocolError("data object has no format")
    fmt = fmt.lower()
    if "value" not in obj:
        raise ProtocolError("data object has no value")
    raw = obj["value"]
    if fmt == "string":
        return _str(raw, "string data").encode("utf-8")
    if fmt == "base64":
        try:
            return base64.b64decode(_str(raw, "base64 data"), validate=True)
        except ValueError:  # binascii.Error, or text that is not ASCII
            raise InvalidValue("data is not valid base64") from None
    if fmt == "hex":
        try:
            return bytes.fromhex(_str(raw, "hex data"))
        except ValueError:
            raise InvalidValue("data is not valid hex") from None
    if fmt == "admin":
        return _admin_from_json(raw)
    if fmt == "vlist":
        return _vlist_from_json(raw)
    if fmt == "site":
        if not isinstance(raw, Mapping):
            raise ProtocolError("site data must be an object")
        return site_to_bytes(raw)
    if fmt == "key":
        if isinstance(raw, str):  # a Handle key blob in base64
            try:
                return base64.b64decode(raw, validate=True)
            except ValueError:  # binascii.Error, or text that is not ASCII
                raise InvalidValue("key data is neither a JWK nor valid base64") from None
        if not isinstance(raw, Mapping):
            raise ProtocolError("key data must be a JWK object")
        return pubkey_from_jwk(raw)
    raise ProtocolError(f"Unknown data format {fmt!r}"[:200])


def value_data(raw: Any, index: int) -> bytes:
    """The bytes of value ``index``'s ``data`` field; errors name the value."""
    if type(raw) is str:
        return raw.encode("utf-8")
    try:
        return data_from_json(raw)
    except HandleError as exc:
        exc.message = f"Value {index}: {exc.message}"
        raise


def value_from_json(obj: Any, keep_timestamp: bool = False, default_timestamp: int = 0) -> Value:
    """Parse one client value. Timestamps are the server's and are ignored, except when
    ``keep_timestamp`` (restoring an export); a value without one (or ignoring it) gets
    ``default_timestamp``."""
    if not _is_object(obj):
        raise ProtocolError("Each value must be a JSON object")
    if "index" not in obj:
        raise ProtocolError("Value has no index")
    index = _int(obj["index"], "index")
    if index <= 0:
        raise InvalidValue("Value indexes must be positive")
    vtype = _str(obj.get("type"), f"type of value {index}")
    if "data" not in obj:
        raise ProtocolError(f"Value {index} has no data")
    data = value_data(obj["data"], index)
    ttl = _int(obj["ttl"], "ttl") if "ttl" in obj else DEFAULT_TTL
    ttl_type = _int(obj["ttlType"], "ttlType") if "ttlType" in obj else TTL_RELATIVE
    perms = obj.get("permissions")
    permissions = (
        PERM_DEFAULT if perms is None else permissions_from_text(_str(perms, "permissions"))
    )
    refs_obj = obj.get("references") or []
    if not isinstance(refs_obj, list):
        raise ProtocolError("references must be a list")
    refs = []
    for r in refs_obj:
        if not isinstance(r, Mapping):
            raise ProtocolError("references must be objects with handle and index")
        refs.append(
            Reference(
                _str(r.get("handle"), "reference handle"), _int(r.get("index"), "reference index")
            )
        )
    stamp = obj.get("timestamp") if keep_timestamp else None
    timestamp = parse_iso_time(stamp) if stamp is not None else 0
    value = Value(
        index, vtype, data, ttl, ttl_type, timestamp or default_timestamp, permissions, tuple(refs)
    )
    check_value(value)
    return value
