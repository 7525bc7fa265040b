"""The mapping between handles and DNS names (resolver/dns/names.py) and ``idnode dns-name``."""

from __future__ import annotations

import base64
import contextlib
import re

import dns.name
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from registry.errors import InvalidHandle, NotResponsible
from registry.model.identifiers import check_prefix, handle_key, parse
from resolver.config import ConfigError
from resolver.dns import DEFAULT_ZONE, names
from resolver.dns.names import (
    AboveHandles,
    NameMap,
    NameTooLong,
    NotAHandle,
    NotInZone,
    is_leaf,
    zone_name,
)
from tests.procs import ROOT, cli

ZONE = zone_name("id.example.")
NAMES = NameMap(ZONE)
INNER = len(ZONE.labels)  # labels of the zone, root included

# Every label the mapping writes: the marker, a plain (hostname) label or an encoded one.
LABEL = re.compile(
    rb"_|(?!..--)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?|_[0-9a-v]{1,62}|__[0-9a-v]{1,61}"
)


def name(text: str) -> dns.name.Name:
    return dns.name.from_text(text)


def inner(n: dns.name.Name) -> tuple[bytes, ...]:
    return n.labels[:-INNER]


def b32(data: bytes) -> bytes:
    return base64.b32hexencode(data).rstrip(b"=").lower()


def is_prefix(text: str) -> bool:
    try:
        check_prefix(text)
    except InvalidHandle:
        return False
    return True


def ascii_swapcase(text: str) -> str:
    return "".join(c.swapcase() if c.isascii() else c for c in text)


# ------------------------------------------------------------------ documented examples


def _documented() -> list[tuple[str, str]]:
    """The examples table of the module docstring: ``handle<2+ spaces>name``."""
    doc = names.__doc__ or ""
    rows = re.findall(r"^    (\S.*?) {2,}(\S+\.id\.example\.)$", doc, re.MULTILINE)
    assert len(rows) == 5, rows
    return rows


@pytest.mark.parametrize(("handle", "text"), _documented())
def test_documented_examples(handle: str, text: str) -> None:
    assert NAMES.to_name(handle).to_text() == text
    assert NAMES.to_handle(name(text)) == handle_key(handle)


