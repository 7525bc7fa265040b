"""HS_SITE data (the site record; also the body of a get-site-info reply) ⇄ its JSON form.

Binary, big-endian (handle-native.md "Get site info")::

    u16 data format version, u8 protocol major, u8 minor, u16 serial number,
    u8 primary mask (0x80 primary, 0x40 multi-primary), u8 hash option, bytes hash filter,
    i32 count + (bytes name, bytes value)*                                 attributes
    i32 count + (i32 server id, 16 octets address, bytes public key,
                 i32 count + (u8 type, u8 protocol, i32 port)*)*          servers

JSON, as the reference JSON API prints it (key order kept)::

    {"version":1,"protocolVersion":"2.11","serialNumber":1,"primarySite":true,
     "multiPrimary":false[,"hashOption":0][,"hashFilter":"..."],
     "attributes":[{"name":..,"value":..}],
     "servers":[{"serverId":1,"address":"127.0.0.1",
                 "publicKey":{"format":"key","value":{JWK}},
                 "interfaces":[{"query":true,"admin":true,"protocol":"TCP","port":2641}]}]}

``hashOption`` only when it is not 2 (by whole handle), ``hashFilter`` only when non-empty.
Numbers are read as Handle.Net reads them (version, serial signed 16-bit; protocol bytes,
hash option and numeric protocols signed 8-bit; ids and ports signed 32-bit); writers accept
the signed or the unsigned range of each field. Interface protocols 0-3 are "UDP", "TCP",
"HTTP", "HTTPS", others a number; the type is the bits query (2) and admin (1).

Addresses: 12 zero octets + 4 print as dotted IPv4 (so all zeros is "0.0.0.0"), anything else as
RFC 5952 IPv6 text (``::ffff:`` mapped ones in hex groups, as Handle.Net prints them; Handle.Net
forgets to compress a run of zero groups at the end, idnode compresses it). On input a literal
IPv4 or IPv6 address is required (no host names, no zone); IPv6 text keeps its 16 bytes, where
Java would turn ``::ffff:a.b.c.d`` into the IPv4 form.

:func:`site_from_bytes` never loses bytes: where Handle.Net would print something lossy (text
that is not UTF-8, flag bits the JSON has no member for) it raises :class:`InvalidValue`, and the
caller shows the whole value as base64 as the reference does for records it cannot decode; a
server key is a JWK only when that re-encodes to the same bytes (else ``"base64"``). So
``site_to_bytes(site_from_bytes(b)) == b`` whenever the first call succeeds.

:func:`site_to_bytes` accepts what the reference accepts: every top-level member optional
(defaults: version 1, protocol 2.11, serial 0, not primary, hash option 2, no filter, no
attributes, no servers), attributes also as an object ``{name: value | [values]}``,
``serverList``/``interfaceList`` for ``servers``/``interfaces``, the legacy capitalised member
names, and a public key as ``{"format":"key"|"base64"|"hex"|"string","value":..}`` or a plain
string (its UTF-8 bytes; hex in the legacy form). Each server needs serverId, address and
publicKey; each interface query, admin, protocol and port.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from registry.errors import InvalidValue
from registry.model.pubkey import pubkey_from_jwk, pubkey_json

PRIMARY_SITE = 0x80
MULTI_PRIMARY = 0x40
HASH_BY_PREFIX = 0
HASH_BY_SUFFIX = 1
HASH_BY_ALL = 2
ST_ADMIN = 0x01
ST_QUERY = 0x02
PROTOCOL_NAMES = {0: "UDP", 1: "TCP", 2: "HTTP", 3: "HTTPS"}
_PROTOCOL_CODES = {name: code for code, name in PROTOCOL_NAMES.items()}

_V4_PREFIX = bytes(12)
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})*")
_B64 = re.compile(r"[A-Za-z0-9+/\-_]*={0,2}")


# --- reading ---------------------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise InvalidValue(f"Site record truncated in {what}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str) -> int:
        (value,) = struct.unpack(fmt, self.take(struct.calcsize(fmt), what))
        return int(value)

    def bytes_(self, what: str) -> bytes:
        return self.take(self.unpack(">i", what), what)

    def text(self, what: str) -> str:
        raw = self.bytes_(what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidValue(f"Site record {what} is not UTF-8") from None

    def count(self, what: str, min_item: int) -> int:
        n = self.unpack(">i", what)
        if n < 0 or n * min_item > len(self.data) - self.pos:
            raise InvalidValue(f"Site record {what} is out of range")
        return n


def address_to_text(raw: bytes) -> str:
    """A 16-octet server address as text: dotted IPv4 for 12 zero octets + 4, else RFC 5952."""
    if len(raw) != 16:
        raise InvalidValue("A server address must be 16 octets")
    if raw[:12] == _V4_PREFIX:
        return ".".join(str(b) for b in raw[12:])
    groups = struct.unpack(">8H", raw)
    best_start, best_len, start = -1, 0, -1
    for i, group in enumerate((*groups, 1)):  # the sentinel closes a trailing run
        if group == 0:
            if start < 0:
                start = i
        elif start >= 0:
            if i - start > best_len:
                best_start, best_len = start, i - start
            start = -1
    hexes = [format(g, "x") for g in groups]
    if best_len < 2:
        return ":".join(hexes)
    head = ":".join(hexes[:best_start])
    tail = ":".join(hexes[best_start + best_len :])
    return f"{head}::{tail}"


def _interface_json(kind: int, protocol: int, port: int) -> dict[str, Any]:
    if kind & ~(ST_ADMIN | ST_QUERY) & 0xFF:
        raise InvalidValue(f"Site record interface type {kind} has bits JSON cannot show")
    return {
        "query": bool(kind & ST_QUERY),
        "admin": bool(kind & ST_ADMIN),
        "protocol": PROTOCOL_NAMES.get(protocol, protocol),
        "port": port,
    }


def site_from_bytes(data: bytes) -> dict[str, Any]:
    """The JSON object of HS_SITE data (see the module docstring)."""
    r = _Reader(data)
    version = r.unpack(">h", "version")
    major = r.unpack(">b", "protocol version")
    minor = r.unpack(">b", "protocol version")
    serial = r.unpack(">h", "serial number")
    mask = r.unpack(">B", "primary mask")
    if mask & ~(PRIMARY_SITE | MULTI_PRIMARY):
        raise InvalidValue(f"Site record primary mask {mask:#04x} has bits JSON cannot show")
    hash_option = r.unpack(">b", "hash option")
    hash_filter = r.text("hash filter")
    site: dict[str, Any] = {
        "version": version,
        "protocolVersion": f"{major}.{minor}",
        "serialNumber": serial,
        "primarySite": bool(mask & PRIMARY_SITE),
        "multiPrimary": bool(mask & MULTI_PRIMARY),
    }
    if hash_option != HASH_BY_ALL:
        site["hashOption"] = hash_option
    if hash_filter:
        site["hashFilter"] = hash_filter
    attributes = []
    for _ in range(r.count("attribute count", 8)):
        name = r.text("attribute name")
        attributes.append({"name": name, "value": r.text("attribute value")})
    site["attributes"] = attributes
    servers = []
    for _ in range(r.count("server count", 28)):
        server_id = r.unpack(">i", "server id")
        address = address_to_text(r.take(16, "server address"))
        key = r.bytes_("server public key")
        interfaces = []
        for _ in range(r.count("interface count", 6)):
            kind = r.unpack(">B", "interface type")
            protocol = r.unpack(">b", "interface protocol")
            interfaces.append(_interface_json(kind, protocol, r.unpack(">i", "interface port")))
        servers.append(
            {
                "serverId": server_id,
                "address": address,
                "publicKey": pubkey_json(key),
                "interfaces": interfaces,
            }
        )
    site["servers"] = servers
    if r.pos != len(r.data):
        raise InvalidValue("Site record has trailing bytes")
    return site


# --- writing ---------------------------------------------------------------------------------


def _legacy_keys(obj: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool]:
    """Old site JSON capitalised member names ("ServerList", "Address", "Port", ...)."""
    if any(k in obj for k in ("ServerList", "Address", "Port")):
        return {
            (k[:1].lower() + k[1:] if isinstance(k, str) else k): v for k, v in obj.items()
        }, True
    return obj, False


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidValue(f"{what} must be a JSON object")
    return value


def _int(value: Any, what: str, bits: int) -> int:
    """A JSON integer (or a decimal string, as Gson allows) in the signed or unsigned range."""
    if isinstance(value, bool):
        raise InvalidValue(f"{what} must be a number")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value.strip()):
        value = int(value.strip())
    if not isinstance(value, int):
        raise InvalidValue(f"{what} must be an integer")
    if not -(1 << (bits - 1)) <= value < (1 << bits):
        raise InvalidValue(f"{what} {value} does not fit in {bits} bits")
    return value & ((1 << bits) - 1)


def _bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidValue(f"{what} must be true or false")


def _utf8(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidValue(f"{what} must be a string")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValue(f"{what} is not valid Unicode text") from None


def _field(raw: bytes) -> bytes:
    return struct.pack(">i", len(raw)) + raw


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidValue(f"{what} must be a JSON array")
    return value


def _attributes(value: Any) -> list[tuple[bytes, bytes]]:
    out = []
    if isinstance(value, Mapping):
        for name, item in value.items():
            for text in item if isinstance(item, list) else [item]:
                out.append((_utf8(name, "Attribute name"), _utf8(text, f"Attribute {name!r}")))
        return out
    for item in _list(value, "attributes"):
        att = _object(item, "An attribute")
        if "name" not in att or "value" not in att:
            raise InvalidValue("An attribute needs a name and a value")
        out.append((_utf8(att["name"], "Attribute name"), _utf8(att["value"], "Attribute value")))
    return out


def parse_address(text: Any) -> bytes:
    """A literal IPv4 or IPv6 address as the 16 octets of a site record."""
    if not isinstance(text, str) or not text:
        raise InvalidValue("A server address must be a non-empty string")
    literal = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    if "%" in literal:
        raise InvalidValue(f"Server address {text!r} must not have a zone")
    try:
        if ":" in literal:
            return ipaddress.IPv6Address(literal).packed
        return _V4_PREFIX + ipaddress.IPv4Address(literal).packed
    except ValueError:
        raise InvalidValue(f"Server address {text!r} is not an IP address") from None


def _decode_base64(text: str, what: str) -> bytes:
    compact = "".join(text.split())
    if _B64.fullmatch(compact) is None or len(compact.rstrip("=")) % 4 == 1:
        raise InvalidValue(f"{what} is not valid base64")
    body = compact.rstrip("=").replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidValue(f"{what} is not valid base64") from None


def _decode_hex(text: str, what: str) -> bytes:
    if _HEX.fullmatch(text) is None:
        raise InvalidValue(f"{what} is not valid hex")
    return bytes.fromhex(text)


def _public_key(value: Any, legacy: bool) -> bytes:
    what = "Server publicKey"
    if isinstance(value, str):
        return _decode_hex(value, what) if legacy else _utf8(value, what)
    obj = _object(value, what)
    fmt, data = obj.get("format"), obj.get("value")
    if not isinstance(fmt, str):
        raise InvalidValue(f"{what} needs a format")
    fmt = fmt.lower()
    if fmt == "key":
        return pubkey_from_jwk(_object(data, f"{what} value"))
    if not isinstance(data, str):
        raise InvalidValue(f"{what} value must be a string for format {fmt!r}")
    if fmt == "base64":
        return _decode_base64(data, what)
    if fmt == "hex":
        return _decode_hex(data, what)
    if fmt == "string":
        return _utf8(data, what)
    raise InvalidValue(f"{what} format must be key, base64, hex or string, not {fmt!r}")


def _interface(value: Any) -> bytes:
    obj, _ = _legacy_keys(_object(value, "An interface"))
    for name in ("query", "admin", "protocol", "port"):
        if name not in obj:
            raise InvalidValue(f"An interface needs {name!r}")
    kind = (ST_QUERY if _bool(obj["query"], "Interface query") else 0) | (
        ST_ADMIN if _bool(obj["admin"], "Interface admin") else 0
    )
    protocol = obj["protocol"]
    if isinstance(protocol, str) and protocol in _PROTOCOL_CODES:
        code = _PROTOCOL_CODES[protocol]
    else:
        try:
            code = _int(protocol, "Interface protocol", 8)
        except InvalidValue:
            raise InvalidValue(
                f"Interface protocol must be UDP, TCP, HTTP, HTTPS or a number, not {protocol!r}"
            ) from None
    return struct.pack(">BBI", kind, code, _int(obj["port"], "Interface port", 32))


def _server(value: Any) -> bytes:
    obj, legacy = _legacy_keys(_object(value, "A server"))
    for name in ("serverId", "address", "publicKey"):
        if name not in obj:
            raise InvalidValue(f"A server needs {name!r}")
    interfaces = obj.get("interfaces", obj.get("interfaceList"))
    items = [_interface(i) for i in _list(interfaces, "interfaces")]
    return b"".join(
        [
            struct.pack(">I", _int(obj["serverId"], "serverId", 32)),
            parse_address(obj["address"]),
            _field(_public_key(obj["publicKey"], legacy)),
            struct.pack(">i", len(items)),
            *items,
        ]
    )


def _protocol_version(value: Any) -> tuple[int, int]:
    if not isinstance(value, str) or not re.fullmatch(r"[+-]?[0-9]+\.[+-]?[0-9]+", value):
        raise InvalidValue(f"protocolVersion must look like '2.11', not {value!r}")
    major, minor = value.split(".")
    return _int(major, "protocolVersion", 8), _int(minor, "protocolVersion", 8)


def site_to_bytes(obj: Mapping[str, Any]) -> bytes:
    """HS_SITE data from its JSON object (see the module docstring)."""
    site, _ = _legacy_keys(_object(obj, "A site"))
    major, minor = _protocol_version(site.get("protocolVersion", "2.11"))
    mask = (PRIMARY_SITE if _bool(site.get("primarySite", False), "primarySite") else 0) | (
        MULTI_PRIMARY if _bool(site.get("multiPrimary", False), "multiPrimary") else 0
    )
    hash_filter = site.get("hashFilter")
    attributes = _attributes(site.get("attributes"))
    servers = site.get("servers", site.get("serverList"))
    encoded_servers = [_server(s) for s in _list(servers, "servers")]
    parts = [
        struct.pack(
            ">HBBHBB",
            _int(site.get("version", 1), "version", 16),
            major,
            minor,
            _int(site.get("serialNumber", 0), "serialNumber", 16),
            mask,
            _int(site.get("hashOption", HASH_BY_ALL), "hashOption", 8),
        ),
        _field(b"" if hash_filter is None else _utf8(hash_filter, "hashFilter")),
        struct.pack(">i", len(attributes)),
        *(_field(name) + _field(text) for name, text in attributes),
        struct.pack(">i", len(encoded_servers)),
        *encoded_servers,
    ]
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class Interface:
    """One way to reach a server: ``protocol`` ("UDP", "TCP", "HTTP" or "HTTPS"), ``port``,
    and whether it answers queries and administration requests."""

    protocol: str
    port: int
    query: bool = True
    admin: bool = True


def single_server_site(
    address: str,
    interfaces: Sequence[Interface],
    attributes: Sequence[tuple[str, str]] = (),
    public_key: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON form of a primary site with one server (id 1) at ``address``: what a node
    publishes about itself (get-site-info, the top-level's HS_SITE of a prefix).
    ``public_key``: the server's JWK (None: no ``publicKey`` member)."""
    server: dict[str, Any] = {"serverId": 1, "address": address}
    if public_key is not None:
        server["publicKey"] = {"format": "key", "value": dict(public_key)}
    server["interfaces"] = [
        {"query": i.query, "admin": i.admin, "protocol": i.protocol, "port": i.port}
        for i in interfaces
    ]
    return {
        "version": 1,
        "protocolVersion": "2.11",
        "serialNumber": 1,
        "primarySite": True,
        "multiPrimary": False,
        "attributes": [{"name": name, "value": value} for name, value in attributes],
        "servers": [server],
    }
