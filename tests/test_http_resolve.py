"""Resolution over the Handle JSON API (``GET /api/handles/...``), checked against
handle-rest.md and the observed reference behaviour (handle-rest-observed.md §1-3, §12)."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
import yarl

from tests.conftest import (
    ENT8_ADMIN,
    ENT9_ADMIN,
    JSON,
    NODE_ADMIN,
    Server,
    assert_signed,
    basic,
    client_view,
)

ITEM = "88.118.8/ITEM-000042"
PREFIX8 = "0.NA/88.118.8"
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
WRITER = {**ENT8_ADMIN, **JSON}

ITEM_VALUES: list[dict[str, Any]] = [
    {
        "index": 100,
        "type": "HS_ADMIN",
        "data": {
            "format": "admin",
            "value": {"handle": PREFIX8, "index": "200", "permissions": "011111110011"},
        },
    },
    {"index": 1, "type": "URL", "data": "https://example.org/items/000042"},
    {"index": 2, "type": "DESC", "data": {"format": "string", "value": "item forty-two"}},
]


async def put(server: Server, handle: str, body: Any, query: str = "") -> int:
    async with server.session.put(server.api(handle) + query, json=body, headers=WRITER) as r:
        assert r.status in (200, 201), await r.text()
        return r.status


async def get(
    server: Server, handle: str, query: str = "", headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with server.session.get(server.api(handle) + query, headers=headers or {}) as r:
        return r.status, await r.json()


async def get_raw(server: Server, raw_path: str) -> tuple[int, Any]:
    url = yarl.URL(server.url + raw_path, encoded=True)
    async with server.session.get(url) as r:
        return r.status, await r.json()


def indexes(body: dict[str, Any]) -> list[int]:
    """The indexes of the client's values, in record order (the node's signature left out)."""
    return [v["index"] for v in client_view(body["values"], body["handle"])]


def no_match(handle: str) -> dict[str, Any]:
    return {"responseCode": 200, "values": [], "handle": handle}


def assert_two_challenges(headers: Any) -> None:
    challenges = headers.getall("WWW-Authenticate", [])
    assert len(challenges) == 2, challenges
    assert challenges[0] == 'Basic realm="handle"'
    assert re.fullmatch(r'Handle sessionId="[^"]+", nonce="[^"]+"', challenges[1]), challenges


@pytest.fixture
async def item(server: Server) -> Server:
    assert await put(server, ITEM, {"values": ITEM_VALUES}) == 201
    return server


@pytest.fixture
async def types_record(server: Server) -> Server:
    body = [
        {"index": 1, "type": "URL", "data": "https://example.org/plain"},
        {"index": 2, "type": "URL.alt", "data": "https://example.org/alt"},
        {"index": 3, "type": "URLX", "data": "https://example.org/x"},
    ]
    assert await put(server, "88.118.8/T-TYPES", body) == 201
    return server


# ------------------------------------------------------------------ plain resolution


async def test_values_come_back_in_stored_order(item: Server) -> None:
    status, body = await get(item, ITEM)
    assert status == 200
    assert list(body) == ["responseCode", "handle", "values"]
    assert body["responseCode"] == 1
    assert body["handle"] == ITEM
    assert indexes(body) == [100, 1, 2]
    assert_signed(body["values"], ITEM)  # an anonymous reader gets the node's signature too
    url = body["values"][1]
    assert list(url) == ["index", "type", "data", "ttl", "timestamp"]
    assert url["type"] == "URL"
    assert url["data"] == {"format": "string", "value": "https://example.org/items/000042"}
    assert url["ttl"] == 86400
    assert TIMESTAMP.match(url["timestamp"])


@pytest.mark.parametrize("sent", ["88.118.8/item-000042", "88.118.8/Item-000042"])
async def test_lookup_ignores_case_and_echoes_as_sent(item: Server, sent: str) -> None:
    _, original = await get(item, ITEM)
    for _ in range(2):  # through the core, then from the in-process tier's fast path
        status, body = await get(item, sent)
        assert status == 200
        assert body["responseCode"] == 1
        assert body["handle"] == sent
        assert body["values"] == original["values"]


async def test_fast_path_serves_only_the_current_record(item: Server) -> None:
    """The in-process tier's fast path (``Resolver.cached``) answers a handle once the core
    has resolved it, counts it for the statistics, and never outlives a write."""
    resolver = item.node.resolver
    assert resolver.cached(ITEM) is None  # never resolved: the core answers first
    _, first = await get(item, ITEM)
    entry = resolver.cached(ITEM)
    assert entry is not None and entry.found
    hits = dict(resolver.hits)
    status, again = await get(item, ITEM)
    assert status == 200 and again == first
    assert resolver.hits["88.118.8"] == hits["88.118.8"] + 1
    changed = [*ITEM_VALUES[:2], {"index": 2, "type": "DESC", "data": "changed"}]
    await put(item, ITEM, {"values": changed})
    assert resolver.cached(ITEM) is None
    _, now = await get(item, ITEM)
    assert [v["data"]["value"] for v in now["values"] if v["index"] == 2] == ["changed"]
    async with item.session.delete(item.api(ITEM), headers=WRITER) as r:
        assert r.status == 200
    assert resolver.cached(ITEM) is None
    status, gone = await get(item, ITEM)
    assert status == 404 and gone["responseCode"] == 100
    assert resolver.cached(ITEM) is None  # a cached absence is not a fast answer


async def test_percent_encoded_slash_is_the_same_handle(item: Server) -> None:
    status, body = await get_raw(item, "/api/handles/88.118.8%2FITEM-000042")
    assert status == 200
    assert body["responseCode"] == 1
    assert body["handle"] == ITEM
    assert indexes(body) == [100, 1, 2]
    assert_signed(body["values"], ITEM)


# ------------------------------------------------------------------ filters


@pytest.mark.parametrize("wanted", ["URL", "url", "Url"])
async def test_type_filter_ignores_case(item: Server, wanted: str) -> None:
    status, body = await get(item, ITEM, f"?type={wanted}")
    assert status == 200
    assert body["responseCode"] == 1
    assert body["handle"] == ITEM
    assert indexes(body) == [1]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?type=URL", [1]),
        ("?type=url", [1]),
        ("?type=URL.", [1, 2]),
        ("?type=url.ALT", [2]),
        ("?type=URLX", [3]),
        ("?type=URL.&type=URLX", [1, 2, 3]),
    ],
)
async def test_type_filter_exact_or_with_subtypes(
    types_record: Server, query: str, expected: list[int]
) -> None:
    status, body = await get(types_record, "88.118.8/T-TYPES", query)
    assert status == 200
    assert body["responseCode"] == 1
    assert body["handle"] == "88.118.8/T-TYPES"
    assert indexes(body) == expected


async def test_type_prefix_without_dot_matches_nothing(types_record: Server) -> None:
    status, body = await get(types_record, "88.118.8/T-TYPES", "?type=UR")
    assert status == 200
    assert body == no_match("88.118.8/T-TYPES")


@pytest.mark.parametrize(
    ("query", "expected"), [("?index=2", [2]), ("?index=2&index=100", [100, 2])]
)
async def test_index_filter_keeps_stored_order(
    item: Server, query: str, expected: list[int]
) -> None:
    status, body = await get(item, ITEM, query)
    assert status == 200
    assert body["responseCode"] == 1
    assert body["handle"] == ITEM
    assert indexes(body) == expected


@pytest.mark.parametrize("query", ["?type=URL&index=2", "?index=2&type=URL", "?type=URL&type=DESC"])
async def test_type_and_index_filters_are_ored(item: Server, query: str) -> None:
    status, body = await get(item, ITEM, query)
    assert status == 200
    assert body["responseCode"] == 1
    assert body["handle"] == ITEM
    assert indexes(body) == [1, 2]


@pytest.mark.parametrize("query", ["?type=HS_SITE", "?type=HS_SITE.", "?index=99", "?type=DE"])
async def test_filter_matching_nothing(item: Server, query: str) -> None:
    status, body = await get(item, ITEM, query)
    assert status == 200
    assert body == no_match(ITEM)
    assert list(body) == ["responseCode", "values", "handle"]


async def test_empty_record_resolves_to_no_values(server: Server) -> None:
    assert await put(server, "88.118.8/EMPTY", []) == 201
    status, body = await get(server, "88.118.8/empty")
    assert status == 200
    assert body == no_match("88.118.8/empty")
    assert list(body) == ["responseCode", "values", "handle"]


async def test_index_not_a_number(item: Server) -> None:
    status, body = await get(item, ITEM, "?index=abc")
    assert status == 400
    assert body["responseCode"] == 4
    assert body["handle"] == ITEM
    assert body["message"]


# ------------------------------------------------------------------ not found and odd paths


async def test_unknown_handle(server: Server) -> None:
    status, body = await get(server, "88.118.8/NOPE")
    assert status == 404
    assert body == {"responseCode": 100, "handle": "88.118.8/NOPE"}


async def test_unhomed_prefix(server: Server) -> None:
    status, body = await get(server, "99.999/X")
    assert status == 400
    assert body == {
        "responseCode": 301,
        "message": "That prefix doesn't live here",
        "handle": "99.999/X",
    }
    assert list(body) == ["responseCode", "message", "handle"]


async def test_handle_without_slash(server: Server) -> None:
    status, body = await get(server, "noslash")
    assert status == 404
    assert body == {"responseCode": 100, "handle": "noslash"}


@pytest.mark.parametrize("path", ["/api/handles/", "/api/handles"])
async def test_empty_handle(server: Server, path: str) -> None:
    status, body = await get_raw(server, path)
    assert status == 400
    assert body["responseCode"] == 102
    assert body["message"] == "Empty handle invalid"
    assert body.get("handle", "") == ""


async def test_prefix_only_path_resolves_the_prefix_handle(server: Server) -> None:
    status, body = await get(server, "88.118.8")
    assert status == 200
    assert body["responseCode"] == 1
    assert body["handle"] == "88.118.8"
    values = client_view(body["values"], PREFIX8)
    assert [(v["index"], v["type"]) for v in values] == [(100, "HS_ADMIN")]
    assert_signed(body["values"], PREFIX8)
    assert body["values"][0]["data"]["value"]["handle"] == PREFIX8


async def test_prefix_with_trailing_slash_is_a_missing_handle(server: Server) -> None:
    status, body = await get(server, "88.118.8/")
    assert status == 404
    assert body == {"responseCode": 100, "handle": "88.118.8/"}


async def test_everything_after_api_handles_is_the_handle(item: Server) -> None:
    status, body = await get(item, ITEM + "/extra")
    assert status == 404
    assert body == {"responseCode": 100, "handle": ITEM + "/extra"}


async def test_invalid_utf8_percent_escape(server: Server) -> None:
    status, body = await get_raw(server, "/api/handles/88.118.8/%FF")
    assert status == 400
    assert body["responseCode"] == 102
    assert body["message"]


async def test_handle_of_2048_bytes_is_allowed(server: Server) -> None:
    handle = "88.118.8/" + "a" * (2048 - len("88.118.8/"))
    status, body = await get(server, handle)
    assert status == 404
    assert body == {"responseCode": 100, "handle": handle}


async def test_handle_over_2048_bytes_is_invalid(server: Server) -> None:
    handle = "88.118.8/" + "a" * (2049 - len("88.118.8/"))
    status, body = await get(server, handle)
    assert status == 400
    assert body["responseCode"] == 102
    assert body["message"]


# ------------------------------------------------------------------ HEAD and POST


async def test_head_gives_headers_only(item: Server) -> None:
    async with item.session.get(item.api(ITEM)) as r:
        full = await r.read()
    async with item.session.head(item.api(ITEM)) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("application/json")
        assert int(r.headers["Content-Length"]) == len(full)
        assert await r.read() == b""


async def test_post_acts_as_get(item: Server) -> None:
    async with item.session.post(
        item.api(ITEM) + "?type=URL", data=b"ignored", headers={"Content-Type": "text/plain"}
    ) as r:
        assert r.status == 200
        body = await r.json()
    assert body["responseCode"] == 1
    assert body["handle"] == ITEM
    assert indexes(body) == [1]


async def test_post_never_creates(server: Server) -> None:
    async with server.session.post(
        server.api("88.118.8/X"),
        json={"values": [{"index": 1, "type": "URL", "data": "https://example.org/"}]},
        headers=WRITER,
    ) as r:
        assert r.status == 404
        assert await r.json() == {"responseCode": 100, "handle": "88.118.8/X"}
    status, _ = await get(server, "88.118.8/X")
    assert status == 404


# ------------------------------------------------------------------ restricted values


async def test_anonymous_never_sees_the_secret(server: Server) -> None:
    status, body = await get(server, PREFIX8)
    assert status == 200
    assert body["responseCode"] == 1
    assert body["handle"] == PREFIX8
    assert indexes(body) == [100]
    assert_signed(body["values"], PREFIX8)  # covers the public values only
    assert "ent8-secret" not in str(body)


@pytest.mark.parametrize("query", ["?type=HS_SECKEY", "?index=300", "?auth=true&type=HS_SECKEY"])
async def test_anonymous_secret_filter_matches_nothing(server: Server, query: str) -> None:
    status, body = await get(server, PREFIX8, query)
    assert status == 200
    assert body == no_match(PREFIX8)


async def test_authenticated_admin_gets_the_secret_by_default(server: Server) -> None:
    status, body = await get(server, PREFIX8, headers=ENT8_ADMIN)
    assert status == 200
    assert body["responseCode"] == 1
    assert body["handle"] == PREFIX8
    assert indexes(body) == [100, 300]
    assert_signed(body["values"], PREFIX8)
    secret = body["values"][1]
    assert list(secret) == ["index", "type", "data", "permissions", "ttl", "timestamp"]
    assert secret["type"] == "HS_SECKEY"
    assert secret["data"] == {"format": "string", "value": "ent8-secret"}
    assert secret["permissions"] == "1100"
    assert secret["ttl"] == 86400
    assert TIMESTAMP.match(secret["timestamp"])


@pytest.mark.parametrize("query", ["?type=HS_SECKEY", "?publicOnly=false&type=HS_SECKEY"])
async def test_authenticated_admin_filters_for_the_secret(server: Server, query: str) -> None:
    status, body = await get(server, PREFIX8, query, headers=ENT8_ADMIN)
    assert status == 200
    assert body["responseCode"] == 1
    assert body["handle"] == PREFIX8
    assert indexes(body) == [300]
    assert body["values"][0]["data"]["value"] == "ent8-secret"


async def test_authenticated_public_only_hides_the_secret(server: Server) -> None:
    status, body = await get(server, PREFIX8, "?publicOnly=true", headers=ENT8_ADMIN)
    assert status == 200
    assert body["responseCode"] == 1
    assert indexes(body) == [100]
    status, body = await get(server, PREFIX8, "?publicOnly=true&type=HS_SECKEY", ENT8_ADMIN)
    assert status == 200
    assert body == no_match(PREFIX8)


@pytest.mark.parametrize("query", ["?publicOnly=false", "?publicOnly=false&type=HS_SECKEY"])
async def test_anonymous_public_only_false_on_a_secret_needs_auth(
    server: Server, query: str
) -> None:
    async with server.session.get(server.api(PREFIX8) + query) as r:
        assert r.status == 401
        assert await r.json() == {"responseCode": 402, "handle": PREFIX8}
        assert_two_challenges(r.headers)


async def test_anonymous_public_only_false_on_public_values(server: Server) -> None:
    status, body = await get(server, PREFIX8, "?publicOnly=false&type=HS_ADMIN")
    assert status == 200
    assert body["responseCode"] == 1
    assert body["handle"] == PREFIX8
    assert indexes(body) == [100]


async def test_admin_of_another_enterprise_does_not_get_the_secret(server: Server) -> None:
    status, body = await get(server, PREFIX8, headers=ENT9_ADMIN)
    assert status == 200
    assert body["responseCode"] == 1
    assert indexes(body) == [100]
    assert "ent8-secret" not in str(body)
    status, body = await get(server, PREFIX8, "?type=HS_SECKEY", headers=ENT9_ADMIN)
    assert status == 200
    assert body == no_match(PREFIX8)


async def test_node_admin_reads_an_enterprise_secret(server: Server) -> None:
    status, body = await get(server, PREFIX8, "?type=HS_SECKEY", headers=NODE_ADMIN)
    assert status == 200
    assert body["responseCode"] == 1
    assert body["values"][0]["data"]["value"] == "ent8-secret"


async def test_auth_true(item: Server) -> None:
    _, plain = await get(item, ITEM)
    status, body = await get(item, ITEM, "?auth=true")
    assert status == 200
    assert body == plain
    status, body = await get(item, PREFIX8, "?auth=true&type=HS_SECKEY", headers=ENT8_ADMIN)
    assert status == 200
    assert body["responseCode"] == 1
    assert indexes(body) == [300]


@pytest.mark.parametrize("query", ["", "?auth=true"])
async def test_wrong_secret_fails_even_a_public_read(item: Server, query: str) -> None:
    headers = {"Authorization": basic("300:0.NA/88.118.8", "wrong")}
    async with item.session.get(item.api(ITEM) + query, headers=headers) as r:
        assert r.status == 401
        assert await r.read() == b""


# ------------------------------------------------------------------ data formats


async def test_data_formats_in_output(server: Server) -> None:
    handle = "88.118.8/T-FMT"
    body = [
        {"index": 1, "type": "BLOB", "data": {"format": "hex", "value": "DEADBEEF"}},
        {"index": 2, "type": "TEXT", "data": {"format": "base64", "value": "aGVsbG8="}},
        {"index": 3, "type": "DESC", "data": "plain string"},
        {
            "index": 4,
            "type": "HS_ADMIN",
            "data": {
                "format": "ADMIN",
                "value": {"handle": PREFIX8, "index": "300", "permissions": "011111110011"},
            },
        },
        {
            "index": 5,
            "type": "HS_VLIST",
            "data": {"format": "vlist", "value": [{"handle": PREFIX8, "index": 300}]},
        },
        {"index": 7, "type": "EMAIL", "data": "a@example.org", "ttl": 60, "permissions": "1010"},
        {"index": 8, "type": "BLOB", "data": {"format": "Hex", "value": "c3a9"}},
    ]
    assert await put(server, handle, body) == 201
    status, got = await get(server, handle)
    assert status == 200
    assert got["responseCode"] == 1
    assert_signed(got["values"], handle)
    values = {v["index"]: v for v in client_view(got["values"], handle)}
    assert list(values) == [1, 2, 3, 4, 5, 7, 8]
    assert values[1]["data"] == {"format": "base64", "value": "3q2+7w=="}
    assert values[2]["data"] == {"format": "string", "value": "hello"}
    assert values[3]["data"] == {"format": "string", "value": "plain string"}
    assert values[4]["data"] == {
        "format": "admin",
        "value": {"handle": PREFIX8, "index": 300, "permissions": "011111110011"},
    }
    assert values[5]["data"] == {"format": "vlist", "value": [{"handle": PREFIX8, "index": 300}]}
    assert list(values[7]) == ["index", "type", "data", "permissions", "ttl", "timestamp"]
    assert values[7]["permissions"] == "1010"
    assert values[7]["ttl"] == 60
    assert values[8]["data"] == {"format": "string", "value": "é"}
    for v in got["values"]:
        assert TIMESTAMP.match(v["timestamp"]), v
        if v["index"] != 7:
            assert "permissions" not in v
        assert "references" not in v


async def test_vlist_data_on_another_type_reads_back_as_base64(server: Server) -> None:
    vlist = {"format": "vlist", "value": [{"handle": PREFIX8, "index": 300}]}
    assert await put(server, "88.118.8/T-VL", [{"index": 1, "type": "VL", "data": vlist}]) == 201
    status, body = await get(server, "88.118.8/T-VL")
    assert status == 200
    assert body["responseCode"] == 1
    data = body["values"][0]["data"]
    assert data["format"] == "base64", data
    raw = base64.b64decode(data["value"])
    assert raw.startswith(b"\x00\x00\x00\x01")
    assert PREFIX8.encode() in raw


async def test_timestamp_is_the_write_time_in_utc(server: Server) -> None:
    server.node.registry.clock = lambda: 1795680000.7  # 2026-11-26T08:00:00Z
    assert await put(server, "88.118.8/T-TIME", [{"index": 1, "type": "DESC", "data": "x"}]) == 201
    _, body = await get(server, "88.118.8/T-TIME")
    assert body["values"][0]["timestamp"] == "2026-11-26T08:00:00Z"


REFERENCE_SITE = {
    "version": 1,
    "protocolVersion": "2.11",
    "serialNumber": 1,
    "primarySite": True,
    "multiPrimary": False,
    "attributes": [{"name": "desc", "value": "hdlpeer local reference server"}],
    "servers": [
        {
            "serverId": 1,
            "address": "127.0.0.1",
            "publicKey": {
                "format": "key",
                "value": {
                    "kty": "RSA",
                    "n": (
                        "04-igQG8riZYeTea3IRYRAtcIPFwTSzOkDWplmUVZXoDBSyqW4i23Dr0NcUFLHrYluAnk2vM2"
                        "fToWastZMIRm5vycm5De_8rkmncZUrXvxV106bWkVQla-vyqVTlVivevU1BN58d3cEfRyhmC"
                        "e5_yYR4vlGnXojQMTjXlq6UqsjwyvN76ijg4zF4jciBbxjb2ZxTA0bZKZwX4972YkcKjBeDV"
                        "9xFlOfcHv3k9tEpFm0kcJiyz_3SzMlQWhZbmk7Tfth2x6K16oW_7aGUe1W9RNDMN4ny_EEHO"
                        "BlQKqLwLVXFdwqNSU2Rv1jFIQux_YjkRb4DF-Rt_sWDUOyxb7wshw"
                    ),
                    "e": "AQAB",
                },
            },
            "interfaces": [
                {"query": True, "admin": True, "protocol": "TCP", "port": 2641},
                {"query": True, "admin": False, "protocol": "UDP", "port": 2641},
                {"query": True, "admin": True, "protocol": "HTTP", "port": 8000},
            ],
        }
    ],
}


async def test_site_value_round_trips(server: Server) -> None:
    data = {"format": "site", "value": REFERENCE_SITE}
    assert (
        await put(server, "88.118.8/T-SITE", [{"index": 1, "type": "HS_SITE", "data": data}]) == 201
    )
    status, body = await get(server, "88.118.8/T-SITE", "?type=HS_SITE.")
    assert status == 200
    assert body["responseCode"] == 1
    assert body["handle"] == "88.118.8/T-SITE"
    assert body["values"][0]["data"] == data
