"""The DNS records of an answer's values and of the zone apex (resolver/dns/records.py),
each sent through dnspython's wire format and read back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote_to_bytes

import dns.message
import dns.name
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.model.values import (
    PERM_ADMIN_READ,
    PERM_DEFAULT,
    PERM_SECRET,
    TTL_ABSOLUTE,
    Value,
)
from resolver.config import ConfigError
from resolver.dns import records
from resolver.dns.names import NameMap, zone_name
from resolver.dns.records import EPCIS, MAX_TTL, ZoneConfig

ZONE = zone_name("id.example.")
NAME = NameMap(ZONE).to_name("88.118.8/ITEM-1")
URI, NAPTR, TXT = dns.rdatatype.URI, dns.rdatatype.NAPTR, dns.rdatatype.TXT
NOW = 1_700_000_000


def over_the_wire(*rrsets: dns.rrset.RRset, rdtype: dns.rdatatype.RdataType = TXT) -> Any:
    """A response holding ``rrsets`` in its answer, as a client parses it from the wire."""
    response = dns.message.make_response(dns.message.make_query(NAME, rdtype))
    response.answer.extend(rrsets)
    return dns.message.from_wire(response.to_wire())


def answered(values: Sequence[Value], rdtype: dns.rdatatype.RdataType) -> Any:
    """The ``rdtype`` records of ``values`` as a client reads them."""
    built = records.rrset(NAME, rdtype, values, NOW)
    assert built is not None
    message = over_the_wire(built, rdtype=rdtype)
    return message.find_rrset(message.answer, NAME, dns.rdataclass.IN, rdtype)


def read_txt(strings: Sequence[bytes]) -> tuple[int, str, bytes]:
    """A client's reading of a TXT record: ``<index> <type> <data>``, type percent-encoded."""
    index, vtype, data = b"".join(strings).split(b" ", 2)
    return int(index), unquote_to_bytes(vtype).decode("utf-8"), data


VALUES = (
    Value(1, "URL", b"https://example.org/items/1", ttl=600),
    Value(2, "EMAIL", b"ops@example.org", ttl=300),
    Value(3, "url", b"not a uri", ttl=5),  # not absolute: TXT only
    Value(4, "URL", b"", ttl=5),
    Value(5, "URL", b"http://example.org/\xff", ttl=5),  # not UTF-8
    Value(6, "URL.EPCIS", b"https://epcis.example.org/query", ttl=900),
    Value(7, "URL.ALT", b"ftp://files.example.org/1", ttl=900),
    Value(8, "URL", b"https://example.org/secret", ttl=1, permissions=PERM_ADMIN_READ),
    Value(9, "HS_SECKEY", b"s3cret", ttl=1, permissions=PERM_SECRET),
    Value(70_000, "URL", b"urn:example:x", ttl=900),
)


def test_uri_records_for_public_url_values() -> None:
    got = answered(VALUES, URI)
    assert sorted((r.priority, r.weight, r.target) for r in got) == [
        (1, 0, b"https://example.org/items/1"),
        (6, 0, b"https://epcis.example.org/query"),
        (7, 0, b"ftp://files.example.org/1"),
        (65_535, 0, b"urn:example:x"),  # the priority is the index, at most 65535
    ]
    assert got.ttl == 600  # the smallest TTL of the values shown


def test_naptr_records_in_ons_style() -> None:
    got = answered(VALUES, NAPTR)
    rows = sorted((r.order, r.preference, r.flags, r.service, r.regexp, r.replacement) for r in got)
    root = dns.name.root
    assert rows == [
        (0, 1, b"u", b"hdl:0.TYPE/URL", b"!^.*$!https://example.org/items/1!", root),
        (0, 6, b"u", EPCIS.encode(), b"!^.*$!https://epcis.example.org/query!", root),
        (0, 7, b"u", b"hdl:0.TYPE/URL.ALT", b"!^.*$!ftp://files.example.org/1!", root),
        (0, 65_535, b"u", b"hdl:0.TYPE/URL", b"!^.*$!urn:example:x!", root),
    ]
    assert got.ttl == 600


def test_naptr_regexp_escapes_its_delimiter_and_backslash() -> None:
    value = Value(1, "URL", b"https://example.org/a!b\\c")
    (got,) = answered([value], NAPTR)
    assert got.regexp == b"!^.*$!https://example.org/a\\!b\\\\c!"


def test_too_long_for_naptr_is_still_a_uri_and_txt() -> None:
    long_url = b"https://example.org/" + b"x" * 240  # the regexp would be 267 bytes
    long_type = Value(2, "URL." + "T" * 250, b"https://example.org/")  # service of 265
    values = [Value(1, "URL", long_url), long_type]
    assert records.rrset(NAME, NAPTR, values, NOW) is None
    assert {r.target for r in answered(values, URI)} == {long_url, b"https://example.org/"}
    assert len(answered(values, TXT)) == 2


def test_txt_record_for_every_public_value() -> None:
    got = answered(VALUES, TXT)
    shown = sorted(read_txt(r.strings) for r in got)
    public = [v for v in VALUES if v.public_read]
    assert shown == sorted((v.index, v.type, v.data) for v in public)
    assert got.ttl == 5
    text = {b"".join(r.strings) for r in got}
    assert b"1 URL https://example.org/items/1" in text
    assert b"4 URL " in text  # empty data: the text ends after the type


