"""Hostile input (issue 12): numbers beyond what the Handle wire format holds, listings paged
past 64 bits, a damaged registry file and bad command-line numbers are refused with a clear
error — over HTTP a Handle JSON body with its responseCode, from the command line one line
and exit status 2 — and nothing is written."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.errors import HandleError
from registry.model.jsonvalues import value_from_json
from registry.model.wire import encode_value
from tests.conftest import ENT8_ADMIN, JSON, Server, init_node
from tests.procs import cli

WRITER = {**ENT8_ADMIN, **JSON}
BIG = 2**32  # one past what a 4-byte field holds, signed or not
I32_MAX = 2**31 - 1


def admin(index: Any) -> dict[str, Any]:
    return {
        "index": 100,
        "type": "HS_ADMIN",
        "data": {"format": "admin", "value": {"handle": "0.NA/88.118.8", "index": index}},
    }


def vlist(index: Any) -> dict[str, Any]:
    entries = [{"handle": "0.NA/88.118.8", "index": 300}, {"handle": "88.118.8/G", "index": index}]
    return {"index": 2, "type": "HS_VLIST", "data": {"format": "vlist", "value": entries}}


def referring(index: Any) -> dict[str, Any]:
    return {
        "index": 1,
        "type": "URL",
        "data": "https://example.org/",
        "references": [{"handle": "88.118.8/OTHER", "index": index}],
    }


OUT_OF_RANGE: dict[str, tuple[dict[str, Any], str]] = {
    "admin-index-big": (admin(BIG), "admin index"),
    "admin-index-big-string": (admin(str(BIG)), "admin index"),
    "admin-index-negative": (admin(-1), "admin index"),
    "vlist-index-big": (vlist(BIG), "vlist index"),
    "vlist-index-negative": (vlist(-7), "vlist index"),
    "reference-index-big": (referring(BIG), "reference index"),
    "reference-index-negative": (referring(-1), "reference index"),
    "value-index-big": ({"index": BIG, "type": "URL", "data": "x"}, "index"),
    "base64-not-ascii": (
        {"index": 1, "type": "BIN", "data": {"format": "base64", "value": "é"}},
        "base64",
    ),
}


@pytest.mark.parametrize("name", OUT_OF_RANGE)
async def test_values_out_of_range_are_refused_over_http(server: Server, name: str) -> None:
    value, words = OUT_OF_RANGE[name]
    handle = f"88.118.8/RANGE-{name}"
    async with server.session.put(server.api(handle), json=[value], headers=WRITER) as r:
        body = await r.json()
        assert r.status == 400, body
    assert body["responseCode"] == 202, body
    assert body["handle"] == handle
    assert words in body["message"], body
    # Nothing was written.
    async with server.session.get(server.api(handle)) as r:
        assert (r.status, (await r.json())["responseCode"]) == (404, 100)


async def test_identity_indexes_at_the_ends_of_the_range_are_stored(server: Server) -> None:
    handle = "88.118.8/RANGE-EDGES"
    values = [admin(0), vlist(I32_MAX), referring(I32_MAX)]
    async with server.session.put(server.api(handle), json=values, headers=WRITER) as r:
        assert r.status == 201, await r.text()
    async with server.session.get(server.api(handle) + "?index=100&index=2&index=1") as r:
        got = {v["index"]: v for v in (await r.json())["values"]}
    assert got[100]["data"]["value"]["index"] == 0
    assert got[2]["data"]["value"][1]["index"] == I32_MAX
    assert got[1]["references"] == [{"handle": "88.118.8/OTHER", "index": I32_MAX}]


async def test_listing_pages_beyond_32_bits_are_bad_requests(server: Server) -> None:
    value = {"index": 1, "type": "URL", "data": "https://example.org/"}
    async with server.session.put(server.api("88.118.8/LISTED"), json=[value], headers=WRITER) as r:
        assert r.status == 201, await r.text()

    async def listing(query: str) -> tuple[int, Any]:
        url = f"{server.url}/api/handles?prefix=88.118.8&{query}"
        async with server.session.get(url, headers=ENT8_ADMIN) as r:
            return r.status, await r.json()

    for query, words in (
        (f"page={2**62}&pageSize={2**62}", "page"),
        (f"page={2**40}&pageSize=1", "page"),
        (f"page=0&pageSize={10**20}", "pageSize"),
    ):
        status, body = await listing(query)
        assert (status, body["responseCode"]) == (400, 4), (query, body)
        assert body["message"].startswith(words + " "), body
        assert body["handle"] == "88.118.8"
    # The largest page of the largest size is past the end: empty, as the reference answers.
    status, body = await listing(f"page={I32_MAX}&pageSize={I32_MAX}")
    assert status == 200, body
    assert (body["page"], body["pageSize"], body["handles"]) == (I32_MAX, I32_MAX, [])
    # Paging needs page >= 0 and pageSize > 0; otherwise everything comes back (reference).
    status, body = await listing(f"page=-{2**40}&pageSize=2")
    assert status == 200 and "page" not in body, body
    assert body["handles"] == ["88.118.8/LISTED"]


# The JSON a client might send, numbers of every size included: parsing it either refuses it
# with a HandleError or yields a value the wire encoding can hold.
_INTS = st.one_of(
    st.integers(),
    st.sampled_from([0, -1, I32_MAX, I32_MAX + 1, BIG - 1, BIG, 2**63, -(2**63)]),
)
_KEYS = st.sampled_from(
    [
        "handle",
        "index",
        "permissions",
        "format",
        "value",
        "version",
        "serialNumber",
        "servers",
        "serverId",
        "address",
        "interfaces",
        "protocol",
        "port",
        "attributes",
        "name",
        "kty",
        "n",
        "e",
        "crv",
        "x",
    ]
)
_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), _INTS, st.floats(allow_nan=False), st.text(max_size=6)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_KEYS, inner, max_size=4)),
    max_leaves=10,
)
_FORMATS = st.sampled_from(["string", "base64", "hex", "admin", "vlist", "site", "key"])
_VALUE = st.fixed_dictionaries(
    {
        "index": _INTS,
        "type": st.sampled_from(["URL", "HS_ADMIN", "HS_VLIST", "HS_SITE", "HS_PUBKEY"]),
        "data": st.one_of(
            _JSON, st.builds(lambda f, v: {"format": f, "value": v}, _FORMATS, _JSON)
        ),
    },
    optional={
        "ttl": _INTS,
        "ttlType": _INTS,
        "references": st.lists(
            st.fixed_dictionaries({"handle": st.text(max_size=4), "index": _INTS}), max_size=2
        ),
        "timestamp": st.sampled_from(
            ["1900-01-01T00:00:00Z", "2020-01-01T00:00:00Z", "2200-01-01T00:00:00Z"]
        ),
    },
)


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(_VALUE)
def test_client_values_parse_to_encodable_values_or_a_handle_error(obj: dict[str, Any]) -> None:
    try:
        value = value_from_json(obj, keep_timestamp=True)
    except HandleError:
        return
    encode_value(value)


# ---------------------------------------------------------------------------- command line


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def fails(result: subprocess.CompletedProcess[str]) -> str:
    """A clean failure: exit 2, a message on standard error, no traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.stderr.strip(), result.stdout
    return result.stderr


