"""Value, HS_ADMIN, HS_VLIST, HS_SITE and HS_PUBKEY codecs against the captured native vectors.

Every value in every reply (and create request) of ``tests/vectors/handle-native`` is cut out of
the message bytes by this file's own reader of the resolution body (handle-native.md §5), checked
against the vector's decoded fields, and must re-encode to the very same bytes.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.errors import InvalidValue
from registry.model import admin, wire
from registry.model.pubkey import (
    EC_PUB_KEY,
    ED25519_PUB_KEY,
    pubkey_from_jwk,
    pubkey_json,
    pubkey_to_jwk,
    pubkey_type,
)
from registry.model.site import address_to_text, parse_address, site_from_bytes, site_to_bytes
from registry.model.values import Reference, Value

VECTORS = Path(__file__).resolve().parent / "vectors" / "handle-native"

OP_RESOLUTION = 1
OP_GET_SITE_INFO = 2
OP_CREATE_HANDLE = 100
RC_SUCCESS = 1
FLAG_RD = 0x00800000
DIGEST_SIZES = {1: 16, 2: 20, 3: 32}

# handle-rest-observed.md §3: GET /api/handles/0.NA/88.118.8 on the same reference server.
REST_SITE: dict[str, Any] = json.loads(
    '{"version":1,"protocolVersion":"2.11","serialNumber":1,"primarySite":true,'
    '"multiPrimary":false,"attributes":[{"name":"desc","value":"hdlpeer local reference server"}'
    '],"servers":[{"serverId":1,"address":"127.0.0.1","publicKey":{"format":"key","value":{'
    '"kty":"RSA","n":"04-igQG8riZYeTea3IRYRAtcIPFwTSzOkDWplmUVZXoDBSyqW4i23Dr0NcUFLHrYluAnk2vM2f'
    "ToWastZMIRm5vycm5De_8rkmncZUrXvxV106bWkVQla-vyqVTlVivevU1BN58d3cEfRyhmCe5_yYR4vlGnXojQMTjXlq"
    "6UqsjwyvN76ijg4zF4jciBbxjb2ZxTA0bZKZwX4972YkcKjBeDV9xFlOfcHv3k9tEpFm0kcJiyz_3SzMlQWhZbmk7Tfth"
    "2x6K16oW_7aGUe1W9RNDMN4ny_EEHOBlQKqLwLVXFdwqNSU2Rv1jFIQux_YjkRb4DF-Rt_sWDUOyxb7wshw"
    '","e":"AQAB"}},"interfaces":[{"query":true,"admin":true,"protocol":"TCP","port":2641},'
    '{"query":true,"admin":false,"protocol":"UDP","port":2641},'
    '{"query":true,"admin":true,"protocol":"HTTP","port":8000}]}]}'
)
REST_PUBKEY_301: dict[str, Any] = {
    "kty": "RSA",
    "n": "4Ueiu550TbZpYLsMm1hz0roiG0j_IpSBe69gJtYipVYjiHuxLAm5ST9ilLeccTMUPygnEbH9R7a-DiLBJRQJZI63"
    "s3fGYR6-Wsva-9zbQWzH1PSIwjPdGl00GnNP_kr5VvaPmNywlbpMykj8WGV7azgWBnpFT02MAINV94gZzFrpz6gCnitU"
    "ydcyeNH_qDQqppFebkcIItL0SBHXeCmMoAEhlnkKlUQcGjfWibf6pBXUHybHI1SGpUbnrYTBJM37fL5luHVhgwhIRpLET"
    "aqvigqJ_1nOYbhAarvZy76weBsi_J31QlIBrYWaEQYaP_z4CL16I8mqS1ldIbWDNivH7w",
    "e": "AQAB",
}
REST_ADMIN_100 = {"handle": "0.NA/88.118.8", "index": 300, "permissions": "111111111111"}


# --- reading the vectors ---------------------------------------------------------------------


@dataclass(frozen=True)
class VectorValue:
    where: str
    raw: bytes  # the whole encoded value, as cut out of the message
    decoded: dict[str, Any]  # the vector's own decode of it


def _messages() -> list[tuple[str, bytes, dict[str, Any]]]:
    """(where, message without envelope, the vector's decode) for each complete message."""
    out = []
    for path in sorted(VECTORS.glob("[0-9]*.json")):
        for i, msg in enumerate(json.loads(path.read_text())["messages"]):
            where = f"{path.stem}#{i}"
            if "reassembled" in msg:
                out.append((where, bytes.fromhex(msg["reassembled"]["hex"]), msg["reassembled"]))
            elif "header" in msg.get("decoded", {}):
                out.append((where, bytes.fromhex(msg["hex"])[20:], msg))
    return out


def _body(message: bytes) -> tuple[int, int, bytes] | None:
    """(op code, response code, body without any request digest), if the header is sane."""
    if len(message) < 24:
        return None
    op, rc, flags = struct.unpack_from(">iiI", message, 0)
    (length,) = struct.unpack_from(">i", message, 20)
    if length < 0 or 24 + length > len(message):
        return None
    body = message[24 : 24 + length]
    if flags & FLAG_RD and body:
        if body[0] == 0:
            (n,) = struct.unpack_from(">i", body, 1)
            body = body[5 + n :]
        else:
            body = body[1 + DIGEST_SIZES[body[0]] :]
    return op, rc, body


def _collect() -> tuple[list[VectorValue], list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    values: list[VectorValue] = []
    site_bodies: list[tuple[str, bytes]] = []
    dh_keys: list[tuple[str, bytes]] = []
    for where, message, vec in _messages():
        parsed = _body(message)
        if parsed is None:
            continue
        op, rc, body = parsed
        decoded_body = vec["decoded"].get("body", {})
        if (op, rc) in ((OP_RESOLUTION, RC_SUCCESS), (OP_CREATE_HANDLE, 0)):
            expected = decoded_body.get("values")
            if expected is None:
                continue
            (hlen,) = struct.unpack_from(">i", body, 0)
            offset = 4 + hlen
            (count,) = struct.unpack_from(">i", body, offset)
            offset += 4
            assert count == len(expected), where
            for dec in expected:
                start = offset
                _, offset = wire.decode_value(body, offset)
                values.append(VectorValue(f"{where}/{dec['index']}", body[start:offset], dec))
            assert offset == len(body), f"{where}: bytes left after the values"
        elif (op, rc) == (OP_GET_SITE_INFO, RC_SUCCESS):
            site_bodies.append((where, body))
        if "exchange_public_key" in decoded_body:
            dh_keys.append((where, bytes.fromhex(decoded_body["exchange_public_key"]["hex"])))
        server_dh = decoded_body.get("data", {})
        if isinstance(server_dh, dict) and "server_dh_public_key" in server_dh:
            dh_keys.append((where, bytes.fromhex(server_dh["hex"])[4:]))  # after i32 cipher
    return values, site_bodies, dh_keys


VALUES, SITE_REPLIES, DH_KEYS = _collect()


def _of_type(vtype: str) -> list[VectorValue]:
    return [v for v in VALUES if v.decoded["type"] == vtype]


def _ids(items: list[VectorValue]) -> list[str]:
    return [v.where for v in items]


def _data(v: VectorValue) -> bytes:
    return bytes.fromhex(v.decoded["data"]["hex"])


def test_vectors_are_self_contained_and_found() -> None:
    assert VECTORS.is_dir()
    assert sum(p.stat().st_size for p in VECTORS.iterdir()) < 2 * 1024 * 1024
    assert len(VALUES) == 85
    counts = {t: len(_of_type(t)) for t in ("HS_ADMIN", "HS_SITE", "HS_PUBKEY", "HS_VLIST")}
    assert counts == {"HS_ADMIN": 26, "HS_SITE": 4, "HS_PUBKEY": 3, "HS_VLIST": 4}
    assert len(SITE_REPLIES) == 3
    assert len(DH_KEYS) == 2


# --- wire values -----------------------------------------------------------------------------


@pytest.mark.parametrize("vv", VALUES, ids=_ids(VALUES))
def test_value_round_trips_and_matches_vector(vv: VectorValue) -> None:
    value, end = wire.decode_value(vv.raw)
    assert end == len(vv.raw)
    assert wire.encode_value(value) == vv.raw
    dec = vv.decoded
    assert (value.index, value.type, value.timestamp) == (
        dec["index"],
        dec["type"],
        dec["timestamp"],
    )
    assert (value.ttl_type, value.ttl) == (dec["ttl_type"], dec["ttl"])
    assert value.permissions == int(dec["permissions"], 16)
    assert value.data == _data(vv)
    assert value.references == ()


def test_value_list_round_trips() -> None:
    raws = [v.raw for v in VALUES[:5]]
    listed = struct.pack(">I", len(raws)) + b"".join(raws)
    assert wire.encode_values(wire.decode_values(listed)) == listed


# --- HS_ADMIN / HS_VLIST ---------------------------------------------------------------------


@pytest.mark.parametrize("vv", _of_type("HS_ADMIN"), ids=_ids(_of_type("HS_ADMIN")))
def test_hs_admin_round_trips(vv: VectorValue) -> None:
    data = _data(vv)
    record = admin.decode_admin(data)
    assert admin.encode_admin(record) == data
    dec = vv.decoded["data"]["decoded"]
    assert record.admin == admin.AdminRef(dec["admin_index"], dec["admin_handle"])
    assert record.permissions == int(dec["permissions"], 16)
    assert {
        "handle": record.admin.handle,
        "index": record.admin.index,
        "permissions": admin.rights_to_text(record.permissions),
    } == REST_ADMIN_100


@pytest.mark.parametrize("vv", _of_type("HS_VLIST"), ids=_ids(_of_type("HS_VLIST")))
def test_hs_vlist_round_trips(vv: VectorValue) -> None:
    data = _data(vv)
    refs = admin.decode_vlist(data)
    assert admin.encode_vlist(refs) == data
    assert refs and all(r.handle and r.index > 0 for r in refs)


# --- HS_SITE ---------------------------------------------------------------------------------

SITE_CASES = [(v.where, _data(v)) for v in _of_type("HS_SITE")] + SITE_REPLIES


@pytest.mark.parametrize(("where", "data"), SITE_CASES, ids=[w for w, _ in SITE_CASES])
def test_hs_site_round_trips_and_matches_rest_json(where: str, data: bytes) -> None:
    site = site_from_bytes(data)
    assert site == REST_SITE
    assert list(site) == list(REST_SITE)  # key order as the reference prints it
    assert list(site["servers"][0]) == ["serverId", "address", "publicKey", "interfaces"]
    assert site_to_bytes(site) == data
    assert site_to_bytes(json.loads(json.dumps(site))) == data


def _site_data() -> bytes:
    return SITE_CASES[0][1]


def _server_key() -> bytes:
    """The first server's key: its length field is at offset 82 of the vector's site record."""
    (length,) = struct.unpack_from(">i", _site_data(), 82)
    return _site_data()[86 : 86 + length]


def test_site_server_key_is_the_vector_key() -> None:
    key = _server_key()
    assert pubkey_type(key) == "RSA_PUB_KEY" and len(key) == 289
    assert pubkey_json(key) == REST_SITE["servers"][0]["publicKey"]


def test_site_defaults_for_missing_members() -> None:
    assert site_to_bytes({}) == bytes.fromhex("0001020b00000002000000000000000000000000")
    assert site_from_bytes(site_to_bytes({})) == {
        "version": 1,
        "protocolVersion": "2.11",
        "serialNumber": 0,
        "primarySite": False,
        "multiPrimary": False,
        "attributes": [],
        "servers": [],
    }


def test_site_optional_members_appear_when_not_default() -> None:
    site = dict(REST_SITE, hashOption=0, hashFilter="88.", multiPrimary=True, serialNumber=7)
    data = site_to_bytes(site)
    out = site_from_bytes(data)
    assert out == site
    assert list(out)[:8] == [
        "version",
        "protocolVersion",
        "serialNumber",
        "primarySite",
        "multiPrimary",
        "hashOption",
        "hashFilter",
        "attributes",
    ]
    assert data[6] == 0x80 | 0x40 and data[7] == 0


def test_site_accepts_the_reference_input_variants() -> None:
    key_b64 = base64.b64encode(_server_key()).decode()
    variants: list[dict[str, Any]] = [
        {"publicKey": {"format": "base64", "value": key_b64}},
        {
            "publicKey": {
                "format": "BASE64",
                "value": base64.urlsafe_b64encode(_server_key()).decode(),
            }
        },
        {"publicKey": {"format": "hex", "value": _server_key().hex().upper()}},
        {"interfaceList": REST_SITE["servers"][0]["interfaces"], "interfaces": None},
    ]
    for change in variants:
        server = {**REST_SITE["servers"][0], **change}
        if server.get("interfaces", 1) is None:
            del server["interfaces"]
        assert site_to_bytes({**REST_SITE, "servers": [server]}) == _site_data(), change
    as_object = {**REST_SITE, "attributes": {"desc": "hdlpeer local reference server"}}
    assert site_to_bytes(as_object) == _site_data()
    server_list = {k: v for k, v in REST_SITE.items() if k != "servers"}
    assert site_to_bytes({**server_list, "serverList": REST_SITE["servers"]}) == _site_data()
    many = site_from_bytes(site_to_bytes({"attributes": {"alt": ["a", "b"], "x": "y"}}))
    assert many["attributes"] == [
        {"name": "alt", "value": "a"},
        {"name": "alt", "value": "b"},
        {"name": "x", "value": "y"},
    ]
    as_strings = {**REST_SITE, "version": "1", "serialNumber": 1.0, "primarySite": "TRUE"}
    assert site_to_bytes(as_strings) == _site_data()


def test_site_legacy_capitalised_members() -> None:
    server = REST_SITE["servers"][0]
    legacy_server = {
        "ServerId": server["serverId"],
        "Address": server["address"],
        "PublicKey": _server_key().hex(),
        "InterfaceList": [
            {"Query": i["query"], "Admin": i["admin"], "Protocol": i["protocol"], "Port": i["port"]}
            for i in server["interfaces"]
        ],
    }
    legacy = {
        "Version": 1,
        "ProtocolVersion": "2.11",
        "SerialNumber": 1,
        "PrimarySite": True,
        "MultiPrimary": False,
        "Attributes": REST_SITE["attributes"],
        "ServerList": [legacy_server],
    }
    assert site_to_bytes(legacy) == _site_data()


def test_site_string_public_key_and_unknown_protocol_round_trip() -> None:
    site = {
        "servers": [
            {
                "serverId": 2,
                "address": "10.0.0.2",
                "publicKey": "not a key",
                "interfaces": [{"query": False, "admin": False, "protocol": 9, "port": 80}],
            }
        ]
    }
    out = site_from_bytes(site_to_bytes(site))
    server = out["servers"][0]
    assert server["publicKey"] == {
        "format": "base64",
        "value": base64.b64encode(b"not a key").decode(),
    }
    assert server["interfaces"] == [{"query": False, "admin": False, "protocol": 9, "port": 80}]


@pytest.mark.parametrize(
    ("text", "raw_hex"),
    [
        ("127.0.0.1", "0000000000000000000000007f000001"),
        ("0.0.0.0", "00000000000000000000000000000000"),
        ("0.0.0.1", "00000000000000000000000000000001"),  # "::1" is 12 zero octets + 4 too
        ("2001:db8::", "20010db8000000000000000000000000"),
        ("2001:db8::1", "20010db8000000000000000000000001"),
        ("2001:db8:0:1:1:1:1:1", "20010db8000000010001000100010001"),
        ("2001:0:0:1::1", "20010000000000010000000000000001"),
        ("1:0:1:0:1:0:1:0", "00010000000100000001000000010000"),
        ("::ffff:7f00:1", "00000000000000000000ffff7f000001"),
    ],
)
def test_addresses(text: str, raw_hex: str) -> None:
    raw = bytes.fromhex(raw_hex)
    assert address_to_text(raw) == text
    assert parse_address(text) == raw


def test_address_inputs() -> None:
    assert parse_address("[::1]") == parse_address("::1")
    assert parse_address("::ffff:127.0.0.1") == bytes.fromhex("00000000000000000000ffff7f000001")
    assert parse_address("::") == bytes(16)
    assert parse_address("::1") == parse_address("0.0.0.1")  # the wire cannot tell them apart
    for bad in ["", "localhost", "example.org", "1.2.3", "fe80::1%eth0", "1.2.3.4.5", "::g", 5]:
        with pytest.raises(InvalidValue):
            parse_address(bad)


def _site_with(**server_changes: Any) -> dict[str, Any]:
    server = {**REST_SITE["servers"][0], **server_changes}
    return {**REST_SITE, "servers": [{k: v for k, v in server.items() if v is not None}]}


@pytest.mark.parametrize(
    "bad",
    [
        [],
        "site",
        {"protocolVersion": "2"},
        {"protocolVersion": 2.11},
        {"protocolVersion": "2.300"},
        {"version": 70000},
        {"version": True},
        {"serialNumber": "one"},
        {"primarySite": 1},
        {"hashOption": 1.5},
        {"hashFilter": 3},
        {"attributes": [{"name": "desc"}]},
        {"attributes": [["desc", "x"]]},
        {"attributes": "desc"},
        {"servers": {"serverId": 1}},
        {"servers": [5]},
        {"attributes": [{"name": "x", "value": "\ud800"}]},
        _site_with(serverId=None),
        _site_with(address=None),
        _site_with(publicKey=None),
        _site_with(address="example.org"),
        _site_with(serverId=2**32),
        _site_with(publicKey={"format": "base64", "value": "@@@"}),
        _site_with(publicKey={"format": "hex", "value": "abc"}),
        _site_with(publicKey={"format": "admin", "value": {}}),
        _site_with(publicKey={"value": "AAAA"}),
        _site_with(publicKey={"format": "key", "value": {"kty": "RSA", "n": "AQAB"}}),
        _site_with(publicKey={"format": "key", "value": "AAAA"}),
        _site_with(publicKey=5),
        _site_with(interfaces=[{"query": True, "admin": True, "protocol": "tcp", "port": 1}]),
        _site_with(interfaces=[{"query": True, "admin": True, "protocol": "TCP"}]),
        _site_with(interfaces=[{"query": True, "protocol": "TCP", "port": 1}]),
        _site_with(
            interfaces=[{"query": True, "admin": True, "protocol": "TCP", "port": -(2**31) - 1}]
        ),
        _site_with(interfaces=[{"query": True, "admin": True, "protocol": 300, "port": 1}]),
        _site_with(interfaces="TCP"),
    ],
)
def test_site_to_bytes_rejects(bad: Any) -> None:
    base = bad if not isinstance(bad, dict) or "servers" in bad else {**REST_SITE, **bad}
    with pytest.raises(InvalidValue):
        site_to_bytes(base)


def test_site_from_bytes_refuses_what_json_would_lose() -> None:
    data = bytearray(_site_data())
    assert site_from_bytes(bytes(data))
    with pytest.raises(InvalidValue, match="trailing"):
        site_from_bytes(bytes(data) + b"\x00")
    flags = bytearray(data)
    flags[6] |= 0x01  # a primary-mask bit JSON has no member for
    with pytest.raises(InvalidValue):
        site_from_bytes(bytes(flags))
    iface = bytearray(data)
    iface[len(iface) - 18] = 0x07  # first interface type with an unknown bit
    with pytest.raises(InvalidValue):
        site_from_bytes(bytes(iface))
    bad_utf8 = site_to_bytes({"attributes": [{"name": "desc", "value": "é"}]}).replace(
        b"\xc3\xa9", b"\xe9\xff"
    )
    with pytest.raises(InvalidValue, match="UTF-8"):
        site_from_bytes(bad_utf8)


def test_site_key_that_would_not_round_trip_is_base64() -> None:
    key = _server_key()[:-4]  # an RSA blob without Java's 4 trailing zero bytes
    data = site_to_bytes(
        _site_with(publicKey={"format": "base64", "value": base64.b64encode(key).decode()})
    )
    server = site_from_bytes(data)["servers"][0]
    assert server["publicKey"] == {"format": "base64", "value": base64.b64encode(key).decode()}
    assert pubkey_to_jwk(key) == REST_SITE["servers"][0]["publicKey"]["value"]
    assert site_to_bytes(site_from_bytes(data)) == data


# --- HS_PUBKEY -------------------------------------------------------------------------------


@pytest.mark.parametrize("vv", _of_type("HS_PUBKEY"), ids=_ids(_of_type("HS_PUBKEY")))
def test_hs_pubkey_round_trips_via_jwk(vv: VectorValue) -> None:
    data = _data(vv)
    jwk = pubkey_to_jwk(data)
    assert jwk == REST_PUBKEY_301
    assert list(jwk) == ["kty", "n", "e"]
    assert pubkey_from_jwk(jwk) == data
    assert pubkey_json(data) == {"format": "key", "value": REST_PUBKEY_301}
    assert data.endswith(b"\x00\x00\x00\x00") and len(data) == 289


@pytest.mark.parametrize(("where", "blob"), DH_KEYS, ids=[w for w, _ in DH_KEYS])
def test_dh_key_has_no_jwk(where: str, blob: bytes) -> None:
    assert pubkey_type(blob) == "DH_PUB_KEY"
    with pytest.raises(InvalidValue, match="no JWK"):
        pubkey_to_jwk(blob)
    assert pubkey_json(blob) == {"format": "base64", "value": base64.b64encode(blob).decode()}


def _field(raw: bytes) -> bytes:
    return struct.pack(">i", len(raw)) + raw


def _java(n: int) -> bytes:
    return n.to_bytes(n.bit_length() // 8 + 1, "big")


def _b64u(n: int) -> str:
    return (
        base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()
    )


def test_rsa_generated_key_matches_java_layout() -> None:
    numbers = rsa.generate_private_key(65537, 2048).public_key().public_numbers()
    jwk = {"kty": "RSA", "n": _b64u(numbers.n), "e": _b64u(numbers.e)}
    blob = pubkey_from_jwk(jwk)
    expected = (
        _field(b"RSA_PUB_KEY")
        + b"\0\0"
        + _field(_java(numbers.e))
        + _field(_java(numbers.n))
        + bytes(4)
    )
    assert blob == expected
    assert blob[4 + 11 + 2 + 4 + 3 + 4] == 0  # the modulus has its top bit set: sign byte 00
    assert pubkey_to_jwk(blob) == jwk
    assert pubkey_to_jwk(blob + b"extra") == jwk  # trailing bytes are tolerated, as in Java
    assert pubkey_from_jwk({**jwk, "kty": "rsa", "kid": "k1", "use": "sig"}) == blob


@pytest.fixture(scope="module")
def dsa_numbers() -> dsa.DSAPublicNumbers:
    return dsa.generate_private_key(1024).public_key().public_numbers()


def test_dsa_key_layout_and_round_trip(dsa_numbers: dsa.DSAPublicNumbers) -> None:
    params = dsa_numbers.parameter_numbers
    jwk = {
        "kty": "DSA",
        "y": _b64u(dsa_numbers.y),
        "p": _b64u(params.p),
        "q": _b64u(params.q),
        "g": _b64u(params.g),
    }
    blob = pubkey_from_jwk(jwk)
    fields = (params.q, params.p, params.g, dsa_numbers.y)
    assert blob == _field(b"DSA_PUB_KEY") + b"\0\0" + b"".join(_field(_java(v)) for v in fields)
    out = pubkey_to_jwk(blob)
    assert out == jwk and list(out) == ["kty", "y", "p", "q", "g"]
    assert pubkey_json(blob)["format"] == "key"


def test_ed25519_key_round_trip() -> None:
    raw = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode()}
    blob = pubkey_from_jwk(jwk)
    assert blob == _field(ED25519_PUB_KEY.encode()) + b"\0\0" + _field(raw)
    assert pubkey_to_jwk(blob) == jwk
    with pytest.raises(InvalidValue, match="trailing"):
        pubkey_to_jwk(blob + b"\0")


def test_ec_p256_key_round_trip() -> None:
    numbers = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()
    x, y = numbers.x.to_bytes(32, "big"), numbers.y.to_bytes(32, "big")

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    jwk = {"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y)}
    blob = pubkey_from_jwk(jwk)
    assert blob == _field(EC_PUB_KEY.encode()) + b"\0\0" + _field(b"P-256") + _field(
        b"\x04" + x + y
    )
    assert pubkey_to_jwk(blob) == jwk
    off_curve = {**jwk, "y": b64(((numbers.y + 1) % 2**256).to_bytes(32, "big"))}
    with pytest.raises(InvalidValue, match="curve"):
        pubkey_from_jwk(off_curve)
    with pytest.raises(InvalidValue, match="curve"):
        pubkey_to_jwk(blob[:-1] + bytes([blob[-1] ^ 1]))


@pytest.mark.parametrize(
    ("jwk", "message"),
    [
        ({"kty": "RSA", "e": "AQAB"}, "'n'"),
        ({"kty": "RSA", "n": REST_PUBKEY_301["n"]}, "'e'"),
        ({"kty": "RSA", "n": 5, "e": "AQAB"}, "'n'"),
        ({"kty": "RSA", "n": REST_PUBKEY_301["n"] + "!", "e": "AQAB"}, "base64url"),
        ({"kty": "RSA", "n": "A", "e": "AQAB"}, "base64url"),
        ({"kty": "RSA", "n": "AQAB", "e": "AQAB"}, "bits"),
        ({"kty": "RSA", "n": REST_PUBKEY_301["n"], "e": "AA"}, "zero"),
        ({"kty": "RSA", "n": REST_PUBKEY_301["n"], "e": REST_PUBKEY_301["n"]}, "exponent"),
        ({**REST_PUBKEY_301, "d": "AQAB"}, "private"),
        ({**REST_PUBKEY_301, "qi": "AQAB"}, "private"),
        ({"n": REST_PUBKEY_301["n"], "e": "AQAB"}, "kty"),
        ({"kty": "oct", "k": "AQAB"}, "Unsupported"),
        ({"kty": "DSA", "y": "AQAB", "p": "AQAB", "q": "AQAB"}, "'g'"),
        ({"kty": "DSA", "x": "AQAB", "y": "AQAB", "p": "AQAB", "q": "AQAB", "g": "AQ"}, "private"),
        ({"kty": "OKP", "crv": "X25519", "x": "AQAB"}, "Ed25519"),
        ({"kty": "OKP", "crv": "Ed25519", "x": "AQAB"}, "32 bytes"),
        ({"kty": "OKP", "crv": "Ed25519"}, "'x'"),
        ({"kty": "EC", "crv": "P-384", "x": "AQAB", "y": "AQAB"}, "P-256"),
        ({"kty": "EC", "crv": "P-256", "x": "AQAB", "y": "AQAB"}, "32 bytes"),
    ],
)
def test_pubkey_from_jwk_validates(jwk: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        pubkey_from_jwk(jwk)


def test_pubkey_from_jwk_rejects_non_objects() -> None:
    for bad in (None, "RSA", ["kty"], 5):
        with pytest.raises(InvalidValue):
            pubkey_from_jwk(bad)  # type: ignore[arg-type]


def test_pubkey_to_jwk_rejects_broken_blobs() -> None:
    blob = pubkey_from_jwk(REST_PUBKEY_301)
    for bad in (
        b"",
        blob[:3],
        blob[:15],
        blob[:16],
        blob[:30],
        _field(b"RSA_PUB_KEY") + b"\0\0" + _field(b"") + _field(b"\x01"),
    ):
        with pytest.raises(InvalidValue):
            pubkey_to_jwk(bad)
    with pytest.raises(InvalidValue, match="no JWK"):
        pubkey_to_jwk(_field(b"SM2_PUB_KEY") + b"\0\0" + _field(b"\x30"))


# --- properties ------------------------------------------------------------------------------

u32 = st.integers(0, 2**32 - 1)
text = st.text(st.characters(codec="utf-8"), max_size=20)

values_st = st.builds(
    Value,
    index=u32,
    type=text,
    data=st.binary(max_size=300),
    ttl=u32,
    ttl_type=st.integers(0, 255),
    timestamp=u32,
    permissions=st.integers(0, 255),
    references=st.lists(st.builds(Reference, handle=text, index=u32), max_size=3).map(tuple),
)


@given(values_st)
def test_property_value_round_trip(value: Value) -> None:
    raw = wire.encode_value(value)
    assert wire.decode_value(raw) == (value, len(raw))
    assert wire.decode_value(b"\x01\x02" + raw, 2) == (value, len(raw) + 2)


@given(st.lists(values_st, max_size=4))
def test_property_value_list_round_trip(values: list[Value]) -> None:
    assert wire.decode_values(wire.encode_values(values)) == tuple(values)


@given(
    st.builds(admin.AdminRef, index=st.integers(-(2**31), 2**31 - 1), handle=text),
    st.integers(0, 0xFFF),
)
def test_property_admin_round_trip(ref: admin.AdminRef, perms: int) -> None:
    record = admin.AdminData(ref, perms)
    assert admin.decode_admin(admin.encode_admin(record)) == record


@given(
    st.lists(
        st.builds(admin.AdminRef, index=st.integers(-(2**31), 2**31 - 1), handle=text), max_size=5
    )
)
def test_property_vlist_round_trip(refs: list[admin.AdminRef]) -> None:
    assert admin.decode_vlist(admin.encode_vlist(refs)) == refs


DECODERS: list[Callable[[bytes], object]] = [
    wire.decode_value,
    wire.decode_values,
    admin.decode_admin,
    admin.decode_vlist,
    site_from_bytes,
    pubkey_to_jwk,
    pubkey_type,
    pubkey_json,
]


def _only_invalid_value(decoder: Callable[[bytes], object], data: bytes) -> None:
    with contextlib.suppress(InvalidValue):
        decoder(data)


@given(st.sampled_from(DECODERS), st.binary(max_size=600))
def test_property_random_bytes_raise_only_invalid_value(
    decoder: Callable[[bytes], object], data: bytes
) -> None:
    _only_invalid_value(decoder, data)


SEEDS = [_site_data(), _server_key(), *(v.raw for v in VALUES[:6]), *(_data(v) for v in VALUES[:6])]


@st.composite
def mutated(
    draw: st.DrawFn, seeds: list[bytes] = SEEDS, actions: tuple[str, ...] = ("cut", "flip", "grow")
) -> bytes:
    """A vector blob, cut short, extended or with some bytes changed."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(actions))
        if action == "cut":
            del data[draw(st.integers(0, len(data))) :]
        elif action == "grow":
            data += draw(st.binary(min_size=1, max_size=8))
        elif data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@settings(max_examples=300)
@given(st.sampled_from(DECODERS), mutated())
def test_property_mutated_vectors_raise_only_invalid_value(
    decoder: Callable[[bytes], object], data: bytes
) -> None:
    _only_invalid_value(decoder, data)


@settings(max_examples=300)
@given(mutated([_site_data()], ("flip",)))
def test_property_site_json_never_loses_bytes(data: bytes) -> None:
    try:
        site = site_from_bytes(data)
    except InvalidValue:
        return
    assert site_to_bytes(json.loads(json.dumps(site))) == data


@given(st.binary(min_size=16, max_size=16))
def test_property_addresses(raw: bytes) -> None:
    shown = address_to_text(raw)
    assert parse_address(shown) == raw
    if raw[:12] != bytes(12) and raw[:12] != bytes(10) + b"\xff\xff":
        assert shown == ipaddress.IPv6Address(raw).compressed


i8, i16, i32 = (st.integers(-(2 ** (b - 1)), 2 ** (b - 1) - 1) for b in (8, 16, 32))

interfaces_st = st.fixed_dictionaries(
    {
        "query": st.booleans(),
        "admin": st.booleans(),
        "protocol": st.one_of(
            st.sampled_from(["UDP", "TCP", "HTTP", "HTTPS"]), i8.filter(lambda p: not 0 <= p <= 3)
        ),
        "port": i32,
    }
)


@st.composite
def sites(draw: st.DrawFn) -> dict[str, Any]:
    """Site JSON in the exact form site_from_bytes prints."""
    site: dict[str, Any] = {
        "version": draw(i16),
        "protocolVersion": f"{draw(i8)}.{draw(i8)}",
        "serialNumber": draw(i16),
        "primarySite": draw(st.booleans()),
        "multiPrimary": draw(st.booleans()),
    }
    hash_option = draw(i8)
    if hash_option != 2:
        site["hashOption"] = hash_option
    hash_filter = draw(text)
    if hash_filter:
        site["hashFilter"] = hash_filter
    site["attributes"] = draw(
        st.lists(st.fixed_dictionaries({"name": text, "value": text}), max_size=3)
    )
    servers = []
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.one_of(st.just(_server_key()), st.binary(max_size=40)))
        servers.append(
            {
                "serverId": draw(i32),
                "address": address_to_text(draw(st.binary(min_size=16, max_size=16))),
                "publicKey": pubkey_json(key),
                "interfaces": draw(st.lists(interfaces_st, max_size=3)),
            }
        )
    site["servers"] = servers
    return site


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(sites())
def test_property_site_json_round_trip(site: dict[str, Any]) -> None:
    data = site_to_bytes(site)
    assert site_from_bytes(data) == site
    assert site_to_bytes(site_from_bytes(data)) == data


json_st = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=10,
)
SITE_KEYS = [
    "version",
    "protocolVersion",
    "serialNumber",
    "primarySite",
    "hashOption",
    "hashFilter",
    "attributes",
    "servers",
]
SERVER_KEYS = ["serverId", "address", "publicKey", "interfaces"]


@given(st.sampled_from(SITE_KEYS + [f"server.{k}" for k in SERVER_KEYS]), json_st)
def test_property_site_to_bytes_bad_members_raise_only_invalid_value(
    member: str, junk: Any
) -> None:
    if member.startswith("server."):
        site = _site_with(**{member.split(".", 1)[1]: junk if junk is not None else 0})
    else:
        site = {**REST_SITE, member: junk}
    with contextlib.suppress(InvalidValue):
        site_to_bytes(site)


@given(
    st.one_of(
        json_st,
        st.dictionaries(
            st.sampled_from(["kty", "n", "e", "crv", "x", "y", "p", "q", "g", "d"]),
            json_st
            | st.sampled_from(
                ["RSA", "EC", "OKP", "DSA", "P-256", "Ed25519", "AQAB", REST_PUBKEY_301["n"]]
            ),
        ),
    )
)
def test_property_pubkey_from_jwk_raises_only_invalid_value(jwk: Any) -> None:
    try:
        blob = pubkey_from_jwk(jwk)
    except InvalidValue:
        return
    assert pubkey_from_jwk(pubkey_to_jwk(blob)) == blob


@settings(max_examples=25, deadline=None)
@given(
    st.integers(512, 4096).flatmap(lambda bits: st.integers(2 ** (bits - 1), 2**bits - 1)),
    # Exponents of up to 64 bits: above 3072-bit moduli OpenSSL (and so the codec) refuses
    # longer ones, which a test of its own covers.
    st.integers(1, 2**64 - 1),
)
def test_property_rsa_numbers_round_trip(n: int, e: int) -> None:
    jwk = {"kty": "RSA", "n": _b64u(n), "e": _b64u(e)}
    blob = pubkey_from_jwk(jwk)
    assert pubkey_to_jwk(blob) == jwk
    assert pubkey_json(blob) == {"format": "key", "value": jwk}


def test_rsa_exponent_longer_than_64_bits_is_refused_above_3072_bits() -> None:
    big = {"kty": "RSA", "n": _b64u(2**4095 + 1), "e": _b64u(2**64)}
    with pytest.raises(InvalidValue, match="too large"):
        pubkey_from_jwk(big)
    small = {"kty": "RSA", "n": _b64u(2**2047 + 1), "e": _b64u(2**64)}
    assert pubkey_to_jwk(pubkey_from_jwk(small)) == small
