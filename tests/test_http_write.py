"""Writes over the Handle JSON API (PUT/DELETE ``/api/handles/...``) and HTTP authentication,
checked against handle-rest.md and handle-rest-observed.md §4-6, §8."""

from __future__ import annotations

import base64
import re
import time
from typing import Any

import orjson
import pytest
import yarl

from tests.conftest import (
    ENT8_ADMIN,
    ENT9_ADMIN,
    JSON,
    Server,
    assert_signed,
    basic,
    client_view,
)

WRITER = {**ENT8_ADMIN, **JSON}
T1 = "88.118.8/T-1"
PREFIX8 = "0.NA/88.118.8"
UUID4 = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"

ADMIN_100 = {
    "index": 100,
    "type": "HS_ADMIN",
    "data": {
        "format": "admin",
        "value": {"handle": PREFIX8, "index": "300", "permissions": "011111110011"},
    },
}
URL_1 = {"index": 1, "type": "URL", "data": "https://example.org/t-1"}
B1 = {"values": [URL_1, ADMIN_100]}


class Clock:
    """A controllable clock for the registry's timestamps."""

    def __init__(self, now: float = 1_795_680_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def stamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


async def put(
    server: Server,
    handle: str,
    body: Any,
    query: str = "",
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    async with server.session.put(
        server.api(handle) + query, json=body, headers=WRITER if headers is None else headers
    ) as r:
        return r.status, await r.json()


async def put_raw(
    server: Server, handle: str, data: bytes, headers: dict[str, str], skip: tuple[str, ...] = ()
) -> tuple[int, Any, str]:
    async with server.session.put(
        server.api(handle), data=data, headers=headers, skip_auto_headers=skip
    ) as r:
        text = await r.text()
        return r.status, orjson.loads(text) if text else None, r.headers.get("Content-Type", "")


async def get(server: Server, handle: str, query: str = "") -> tuple[int, Any]:
    async with server.session.get(server.api(handle) + query, headers=ENT8_ADMIN) as r:
        return r.status, await r.json()


async def delete(
    server: Server, handle: str, query: str = "", headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with server.session.delete(
        server.api(handle) + query, headers=ENT8_ADMIN if headers is None else headers
    ) as r:
        return r.status, await r.json()


def indexes(body: dict[str, Any]) -> list[int]:
    """The indexes of the client's values, in record order (the node's signature left out)."""
    return [v["index"] for v in client_view(body["values"], body["handle"])]


def client_record(body: dict[str, Any]) -> dict[str, Any]:
    """The whole answer with the node's signature left out of its values."""
    return {**body, "values": client_view(body["values"], body["handle"])}


def signed(body: dict[str, Any]) -> dict[str, Any]:
    """The record's one node signature (checked: index >= 400, covering its public values)."""
    return assert_signed(body["values"], body["handle"])


def by_index(body: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {v["index"]: v for v in body["values"]}


def ok(handle: str) -> dict[str, Any]:
    return {"responseCode": 1, "handle": handle}


def assert_two_challenges(headers: Any, error: str | None = None) -> None:
    challenges = headers.getall("WWW-Authenticate", [])
    assert len(challenges) == 2, challenges
    assert challenges[0] == 'Basic realm="handle"'
    handle_challenge = r'Handle sessionId="[^"]+", nonce="[^"]+"'
    if error:
        handle_challenge += f', error="{error}"'
    assert re.fullmatch(handle_challenge, challenges[1]), challenges


async def create_t1(server: Server) -> dict[str, Any]:
    status, body = await put(server, T1, B1)
    assert status == 201, body
    status, got = await get(server, T1)
    assert status == 200
    return got


# ------------------------------------------------------------------ create


@pytest.mark.parametrize("query", ["", "?overwrite=false", "?overwrite=true"])
async def test_create_answers_201(server: Server, query: str) -> None:
    async with server.session.put(server.api(T1) + query, json=B1, headers=WRITER) as r:
        assert r.status == 201
        assert "Location" not in r.headers
        assert r.headers["Content-Type"] == "application/json;charset=utf-8"
        body = await r.json()
    assert body == ok(T1)
    assert list(body) == ["responseCode", "handle"]
    status, got = await get(server, T1)
    assert status == 200
    assert indexes(got) == [1, 100]
    signed(got)
    assert got["values"][0]["data"] == {"format": "string", "value": "https://example.org/t-1"}


async def test_create_echoes_the_handle_as_sent(server: Server) -> None:
    status, body = await put(server, "88.118.8/t-lower", [URL_1])
    assert status == 201
    assert body == ok("88.118.8/t-lower")
    status, got = await get(server, "88.118.8/T-LOWER")
    assert status == 200
    assert got["handle"] == "88.118.8/T-LOWER"


async def test_create_keeps_body_order(server: Server) -> None:
    body = [ADMIN_100, {"index": 7, "type": "DESC", "data": "seven"}, URL_1]
    status, _ = await put(server, T1, body)
    assert status == 201
    _, got = await get(server, T1)
    assert indexes(got) == [100, 7, 1]
    signed(got)


async def test_create_adds_no_admin_value(server: Server) -> None:
    status, _ = await put(server, T1, [URL_1])
    assert status == 201
    _, got = await get(server, T1)
    assert indexes(got) == [1]
    signed(got)


@pytest.mark.parametrize(
    "query",
    ["?overwrite=false", "?overwrite=FALSE", "?overwrite=no", "?overwrite=yes", "?overwrite="],
)
async def test_existing_handle_without_overwrite(server: Server, query: str) -> None:
    before = await create_t1(server)
    status, body = await put(server, T1, [{"index": 9, "type": "DESC", "data": "new"}], query)
    assert status == 409
    assert body == {"responseCode": 101, "handle": T1}
    _, after = await get(server, T1)
    assert after == before


async def test_bare_overwrite_parameter_means_false(server: Server) -> None:
    before = await create_t1(server)
    url = yarl.URL(server.api(T1) + "?overwrite", encoded=True)
    async with server.session.put(url, json=[URL_1], headers=WRITER) as r:
        assert r.status == 409
        assert await r.json() == {"responseCode": 101, "handle": T1}
    _, after = await get(server, T1)
    assert after == before


async def test_overwrite_true_in_any_case_replaces(server: Server) -> None:
    await create_t1(server)
    status, body = await put(server, T1, [URL_1], "?overwrite=TRUE")
    assert status == 200
    assert body == ok(T1)
    _, got = await get(server, T1)
    assert indexes(got) == [1]
    signed(got)


# ------------------------------------------------------------------ replace


async def test_replace_is_a_diff(server: Server) -> None:
    clock = Clock()
    server.node.registry.clock = clock
    t0 = clock.now
    await create_t1(server)

    clock.now = t0 + 3600
    changed = {"values": [{**URL_1, "data": "https://example.org/changed"}, ADMIN_100]}
    changed["values"].append({"index": 5, "type": "DESC", "data": "five"})
    status, body = await put(server, T1, changed)
    assert status == 200
    assert body == ok(T1)
    _, got = await get(server, T1)
    assert indexes(got) == [1, 100, 5]
    values = by_index(got)
    assert values[100]["timestamp"] == stamp(t0)  # unchanged: keeps its timestamp
    assert values[1]["timestamp"] == stamp(t0 + 3600)
    assert values[1]["data"]["value"] == "https://example.org/changed"
    assert values[5]["timestamp"] == stamp(t0 + 3600)
    assert signed(got)["timestamp"] == stamp(t0 + 3600)  # signed afresh at the write

    clock.now = t0 + 7200
    status, body = await put(server, T1, B1)
    assert status == 200
    _, got = await get(server, T1)
    assert indexes(got) == [1, 100]  # 5 is gone: missing from the replacement
    values = by_index(got)
    assert values[100]["timestamp"] == stamp(t0)
    assert values[1]["timestamp"] == stamp(t0 + 7200)
    assert values[1]["data"]["value"] == "https://example.org/t-1"
    assert signed(got)["timestamp"] == stamp(t0 + 7200)


async def test_identical_replace_keeps_every_timestamp(server: Server) -> None:
    clock = Clock()
    server.node.registry.clock = clock
    before = await create_t1(server)
    clock.now += 86400
    status, body = await put(server, T1, B1)
    assert status == 200
    assert body == ok(T1)
    _, after = await get(server, T1)
    # A write that changes nothing leaves the record as it was, the node's signature too.
    signed(after)
    assert client_record(after) == client_record(before)


async def test_replace_without_controlled_clock_restamps_no_earlier(server: Server) -> None:
    before = by_index(await create_t1(server))
    changed = [{**URL_1, "data": "https://example.org/other"}, ADMIN_100]
    status, _ = await put(server, T1, changed)
    assert status == 200
    _, got = await get(server, T1)
    after = by_index(got)
    assert after[100] == before[100]
    assert after[1]["timestamp"] >= before[1]["timestamp"]
    assert after[1]["data"]["value"] == "https://example.org/other"


async def test_replace_keeps_body_order(server: Server) -> None:
    await create_t1(server)
    status, _ = await put(server, T1, [ADMIN_100, {"index": 7, "type": "DESC", "data": "x"}, URL_1])
    assert status == 200
    _, got = await get(server, T1)
    assert indexes(got) == [100, 7, 1]
    signed(got)


# ------------------------------------------------------------------ ?index= adds


EMAIL_2 = {"index": 2, "type": "EMAIL", "data": "a@example.org"}


async def test_index_add_new_value_answers_201(server: Server) -> None:
    await create_t1(server)
    status, body = await put(server, T1, [EMAIL_2], "?index=2")
    assert status == 201
    assert body == ok(T1)
    _, got = await get(server, T1)
    assert by_index(got)[2]["data"]["value"] == "a@example.org"
    assert indexes(got) == [1, 2, 100]
    signed(got)


async def test_index_add_existing_value_answers_200(server: Server) -> None:
    await create_t1(server)
    assert (await put(server, T1, [EMAIL_2], "?index=2"))[0] == 201
    status, body = await put(server, T1, [EMAIL_2], "?index=2")
    assert status == 200
    assert body == ok(T1)


async def test_index_add_existing_without_overwrite(server: Server) -> None:
    await create_t1(server)
    assert (await put(server, T1, [EMAIL_2], "?index=2"))[0] == 201
    _, before = await get(server, T1)
    changed = {**EMAIL_2, "data": "b@example.org"}
    status, body = await put(server, T1, [changed], "?index=2&overwrite=false")
    assert status == 409
    assert body == {"responseCode": 201, "message": "Index conflict for 2", "handle": T1}
    _, after = await get(server, T1)
    assert after == before


async def test_index_replace_with_overwrite(server: Server) -> None:
    await create_t1(server)
    assert (await put(server, T1, [EMAIL_2], "?index=2"))[0] == 201
    changed = {**EMAIL_2, "data": "b@example.org"}
    status, body = await put(server, T1, [changed], "?index=2&overwrite=true")
    assert status == 200
    assert body == ok(T1)
    _, got = await get(server, T1)
    assert by_index(got)[2]["data"]["value"] == "b@example.org"
    signed(got)


async def test_index_add_mixing_new_and_existing_answers_200(server: Server) -> None:
    await create_t1(server)
    assert (await put(server, T1, [EMAIL_2], "?index=2"))[0] == 201
    six = {"index": 6, "type": "DESC", "data": "six"}
    status, body = await put(server, T1, [EMAIL_2, six], "?index=2&index=6")
    assert status == 200
    assert body == ok(T1)
    _, got = await get(server, T1)
    assert indexes(got) == [1, 2, 6, 100]
    signed(got)


async def test_index_various(server: Server) -> None:
    await create_t1(server)
    seven = {"index": 7, "type": "DESC", "data": "seven"}
    status, body = await put(server, T1, [seven], "?index=various")
    assert status == 201
    assert body == ok(T1)
    _, got = await get(server, T1)
    assert by_index(got)[7]["data"]["value"] == "seven"


async def test_index_add_resorts_the_record(server: Server) -> None:
    five = {"index": 5, "type": "DESC", "data": "five"}
    assert (await put(server, T1, [ADMIN_100, five, URL_1]))[0] == 201
    status, _ = await put(server, T1, [{"index": 3, "type": "DESC", "data": "three"}], "?index=3")
    assert status == 201
    _, got = await get(server, T1)
    assert indexes(got) == [1, 3, 5, 100]
    signed(got)


async def test_index_mismatch(server: Server) -> None:
    before = await create_t1(server)
    status, body = await put(server, T1, [EMAIL_2], "?index=3")
    assert status == 400
    assert body["responseCode"] == 4
    assert body["handle"] == T1
    assert body["message"]
    _, after = await get(server, T1)
    assert after == before


async def test_index_add_on_missing_handle(server: Server) -> None:
    status, body = await put(server, "88.118.8/T-NOEXIST", [EMAIL_2], "?index=2")
    assert status == 404
    assert body == {"responseCode": 100, "handle": "88.118.8/T-NOEXIST"}
    status, _ = await get(server, "88.118.8/T-NOEXIST")
    assert status == 404


# ------------------------------------------------------------------ body forms


@pytest.mark.parametrize(
    "body",
    [
        {"values": [URL_1]},
        [URL_1],
        URL_1,
        {"handle": T1, "values": [URL_1]},
        {"handle": "88.118.8/t-1", "values": [URL_1]},
    ],
    ids=["values", "array", "single", "handle", "handle-other-case"],
)
async def test_body_forms(server: Server, body: Any) -> None:
    status, answer = await put(server, T1, body)
    assert status == 201
    assert answer == ok(T1)
    _, got = await get(server, T1)
    assert indexes(got) == [1]
    signed(got)
    assert got["values"][0]["type"] == "URL"
    assert got["values"][0]["data"] == {"format": "string", "value": "https://example.org/t-1"}


async def test_body_handle_other_case_on_existing_handle(server: Server) -> None:
    await create_t1(server)
    status, body = await put(server, T1, {"handle": "88.118.8/t-1", "values": [URL_1]})
    assert status == 200
    assert body == ok(T1)


async def test_body_handle_mismatch(server: Server) -> None:
    status, body = await put(server, T1, {"handle": "88.118.8/OTHER", "values": [URL_1]})
    assert status == 400
    assert body["responseCode"] == 4
    assert body["handle"] == T1
    assert body["message"]
    assert (await get(server, "88.118.8/OTHER"))[0] == 404
    assert (await get(server, T1))[0] == 404


async def test_empty_body_array_creates_empty_handle(server: Server) -> None:
    status, body = await put(server, T1, {"values": []})
    assert status == 201
    assert body == ok(T1)
    status, got = await get(server, T1)
    assert status == 200
    assert got == {"responseCode": 200, "values": [], "handle": T1}


async def test_content_type_with_charset(server: Server) -> None:
    headers = {**ENT8_ADMIN, "Content-Type": "application/json; charset=utf-8"}
    status, body, _ = await put_raw(server, T1, orjson.dumps([URL_1]), headers)
    assert status == 201
    assert body == ok(T1)


# ------------------------------------------------------------------ minting


@pytest.mark.parametrize("start", ["88.118.8/", "88.118.8/PFX-"])
async def test_mint_new_suffix(server: Server, start: str) -> None:
    status, body = await put(server, start, [URL_1], "?mintNewSuffix=true")
    assert status == 201
    assert list(body) == ["responseCode", "handle"]
    assert body["responseCode"] == 1
    assert re.fullmatch(re.escape(start) + UUID4, body["handle"]), body
    status, got = await get(server, body["handle"])
    assert status == 200
    assert got["values"][0]["data"]["value"] == "https://example.org/t-1"
    status, again = await put(server, start, [URL_1], "?mintNewSuffix=true")
    assert status == 201
    assert again["handle"] != body["handle"]


async def test_mint_bare_flag_counts_as_true(server: Server) -> None:
    url = yarl.URL(server.api("88.118.8/") + "?mintNewSuffix", encoded=True)
    async with server.session.put(url, json=[URL_1], headers=WRITER) as r:
        assert r.status == 201
        body = await r.json()
    assert re.fullmatch("88\\.118\\.8/" + UUID4, body["handle"]), body


async def test_mint_without_slash_is_refused(server: Server) -> None:
    status, body = await put(server, "88.118.8", [URL_1], "?mintNewSuffix=true")
    assert status == 400
    assert body["responseCode"] == 102
    assert body["handle"] == "88.118.8"


async def test_mint_without_auth(server: Server) -> None:
    async with server.session.put(
        server.api("88.118.8/") + "?mintNewSuffix=true", json=[URL_1], headers=JSON
    ) as r:
        assert r.status == 401
        assert await r.json() == {"responseCode": 402, "handle": "88.118.8/"}
        assert_two_challenges(r.headers)
    async with server.session.get(
        server.url + "/api/handles?prefix=88.118.8", headers=ENT8_ADMIN
    ) as r:
        assert (await r.json())["handles"] == []


# ------------------------------------------------------------------ bad input: nothing stored


BAD_BODIES: list[tuple[str, bytes, dict[str, str], tuple[str, ...], int, int, str | None]] = [
    # (id, body, extra headers, skipped auto headers, HTTP, responseCode, message)
    ("text-plain", orjson.dumps([URL_1]), {"Content-Type": "text/plain"}, (), 400, 4, None),
    ("no-content-type", orjson.dumps([URL_1]), {}, ("Content-Type",), 400, 4, None),
    ("empty-content-type", orjson.dumps([URL_1]), {"Content-Type": ""}, (), 400, 4, None),
    (
        "form",
        orjson.dumps([URL_1]),
        {"Content-Type": "application/x-www-form-urlencoded"},
        (),
        400,
        4,
        None,
    ),
    ("truncated", b'{"values":[{"index":1,', JSON, (), 400, 4, None),
    ("empty", b"", JSON, (), 400, 4, None),
    ("blank", b"  \n", JSON, (), 400, 4, None),
    ("empty-object", b"{}", JSON, (), 400, 4, None),
    ("not-json", b"hello world", JSON, (), 400, 4, None),
    ("json-number", b"42", JSON, (), 400, 4, None),
    (
        "index-0",
        orjson.dumps([{**URL_1, "index": 0}]),
        JSON,
        (),
        400,
        202,
        "Value indexes must be positive",
    ),
    (
        "index-negative",
        orjson.dumps([{**URL_1, "index": -1}]),
        JSON,
        (),
        400,
        202,
        "Value indexes must be positive",
    ),
    ("no-index", orjson.dumps([{"type": "URL", "data": "x"}]), JSON, (), 400, 4, None),
    ("index-not-number", orjson.dumps([{**URL_1, "index": "one"}]), JSON, (), 400, 4, None),
    (
        "data-without-format",
        orjson.dumps([{**URL_1, "data": {"value": "x"}}]),
        JSON,
        (),
        400,
        4,
        None,
    ),
    (
        "format-bogus",
        orjson.dumps([{**URL_1, "data": {"format": "bogus", "value": "x"}}]),
        JSON,
        (),
        400,
        4,
        None,
    ),
    (
        "duplicate-index",
        orjson.dumps([URL_1, {**URL_1, "data": "other"}]),
        JSON,
        (),
        409,
        201,
        "Index conflict for 1",
    ),
    ("permissions-12", orjson.dumps([{**URL_1, "permissions": "12"}]), JSON, (), 400, 202, None),
    (
        "bad-base64",
        orjson.dumps([{**URL_1, "data": {"format": "base64", "value": "@@@"}}]),
        JSON,
        (),
        400,
        202,
        None,
    ),
    (
        "bad-hex",
        orjson.dumps([{**URL_1, "data": {"format": "hex", "value": "XYZ"}}]),
        JSON,
        (),
        400,
        202,
        None,
    ),
    (
        "admin-bad-permissions",
        orjson.dumps(
            [
                {
                    **ADMIN_100,
                    "data": {
                        "format": "admin",
                        "value": {"handle": PREFIX8, "index": 300, "permissions": "0111"},
                    },
                }
            ]
        ),
        JSON,
        (),
        400,
        202,
        None,
    ),
    (
        "key-bad-base64",
        orjson.dumps([{"index": 1, "type": "HS_PUBKEY", "data": {"format": "key", "value": "!!"}}]),
        JSON,
        (),
        400,
        202,
        None,
    ),
    ("values-not-array", b'{"values":{"index":1}}', JSON, (), 400, 4, None),
]


@pytest.mark.parametrize(
    ("body", "headers", "skip", "status", "code", "message"),
    [case[1:] for case in BAD_BODIES],
    ids=[case[0] for case in BAD_BODIES],
)
@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
async def test_bad_input_stores_nothing(
    server: Server,
    existing: bool,
    body: bytes,
    headers: dict[str, str],
    skip: tuple[str, ...],
    status: int,
    code: int,
    message: str | None,
) -> None:
    before = await create_t1(server) if existing else None
    got_status, answer, ctype = await put_raw(server, T1, body, {**ENT8_ADMIN, **headers}, skip)
    assert got_status == status, answer
    assert ctype == "application/json;charset=utf-8"
    assert answer["responseCode"] == code
    assert answer["handle"] == T1
    assert answer["message"]
    assert "Traceback" not in answer["message"]
    if message is not None:
        assert answer["message"] == message
    after_status, after = await get(server, T1)
    if existing:
        assert after_status == 200
        assert after == before
    else:
        assert after_status == 404
        assert after == {"responseCode": 100, "handle": T1}


@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
async def test_body_over_the_size_limit(server: Server, existing: bool) -> None:
    before = await create_t1(server) if existing else None
    limit = server.node.config.max_body
    assert limit == 262_144
    big = {"values": [{"index": 1, "type": "DESC", "data": "x" * limit}]}
    status, answer, ctype = await put_raw(server, T1, orjson.dumps(big), WRITER)
    assert status == 413
    assert ctype == "application/json;charset=utf-8"
    assert answer["responseCode"] == 4
    assert answer["message"]
    after_status, after = await get(server, T1)
    if existing:
        assert after == before
    else:
        assert after_status == 404


async def test_duplicate_index_on_existing_handle(server: Server) -> None:
    before = await create_t1(server)
    status, body = await put(server, T1, [URL_1, {**URL_1, "data": "again"}], "?index=1")
    assert status == 409
    assert body == {"responseCode": 201, "message": "Index conflict for 1", "handle": T1}
    assert (await get(server, T1))[1] == before


# ------------------------------------------------------------------ delete


async def test_delete_whole_record(server: Server) -> None:
    await create_t1(server)
    status, body = await delete(server, T1)
    assert status == 200
    assert body == ok(T1)
    assert list(body) == ["responseCode", "handle"]
    assert (await get(server, T1))[0] == 404
    status, body = await delete(server, T1)
    assert status == 404
    assert body == {"responseCode": 100, "handle": T1}


async def test_delete_index_on_missing_handle(server: Server) -> None:
    status, body = await delete(server, T1, "?index=1")
    assert status == 404
    assert body == {"responseCode": 100, "handle": T1}


async def test_delete_one_value_keeps_order(server: Server) -> None:
    body = [ADMIN_100, {"index": 7, "type": "DESC", "data": "x"}, URL_1]
    assert (await put(server, T1, body))[0] == 201
    status, answer = await delete(server, T1, "?index=7")
    assert status == 200
    assert answer == ok(T1)
    _, got = await get(server, T1)
    assert indexes(got) == [100, 1]
    signed(got)


async def test_delete_missing_index(server: Server) -> None:
    before = await create_t1(server)
    status, body = await delete(server, T1, "?index=99")
    assert status == 400
    assert body == {"responseCode": 200, "handle": T1}
    assert (await get(server, T1))[1] == before


async def test_delete_indexes_all_or_nothing(server: Server) -> None:
    three = {"index": 3, "type": "DESC", "data": "three"}
    assert (await put(server, T1, [URL_1, three, ADMIN_100]))[0] == 201
    _, before = await get(server, T1)
    status, body = await delete(server, T1, "?index=3&index=99")
    assert status == 400
    assert body["responseCode"] == 200
    assert body["handle"] == T1
    _, after = await get(server, T1)
    assert after == before
    assert 3 in indexes(after)


async def test_delete_index_not_a_number(server: Server) -> None:
    before = await create_t1(server)
    status, body = await delete(server, T1, "?index=abc")
    assert status == 400
    assert body["responseCode"] == 4
    assert body["handle"] == T1
    assert (await get(server, T1))[1] == before


@pytest.mark.parametrize("existing", [False, True], ids=["missing", "existing"])
async def test_delete_without_auth(server: Server, existing: bool) -> None:
    before = await create_t1(server) if existing else None
    async with server.session.delete(server.api(T1)) as r:
        assert r.status == 401
        assert await r.json() == {"responseCode": 402, "handle": T1}
        assert_two_challenges(r.headers)
    status, after = await get(server, T1)
    if existing:
        assert after == before
    else:
        assert status == 404


async def test_delete_on_unhomed_prefix(server: Server) -> None:
    status, body = await delete(server, "99.999/X")
    assert status == 404
    assert body == {"responseCode": 100, "handle": "99.999/X"}


async def test_delete_by_another_enterprise_admin_is_refused(server: Server) -> None:
    before = await create_t1(server)
    status, body = await delete(server, T1, headers=ENT9_ADMIN)
    assert status == 403
    assert body["responseCode"] == 401
    assert body["handle"] == T1
    assert (await get(server, T1))[1] == before


# ------------------------------------------------------------------ authentication


def raw_basic(userpass: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(userpass).decode()}


WRONG_CREDENTIALS = [
    ("wrong-secret", {"Authorization": basic("300:0.NA/88.118.8", "wrong")}),
    ("unknown-identity", {"Authorization": basic("300:0.NA/NOPE", "ent8-secret")}),
    ("wrong-index", {"Authorization": basic("999:0.NA/88.118.8", "ent8-secret")}),
    ("not-percent-encoded", raw_basic(b"300:0.NA/88.118.8:ent8-secret")),
    ("no-index-wrong-secret", {"Authorization": basic("0.NA/88.118.8", "wrong")}),
]


@pytest.mark.parametrize(
    "headers", [c[1] for c in WRONG_CREDENTIALS], ids=[c[0] for c in WRONG_CREDENTIALS]
)
async def test_wrong_credentials(server: Server, headers: dict[str, str]) -> None:
    async with server.session.put(server.api(T1), json=B1, headers={**headers, **JSON}) as r:
        assert r.status == 401
        assert await r.read() == b""
        assert r.headers["Content-Length"] == "0"
        assert "Content-Type" not in r.headers
        assert_two_challenges(r.headers, error="Identity not verified")
    assert (await get(server, T1))[0] == 404


async def test_identity_with_unencoded_slash_is_accepted(server: Server) -> None:
    headers = {**raw_basic(b"300%3A0.NA/88.118.8:ent8-secret"), **JSON}
    status, body = await put(server, T1, B1, headers=headers)
    assert status == 201
    assert body == ok(T1)


async def test_identity_without_index_authenticates(server: Server) -> None:
    """A user name without ``index:`` means index 0: any HS_SECKEY of the handle."""
    await create_t1(server)
    headers = {"Authorization": basic("0.NA/88.118.8", "ent8-secret")}
    async with server.session.get(server.api(T1), headers=headers) as r:
        assert r.status == 200
        body = await r.json()
    assert body["responseCode"] == 1
    assert body["handle"] == T1


async def test_basic_token_without_password_is_refused(server: Server) -> None:
    headers = {**raw_basic(b"300%3A0.NA%2F88.118.8"), **JSON}
    async with server.session.put(server.api(T1), json=B1, headers=headers) as r:
        assert r.status == 401
        assert await r.read() == b""
        challenges = r.headers.getall("WWW-Authenticate", [])
        assert challenges[0] == 'Basic realm="handle"'
    assert (await get(server, T1))[0] == 404


async def test_bearer_token_is_refused(server: Server) -> None:
    async with server.session.put(
        server.api(T1), json=B1, headers={"Authorization": "Bearer x", **JSON}
    ) as r:
        assert r.status == 401
        assert await r.read() == b""
        assert r.headers["Content-Length"] == "0"
        challenges = r.headers.getall("WWW-Authenticate", [])
        assert len(challenges) == 1, challenges
        assert re.fullmatch(r'Handle sessionId="[^"]+", nonce="[^"]+"', challenges[0])
    assert (await get(server, T1))[0] == 404


async def test_malformed_basic_is_refused(server: Server) -> None:
    async with server.session.put(
        server.api(T1), json=B1, headers={"Authorization": "Basic !!!", **JSON}
    ) as r:
        assert r.status == 401
        assert await r.read() == b""
        assert r.headers["Content-Length"] == "0"
        assert_two_challenges(r.headers)
    assert (await get(server, T1))[0] == 404


async def test_write_without_credentials(server: Server) -> None:
    async with server.session.put(server.api(T1), json=B1, headers=JSON) as r:
        assert r.status == 401
        body = await r.json()
        assert_two_challenges(r.headers)
    assert body == {"responseCode": 402, "handle": T1}
    assert list(body) == ["responseCode", "handle"]
    assert (await get(server, T1))[0] == 404


async def test_write_by_another_enterprise_admin_is_refused(server: Server) -> None:
    status, body = await put(server, T1, B1, headers={**ENT9_ADMIN, **JSON})
    assert status == 403
    assert body["responseCode"] == 401
    assert body["handle"] == T1
    assert (await get(server, T1))[0] == 404