def export(data: Path) -> list[str]:
    return ok(cli("export", "--data", data)).splitlines()


@pytest.fixture
async def data(tmp_path: Path) -> Path:
    """A node (prefix 88.118, enterprise prefixes 88.118.8 and 88.118.9)."""
    path = tmp_path / "node"
    await init_node(path)
    return path


def _line(n: int, *values: dict[str, Any]) -> str:
    values = values or ({"index": 1, "type": "URL", "data": f"https://example.org/{n}"},)
    return json.dumps({"handle": f"88.118.8/L{n}", "values": list(values)})


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (admin(2**40), "admin index"),
        (vlist(-1), "vlist index"),
        (referring(BIG), "reference index"),
        ({"index": 1, "type": "URL", "data": "x", "timestamp": "9999-12-31T23:59:59Z"}, "time"),
    ],
)
@pytest.mark.parametrize("workers", ["0", "2"])
def test_import_names_the_bad_line_and_keeps_earlier_batches(
    data: Path, tmp_path: Path, bad: dict[str, Any], words: str, workers: str
) -> None:
    lines = [_line(n) for n in range(1, 6)] + [_line(6, bad)] + [_line(n) for n in (7, 8)]
    dump = tmp_path / "bad.jsonl"
    dump.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ("--batch-size", "2", "--workers", workers, "--quiet")
    err = fails(cli("import", dump, "--data", data, *args))
    assert re.search(r"^idnode: line 6: .*" + words, err), err
    # Lines 1-4 (two batches) are committed; 5 shared line 6's batch, so it is not.
    imported = {json.loads(x)["handle"] for x in export(data)} - {
        "0.NA/88.118",
        "0.NA/88.118.8",
        "0.NA/88.118.9",
    }
    assert imported == {f"88.118.8/L{n}" for n in range(1, 5)}