def test_txt_cuts_long_data_and_keeps_bytes_and_odd_types() -> None:
    data = bytes(range(256)) * 4  # 1 KiB, every byte value
    values = [Value(1, "BIN", data), Value(2, "my type%1\x01", b"x y")]
    got = {r.strings[0][:1]: r.strings for r in answered(values, TXT)}
    assert [len(s) for s in got[b"1"]] == [255, 255, 255, 255, 10]  # "1 BIN " + 1024 bytes
    assert read_txt(got[b"1"]) == (1, "BIN", data)
    assert b"".join(got[b"2"]) == b"2 my%20type%251%01 x y"
    assert read_txt(got[b"2"]) == (2, "my type%1\x01", b"x y")


def test_a_value_too_large_for_a_record_has_no_txt() -> None:
    big = Value(2, "BIG", b"x" * (records.MAX_TXT - len("2 BIG ") + 1))
    fits = Value(3, "BIG", b"x" * (records.MAX_TXT - len("3 BIG ")))
    assert records.txt(big) is None
    built = records.txt(fits)
    assert built is not None and len(built.to_wire()) == 65_535
    assert records.rrset(NAME, TXT, [big], NOW) is None


@settings(max_examples=300, deadline=None)
@given(
    index=st.integers(1, 2**31 - 1),
    vtype=st.text(min_size=1, max_size=80),
    data=st.binary(max_size=1200),
    ttl=st.integers(0, 2**32 - 1),
)
def test_txt_round_trips_any_value(index: int, vtype: str, data: bytes, ttl: int) -> None:
    (got,) = answered([Value(index, vtype, data, ttl=ttl)], TXT)
    assert all(len(s) <= 255 for s in got.strings)
    assert read_txt(got.strings) == (index, vtype, data)


def test_ttls() -> None:
    assert records.dns_ttl(Value(1, "X", b"", ttl=60), NOW) == 60
    assert records.dns_ttl(Value(1, "X", b"", ttl=2**32 - 1), NOW) == MAX_TTL  # RFC 2181
    expires = Value(1, "X", b"", ttl=NOW + 90, ttl_type=TTL_ABSOLUTE)
    assert records.dns_ttl(expires, NOW) == 90
    assert records.dns_ttl(expires, NOW + 89.5) == 0
    assert records.dns_ttl(expires, NOW + 1000) == 0  # expired: not to be cached
    values = [Value(1, "URL", b"https://a.example/", ttl=500), expires]
    assert answered(values, TXT).ttl == 90
    assert answered(values, URI).ttl == 500  # only the values shown count


def test_no_records_of_a_type_is_none() -> None:
    only_email = [Value(2, "EMAIL", b"ops@example.org")]
    assert records.rrset(NAME, URI, only_email, NOW) is None
    assert records.rrset(NAME, NAPTR, only_email, NOW) is None
    hidden = [Value(1, "URL", b"https://example.org/", permissions=PERM_DEFAULT & ~2)]
    for rdtype in records.RECORD_TYPES:
        assert records.rrset(NAME, rdtype, hidden, NOW) is None
        assert records.rrset(NAME, rdtype, [], NOW) is None


# ------------------------------------------------------------------ zone apex


def test_soa_and_ns() -> None:
    config = ZoneConfig.from_text("id.example", admin="host.master@example.org", serial=7)
    message = over_the_wire(records.soa(config), records.ns(config))
    soa = message.find_rrset(message.answer, ZONE, dns.rdataclass.IN, dns.rdatatype.SOA)
    (rdata,) = soa
    assert (rdata.mname, rdata.rname) == (
        zone_name("ns.id.example"),
        dns.name.from_text(r"host\.master.example.org."),
    )
    assert (rdata.serial, rdata.refresh, rdata.retry, rdata.expire, rdata.minimum) == (
        7,
        3600,
        600,
        1_209_600,
        300,
    )
    assert soa.ttl == 3600
    ns = message.find_rrset(message.answer, ZONE, dns.rdataclass.IN, dns.rdatatype.NS)
    assert [r.target for r in ns] == [zone_name("ns.id.example")]
    assert records.soa(config, negative=True).ttl == 300  # min(ttl, minimum): RFC 2308


def test_zone_config_defaults_and_names() -> None:
    config = ZoneConfig.from_text("id.example.")
    assert config.primary == zone_name("ns.id.example")
    assert config.admin == zone_name("hostmaster.id.example")
    custom = ZoneConfig.from_text(
        "id.example", primary="dns1.example.net", admin="dns.example.net", ttl=60
    )
    assert (custom.primary, custom.admin) == (
        zone_name("dns1.example.net"),
        zone_name("dns.example.net"),
    )
    assert records.soa(custom).ttl == records.ns(custom).ttl == 60


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"serial": -1}, "serial -1"),
        ({"serial": 2**32}, "serial"),
        ({"refresh": 2**31}, "refresh"),
        ({"minimum": -5}, "minimum"),
        ({"admin": "@example.org"}, "no local part"),
        ({"admin": "x" * 64 + "@example.org"}, "invalid mailbox"),
        ({"primary": "a..b"}, "invalid DNS zone"),
    ],
)
def test_zone_config_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ZoneConfig.from_text("id.example", **kwargs)


def test_zone_config_names_must_be_absolute() -> None:
    relative = dns.name.from_text("ns", origin=None)
    with pytest.raises(ConfigError, match="not an absolute name"):
        ZoneConfig(ZONE, relative, zone_name("hostmaster.id.example"))
