"""Pure model tests: identifiers, JSON values, HS_ADMIN rights, sealing, throttling, config."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from registry import authz
from registry.auth import parse_identity
from registry.authz import Principal
from registry.bootstrap import prefix_values
from registry.errors import InvalidHandle, InvalidValue, ProtocolError
from registry.model import admin as adm
from registry.model.filters import ValueFilter
from registry.model.identifiers import ancestors, handle_key, is_within, parse
from registry.model.jsonvalues import value_from_json, value_to_json
from registry.model.values import HS_ADMIN, Value
from registry.secrets import Sealer
from registry.store.base import Record
from resolver.config import ConfigError, load, write_initial


def test_handle_key_folds_ascii_only() -> None:
    assert handle_key("88.118.8/abc") == "88.118.8/ABC"
    assert handle_key("88.118.8/ä") == "88.118.8/ä"  # no Unicode folding


@pytest.mark.parametrize(
    "text", ["", "noslash", "/x", "88..1/x", "88.118./x", "a" * 2049 + "/x", "88.1/a\x00b"]
)
def test_invalid_identifiers(text: str) -> None:
    with pytest.raises(InvalidHandle):
        parse(text)


def test_parse_parts() -> None:
    ident = parse("0.NA/88.118.8")
    assert ident.is_prefix_handle and ident.local == "88.118.8"
    ident = parse("88.118.8/a/b")
    assert (ident.prefix, ident.local, ident.na_handle) == ("88.118.8", "a/b", "0.NA/88.118.8")
    assert ancestors("88.118.8") == ["88.118", "88"]
    assert is_within("88.118.8", "88.118") and not is_within("88.1180", "88.118")


def test_value_json_round_trip_and_formats() -> None:
    raw = {
        "index": "7",
        "type": "HS_ADMIN",
        "data": {
            "format": "ADMIN",
            "value": {"handle": "0.NA/88.118.8", "index": "300", "permissions": "011111110011"},
        },
        "ttl": 60,
        "permissions": "1010",
        "references": [{"handle": "88.118.8/r", "index": 1}],
    }
    value = value_from_json(raw)
    out = value_to_json(value)
    assert list(out) == ["index", "type", "data", "permissions", "ttl", "timestamp", "references"]
    assert out["data"]["value"] == {
        "handle": "0.NA/88.118.8",
        "index": 300,
        "permissions": "011111110011",
    }
    assert value_from_json({**out, "index": 7}).same_content(value)
    hexed = value_from_json(
        {"index": 1, "type": "X", "data": {"format": "hex", "value": "DEADBEEF"}}
    )
    assert value_to_json(hexed)["data"] == {"format": "base64", "value": "3q2+7w=="}


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (b"plain text", "string"),
        (b"tab\tnewline\ncr\r", "string"),  # the three controls text may hold
        ("产品 · ü".encode(), "string"),
        (b"nul\x00", "base64"),
        (b"\x1f", "base64"),
        (b"del\x7f", "base64"),
        (b"\xff\xfe not UTF-8", "base64"),
        ("\u0085 is C1, not C0".encode(), "string"),  # only C0 controls and DEL are binary
    ],
)
def test_data_is_text_unless_binary(data: bytes, fmt: str) -> None:
    out = value_to_json(Value(1, "X", data))["data"]
    assert out["format"] == fmt
    if fmt == "string":
        assert out["value"] == data.decode("utf-8")
    else:
        assert base64.b64decode(out["value"]) == data


@pytest.mark.parametrize(
    ("obj", "error"),
    [
        ({"index": 0, "type": "URL", "data": "x"}, InvalidValue),
        ({"type": "URL", "data": "x"}, ProtocolError),
        ({"index": 1, "type": "URL", "data": {"value": "x"}}, ProtocolError),
        ({"index": 1, "type": "URL", "data": {"format": "bogus", "value": "x"}}, ProtocolError),
        ({"index": 1, "type": "URL", "data": "x", "permissions": "12"}, InvalidValue),
        ({"index": 1, "type": "URL", "data": {"format": "base64", "value": "!!"}}, InvalidValue),
        # Text that is not ASCII is not base64 either (it was a 500, not a 400).
        ({"index": 1, "type": "URL", "data": {"format": "base64", "value": "é"}}, InvalidValue),
        ({"index": 1, "type": "HS_PUBKEY", "data": {"format": "key", "value": "é"}}, InvalidValue),
        ({"index": True, "type": "URL", "data": "x"}, ProtocolError),
    ],
)
def test_bad_values(obj: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        value_from_json(obj)


def test_type_filters() -> None:
    def v(t: str) -> Value:
        return Value(1, t, b"")

    def matches(value: Value, types: tuple[str, ...]) -> bool:
        return ValueFilter(types).matches(value)

    assert matches(v("URL"), ("url",))
    assert not matches(v("URL.alt"), ("URL",))
    assert matches(v("URL.alt"), ("URL.",))
    assert matches(v("URL"), ("URL.",))
    assert not matches(v("URLX"), ("URL.",))


def _admin(handle: str, index: int, bits: int) -> Value:
    return Value(100, HS_ADMIN, adm.encode_admin(adm.AdminData(adm.AdminRef(index, handle), bits)))


def test_rights_from_prefix_and_own_admins() -> None:
    ent = Principal(adm.AdminRef(300, "0.NA/88.118.8"))
    other = Principal(adm.AdminRef(300, "0.NA/88.118.9"))
    records = {
        handle_key("0.NA/88.118.8"): Record("0.NA/88.118.8", tuple(prefix_values("88.118.8", "s"))),
        handle_key("88.118.8/x"): Record(
            "88.118.8/x", (_admin("0.NA/88.118.9", 300, adm.MODIFY_VALUE),)
        ),
    }
    ident = parse("88.118.8/x")
    assert authz.rights_over(ident, records, ent).may(adm.DELETE_HANDLE)
    assert authz.rights_over(ident, records, ent).may(adm.ADD_HANDLE)
    theirs = authz.rights_over(ident, records, other)
    assert theirs.may(adm.MODIFY_VALUE)
    assert not theirs.may(adm.DELETE_HANDLE) and not theirs.may(adm.ADD_HANDLE)
    assert not authz.rights_over(parse("88.118.9/x"), records, ent).may(adm.ADD_HANDLE)
    # Derived prefixes: creating 0.NA/88.118.8.1 needs "add derived prefix" in 0.NA/88.118.8.
    assert authz.rights_over(parse("0.NA/88.118.8.1"), records, ent).may(adm.ADD_HANDLE)
    assert not authz.rights_over(parse("0.NA/88.118.8.1"), records, other).may(adm.ADD_HANDLE)


def test_parse_identity() -> None:
    assert parse_identity("300:0.NA/88.118.8") == adm.AdminRef(300, "0.NA/88.118.8")
    assert parse_identity("0.NA/88.118.8") == adm.AdminRef(0, "0.NA/88.118.8")


def test_sealing(tmp_path: Path) -> None:
    sealer = Sealer.load_or_create(tmp_path)
    sealed = sealer.seal(b"secret")
    assert b"secret" not in sealed and Sealer.is_sealed(sealed)
    assert sealer.unseal(sealed) == b"secret"
    assert Sealer.load_or_create(tmp_path).unseal(sealed) == b"secret"  # same key reloaded
    assert (tmp_path / "secrets.key").stat().st_mode & 0o777 == 0o600


def test_config_precedence(tmp_path: Path) -> None:
    write_initial(tmp_path, "88.118", "n")
    assert load(tmp_path, env={}).http == "127.0.0.1:8000"
    env = {"IDNODE_HTTP": "127.0.0.1:9000", "IDNODE_WORKERS": "3"}
    assert load(tmp_path, env=env).http == "127.0.0.1:9000"
    config = load(tmp_path, {"http": "127.0.0.1:9100"}, env=env)
    assert (config.http, config.workers) == ("127.0.0.1:9100", 3)
    with pytest.raises(ConfigError):
        load(tmp_path, {"http": "nonsense"}, env={})
    with pytest.raises(ConfigError):
        load(tmp_path / "missing", env={})