def _damage_pages(path: Path) -> None:
    """Overwrite every page but the first (the schema) and the last with bytes no page
    starts with."""
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.seek(4096)
        f.write(b"\xa5" * max(size - 8192, 4096))


@pytest.mark.parametrize("damage", ["not-sqlite", "damaged-pages"])
def test_damaged_registry_file_is_a_clear_error(data: Path, tmp_path: Path, damage: str) -> None:
    if damage == "damaged-pages":  # enough records for the file to span many pages
        many = tmp_path / "many.jsonl"
        many.write_text("\n".join(_line(n) for n in range(1500)) + "\n", encoding="utf-8")
        ok(cli("import", many, "--data", data, "--quiet", "--workers", "0"))
    registry = data / "registry.sqlite3"
    for extra in data.glob("registry.sqlite3-*"):
        extra.unlink()
    if damage == "not-sqlite":
        registry.write_bytes(b"this is not an SQLite database\n" * 200)
    else:
        _damage_pages(registry)
    before = registry.read_bytes()
    for argv in (
        ["get", "88.118.8/L7"],
        ["put", "88.118.8/NEW", "--value", "URL=https://example.org/new"],
        ["export"],
        ["prefix", "list"],
    ):
        err = fails(cli(*argv, "--data", data))
        assert err.startswith(f"idnode: {registry} is damaged or not an SQLite database"), err
        assert err.count("\n") == 1, err
    assert registry.read_bytes() == before


@pytest.mark.parametrize(
    "argv",
    [
        ["import", "-", "--batch-size", "0"],
        ["import", "-", "--batch-size", "-3"],
        ["import", "-", "--batch-size", "many"],
        ["import", "-", "--workers", "-1"],
        ["get", "88.118.8/X", "--index", "0"],
        ["delete", "88.118.8/L1", "--index", "-1"],
        ["serve", "--workers", "0"],
        ["keys", "rotate", "--batch-size", "0"],
    ],
    ids=lambda argv: " ".join(argv),
)
def test_numeric_flags_out_of_range_are_refused(data: Path, argv: list[str]) -> None:
    before = export(data)
    line = _line(1) + "\n"
    err = fails(cli(*argv, "--data", data, stdin=line))
    flag = next(a for a in argv if a.startswith("--"))
    assert re.search(rf"argument {flag}: (must be at least|expected a whole number)", err), err
    assert export(data) == before


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--add"],
        ["--json", "-"],
    ],
    ids=["no-values", "add-no-values", "json-empty-array"],
)
def test_put_without_values_writes_nothing(data: Path, argv: list[str]) -> None:
    err = fails(cli("put", "88.118.8/EMPTY", "--data", data, *argv, stdin="[]"))
    assert err == "idnode: no values to put: give --value [INDEX:]TYPE=DATA or --json FILE\n"
    fails(cli("get", "88.118.8/EMPTY", "--data", data))


def test_put_takes_values_from_one_source(data: Path, tmp_path: Path) -> None:
    body = tmp_path / "values.json"
    body.write_text('[{"index": 1, "type": "URL", "data": "https://example.org/j"}]')
    argv = ["--json", str(body), "--value", "URL=https://example.org/v"]
    err = fails(cli("put", "88.118.8/BOTH", "--data", data, *argv))
    assert "not allowed with argument" in err, err
    fails(cli("get", "88.118.8/BOTH", "--data", data))