def test_readme_examples() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    section = readme.split("### DNS names", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| `([^`]+)` \|$", section, re.MULTILINE)
    assert len(rows) == 3, rows
    for handle, text in rows:
        assert NAMES.to_name(handle).to_text() == text
        assert NAMES.to_handle(name(text)) == handle_key(handle)


def test_prefix_labels_reversed_and_suffix_before_the_marker() -> None:
    n = NAMES.to_name("88.118.8/ITEM-000042")
    assert n.labels == (b"item-000042", b"_", b"8", b"118", b"88", b"id", b"example", b"")
    assert NAMES.to_name("0.NA/88.118.8").labels == (b"8", b"118", b"88", b"id", b"example", b"")
    # the delegation of a prefix holds its identifiers and the prefixes under it
    assert n.is_subdomain(NAMES.to_name("0.NA/88.118.8"))
    assert NAMES.to_name("0.NA/88.118.8").is_subdomain(NAMES.to_name("0.NA/88.118"))
    assert not NAMES.to_name("88.118.80/X").is_subdomain(NAMES.to_name("0.NA/88.118.8"))


def test_case_folds_ascii_only() -> None:
    # Handles and DNS names ignore ASCII case: one name, and the canonical (key) handle back.
    for handle in ("88.118.8/item-000042", "88.118.8/ITEM-000042", "88.118.8/Item-000042"):
        assert NAMES.to_name(handle).to_text() == "item-000042._.8.118.88.id.example."
    assert NAMES.to_handle(name("ITEM-000042._.8.118.88.ID.Example.")) == "88.118.8/ITEM-000042"
    assert NAMES.to_handle(name("na.0.id.example.")) == "0.NA/0.NA"
    # non-ASCII case is significant to a handle (no Unicode folding): distinct names
    assert NAMES.to_name("88.118.8/é") != NAMES.to_name("88.118.8/É")
    assert NAMES.to_handle(NAMES.to_name("88.118.8/é")) == "88.118.8/é"


@pytest.mark.parametrize(
    "suffix",
    [
        "",
        ".",
        "/",
        "a.b",
        "a..b",
        "x/y/z",
        "-x",
        "x-",
        "ab--cd",
        "xn--abc",
        "a_b",
        "with space",
        "日本語",
        "\u3000",
        "A" * 63,
        "A" * 64,
        "A" * 62 + "-B",
        "A" * 138,
        "é" * 60,
    ],
)
def test_unusual_suffixes_round_trip(suffix: str) -> None:
    handle = f"88.118.8/{suffix}"
    n = NAMES.to_name(handle)
    assert all(LABEL.fullmatch(label) for label in inner(n)), n
    assert len(n.to_wire()) <= 255
    assert NAMES.to_handle(n) == handle_key(handle)


def test_long_suffixes_go_on_in_continuation_labels() -> None:
    assert inner(NAMES.to_name("88.118.8/" + "A" * 63))[0] == b"a" * 63  # one plain label
    for suffix in ("A" * 64, "/" * 100):  # too long for a label; not a hostname label
        labels = inner(NAMES.to_name("88.118.8/" + suffix))[:-4]
        coded = b32(suffix.encode())
        assert labels[0] == b"_" + coded[:62]
        assert labels[1:] == tuple(b"__" + coded[i : i + 61] for i in range(62, len(coded), 61))
        assert [len(label) for label in labels[:-1]] == [63] * (len(labels) - 1)


def test_prefix_handles() -> None:
    assert NAMES.to_name("0.NA/88").to_text() == "88.id.example."
    assert NAMES.to_name("0.NA/0.NA").to_text() == "na.0.id.example."
    # a local part that is no prefix takes the general form under 0.NA
    for handle in ("0.NA/", "0.NA/a b", "0.NA/88..8", "0.NA/88/8"):
        n = NAMES.to_name(handle)
        assert inner(n)[-3:] == (b"_", b"na", b"0"), n
        assert NAMES.to_handle(n) == handle_key(handle)


# ------------------------------------------------------------------ limits


def test_longest_names_fit_and_one_more_byte_does_not() -> None:
    # The limits stated in the module docstring, for this zone and prefix 88.118.8.
    for char, longest in (("A", 138), ("/", 138)):
        n = NAMES.to_name("88.118.8/" + char * longest)
        assert len(n.to_wire()) <= 255
        with pytest.raises(NameTooLong, match="over 255"):
            NAMES.to_name("88.118.8/" + char * (longest + 1))


def test_a_prefix_label_must_fit_one_dns_label() -> None:
    NAMES.to_name("0.NA/" + "8" * 63)
    NAMES.to_name("0.NA/" + "é" * 19)  # 38 bytes: 61 base32 characters
    for prefix in ("8" * 64, "é" * 20):
        with pytest.raises(NameTooLong, match="does not fit one DNS label"):
            NAMES.to_name(f"0.NA/{prefix}")
        with pytest.raises(NameTooLong):
            NAMES.to_name(f"{prefix}/x")


@pytest.mark.parametrize(
    "handle",
    ["", "88.118.8", "/x", "88..8/x", ".88/x", "8 8/x", "88.118.8/a\x00b", "88.118.8/\ud800"],
)
def test_invalid_handles(handle: str) -> None:
    with pytest.raises(InvalidHandle) as caught:
        NAMES.to_name(handle)
    assert not isinstance(caught.value, NameTooLong)


# ------------------------------------------------------------------ names that are not handles


@pytest.mark.parametrize(
    "text",
    ["www.example.org.", "example.", "id.example.com.", "xid.example.", "8.118.88.id.example"],
)
def test_names_outside_the_zone(text: str) -> None:
    n = dns.name.from_text(text, origin=None)
    with pytest.raises(NotInZone) as caught:
        NAMES.to_handle(n)
    assert isinstance(caught.value, NotResponsible)  # REFUSED, through the one error table


def _nonzero_padding() -> bytes:
    good = b32(b"A/")  # 16 bits in 4 characters: 4 padding bits, which must be zero
    return good[:-1] + b"1"


@pytest.mark.parametrize(
    "labels",
    [
        [],  # the apex
        [b"_"],  # a marker and no prefix
        [b"x", b"_"],
        [b"_", b"_", b"8"],  # two markers
        [b"-abc", b"_", b"8"],
        [b"abc-", b"_", b"8"],
        [b"xn--abc", b"_", b"8"],  # reserved label
        [b"abc", b"def", b"_", b"8"],  # two plain labels
        [b"a" * 63, b"__" + b32(b"/"), b"_", b"8"],  # plain and continued
        [b"_" + b32(b"/"), b"__00", b"_", b"8"],  # continued after a short first label
        [b"_" + b"0" * 62, b"_00", b"_", b"8"],  # an encoded label where one continues
        [b"__" + b"0" * 61, b"_00", b"_", b"8"],  # ... or after a continuation
        [b"x", b"_", b"__00"],  # a continuation label as prefix label
        [b"_" + b32(b"ABC"), b"_", b"8"],  # encoded, but it has a plain form
        [b"_" + b32(b"abc/"), b"_", b"8"],  # lower-case letters: not the canonical form
        [b"_" + _nonzero_padding(), b"_", b"8"],
        [b"_0", b"_", b"8"],  # no base32hex length
        [b"_wxyz", b"_", b"8"],  # outside base32hex
        [b"_" + b32(b"\xff/"), b"_", b"8"],  # not UTF-8
        [b"_" + b32(b"A\x00"), b"_", b"8"],  # a control character
        [b"x", b"_", b"_" + b32(b"8.8")],  # a prefix label holding '.'
        [b"x", b"_", b"_" + b32(b"8/8")],  # ... or '/'
        [b"x", b"_", b"_" + b32(b"8 8")],  # whitespace in a prefix
        [b"_" + b32(b"8 8")],  # the same, as a prefix handle
        [b"88", b"_", b"na", b"0"],  # 0.NA/88 is written 88.<zone>
        [b"__x0", b"_", b"8"],  # a continuation label, but not base32hex
        [b"it.em", b"_", b"8"],  # bytes no label of a handle holds
        [b"\xc3\xa9", b"_", b"8"],
    ],
)
def test_names_in_the_zone_that_name_no_handle(labels: list[bytes]) -> None:
    with pytest.raises(NotAHandle):
        NAMES.to_handle(dns.name.Name([*labels, *ZONE.labels]))


def test_names_above_long_suffixes() -> None:
    # The tail of a long suffix's name: other names lie under it (RFC 8020: no NXDOMAIN).
    long = NAMES.to_name("88.118.8/" + "/" * 100)
    for cut in (1, 2):
        with pytest.raises(AboveHandles):
            NAMES.to_handle(long.split(len(long) - cut)[1])
    with pytest.raises(AboveHandles):
        NAMES.to_handle(name("__00._.8.118.88.id.example."))


def test_is_leaf() -> None:
    for handle in ("88.118.8/X", "0.NA/a b", "0.NA/88/1", "88.118.8/" + "/" * 100):
        assert is_leaf(handle), handle
    for handle in ("88.118.8/", "0.NA/88.118.8", "0.na/88", "0.NA/"):
        assert not is_leaf(handle), handle


def test_zones() -> None:
    assert zone_name("id.example") == zone_name("ID.Example.") == ZONE
    for bad in ("", " ", "a..b", "x" * 64 + ".example"):
        with pytest.raises(ConfigError):
            zone_name(bad)
    with pytest.raises(ValueError, match="absolute"):
        NameMap(dns.name.from_text("id.example", origin=None))
    deep = NameMap(zone_name("handles.factory.example.com"))
    n = deep.to_name("88.118.8/ITEM-1")
    assert n.to_text() == "item-1._.8.118.88.handles.factory.example.com."
    assert deep.to_handle(n) == "88.118.8/ITEM-1"
    with pytest.raises(NotInZone):
        deep.to_handle(NAMES.to_name("88.118.8/ITEM-1"))
    root = NameMap(dns.name.root)
    assert root.to_handle(root.to_name("88.118.8/x")) == "88.118.8/X"


# ------------------------------------------------------------------ properties

_PREFIX_LABEL = st.one_of(
    st.sampled_from(["88", "118", "8", "0", "NA", "na", "20", "500", "x-1"]),
    st.text(st.characters(exclude_characters="./"), min_size=1, max_size=3),
)
PREFIXES = st.lists(_PREFIX_LABEL, min_size=1, max_size=3).map(".".join)
SUFFIXES = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=90, max_size=200),
    st.text(st.sampled_from("AZaz09-._/ %é日\x00"), max_size=250),
    st.from_regex(r"\A[A-Za-z0-9](?:[A-Za-z0-9-]{0,240}[A-Za-z0-9])?\Z"),
)


@st.composite
def handles(draw: st.DrawFn) -> str:
    prefix = draw(PREFIXES)
    if draw(st.booleans()):
        return f"{draw(st.sampled_from(['0.NA', '0.na']))}/{prefix}"
    return f"{prefix}/{draw(SUFFIXES)}"


@settings(max_examples=1000, deadline=None)
@given(handles())
def test_every_handle_round_trips(handle: str) -> None:
    try:
        ident = parse(handle)
    except InvalidHandle:
        with pytest.raises(InvalidHandle):
            NAMES.to_name(handle)
        return
    try:
        n = NAMES.to_name(handle)
    except NameTooLong:
        # Prefix labels of at most 3 characters (12 bytes) leave room for 100 suffix bytes.
        assert len(ident.local.encode()) > 100
        return
    assert NAMES.to_handle(n) == handle_key(handle)
    assert all(LABEL.fullmatch(label) for label in inner(n)), n
    assert len(n.to_wire()) <= 255 and n.is_subdomain(ZONE)
    # ASCII case changes nothing, on either side
    assert NAMES.to_name(ascii_swapcase(handle)).labels == n.labels
    upper = dns.name.Name([label.upper() for label in n.labels])
    assert NAMES.to_handle(upper) == handle_key(handle)
    # DNS delegation follows the prefix: the name lies under its prefix's own name
    home = ident.prefix
    if ident.is_prefix_handle and is_prefix(ident.local):
        home = ident.local
    assert n.is_subdomain(NAMES.to_name(f"0.NA/{home}"))
    # Every name between it and the zone apex (DNS's empty non-terminals among them) lies
    # above others, and says so: none may be NXDOMAIN (RFC 8020).
    for depth in range(INNER + 1, len(n)):
        above = n.split(depth)[1]
        with contextlib.suppress(AboveHandles):
            assert not is_leaf(NAMES.to_handle(above)), above


def _accepted_names_map_back(n: dns.name.Name) -> None:
    try:
        handle = NAMES.to_handle(n)
    except NotAHandle:
        return
    assert NAMES.to_name(handle).labels == tuple(label.lower() for label in n.labels)


_ALPHABET = b"abcxyz0189-_AZ"
LABELS = st.one_of(
    st.just(b"_"),
    st.sampled_from([b"8", b"118", b"88", b"na", b"0", b"_" + b32(b"A/"), b"item-1", b"__00"]),
    st.lists(st.sampled_from(_ALPHABET), min_size=1, max_size=8).map(bytes),
    st.binary(min_size=1, max_size=63),
)


@settings(max_examples=1000, deadline=None)
@given(st.lists(LABELS, max_size=6))
def test_every_accepted_name_maps_back(labels: list[bytes]) -> None:
    try:
        n = dns.name.Name([*labels, *ZONE.labels])
    except dns.name.NameTooLong:
        assume(False)
    _accepted_names_map_back(n)


@st.composite
def mutated_names(draw: st.DrawFn) -> dns.name.Name:
    """The name of a handle, with one label changed: a byte replaced, inserted or deleted,
    the label dropped, doubled or cut in two, or the marker inserted."""
    try:
        n = NAMES.to_name(draw(handles()))
    except InvalidHandle:
        assume(False)
    labels = list(inner(n))
    i = draw(st.integers(0, len(labels) - 1))
    label = labels[i]
    at = draw(st.integers(0, len(label)))
    byte = bytes([draw(st.sampled_from(_ALPHABET))])
    edit = draw(st.sampled_from(["replace", "insert", "delete", "drop", "double", "cut", "_"]))
    if edit == "replace":
        labels[i] = label[:at] + byte + label[at + 1 :]
    elif edit == "insert":
        labels[i] = label[:at] + byte + label[at:]
    elif edit == "delete":
        labels[i] = label[:at] + label[at + 1 :]
    elif edit == "drop":
        del labels[i]
    elif edit == "double":
        labels.insert(i, label)
    elif edit == "cut":
        labels[i : i + 1] = [label[:at], label[at:]]
    else:
        labels.insert(i, b"_")
    labels = [label for label in labels if label]
    try:
        return dns.name.Name([*labels, *ZONE.labels])
    except (dns.name.NameTooLong, dns.name.LabelTooLong):
        assume(False)
        raise AssertionError from None  # unreachable: assume() raises


@settings(max_examples=1000, deadline=None)
@given(mutated_names())
def test_mutated_names_are_rejected_or_map_back(n: dns.name.Name) -> None:
    _accepted_names_map_back(n)


# ------------------------------------------------------------------ idnode dns-name


def test_cli_dns_name() -> None:
    out = cli("dns-name", "88.118.8/ITEM-000042")
    assert (out.returncode, out.stdout) == (0, "item-000042._.8.118.88.id.example.\n"), out
    out = cli("dns-name", "--zone", "id.test", "88.118.8/a.b")
    assert out.stdout == "_84n44._.8.118.88.id.test.\n", out
    out = cli("dns-name", "--reverse", "ITEM-000042._.8.118.88.id.example")
    assert (out.returncode, out.stdout) == (0, "88.118.8/ITEM-000042\n"), out
    out = cli("dns-name", "--reverse", "--zone", "id.test.", "8.118.88.id.test.")
    assert out.stdout == "0.NA/88.118.8\n", out

    for args, message in [
        (["--reverse", "www.example.org"], "idnode: www.example.org: not in the zone id.example."),
        (["--reverse", "x._.id.example."], "the name has no prefix labels"),
        (["88.118.8"], "idnode: 88.118.8: Handle has no '/'"),
        (["--zone", "a..b", "88.118.8/x"], "idnode: invalid DNS zone 'a..b'"),
        (["88.118.8/" + "A" * 300], "would be 526 bytes long, over 255"),
    ]:
        out = cli("dns-name", *args)
        assert out.returncode == 2 and message in out.stderr, (args, out)
        assert out.stderr.startswith("idnode: ") and "Traceback" not in out.stderr, out

    out = cli("dns-name", "--help")
    assert out.returncode == 0 and "--reverse" in out.stdout, out
    assert f"default {DEFAULT_ZONE}" in out.stdout, out
