"""Authorisation over HTTP against a real server: who may change what.

Node 88.118 (admin ``300:0.NA/88.118``) hosts enterprises 88.118.8 and 88.118.9, each with its
own admin. Every refused write must leave the store unchanged (checked with a GET).
"""

from __future__ import annotations

import sqlite3
import stat
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import (
    ENT8,
    ENT8_ADMIN,
    ENT9,
    ENT9_ADMIN,
    NODE_ADMIN,
    NODE_PREFIX,
    SECRETS,
    Server,
    assert_signed,
    basic,
    client_view,
    node_managed,
)

ACTORS: dict[str, dict[str, str]] = {
    "node": NODE_ADMIN,
    "ent8": ENT8_ADMIN,
    "ent9": ENT9_ADMIN,
    "anon": {},
}
OWNER = {ENT8: "ent8", ENT9: "ent9"}
DENIED = (403, 401)  # insufficient permissions
ANONYMOUS = (401, 402)  # authentication needed
ALL = "111111111111"


def url(index: int, data: str, vtype: str = "URL") -> dict[str, Any]:
    return {"index": index, "type": vtype, "data": data}


def admin_value(index: int, handle: str, admin_index: int, perms: str) -> dict[str, Any]:
    return {
        "index": index,
        "type": "HS_ADMIN",
        "data": {
            "format": "admin",
            "value": {"handle": handle, "index": admin_index, "permissions": perms},
        },
    }


def prefix_body(prefix: str, secret: str) -> list[dict[str, Any]]:
    """A prefix handle as an admin PUTs it: its own HS_ADMIN and HS_SECKEY."""
    return [
        admin_value(100, f"0.NA/{prefix}", 300, ALL),
        {"index": 300, "type": "HS_SECKEY", "data": secret, "permissions": "1100"},
    ]


async def call(
    server: Server,
    method: str,
    handle: str,
    headers: dict[str, str],
    body: Any = None,
    index: int | None = None,
) -> tuple[int, Any]:
    """(HTTP status, JSON body or None for an empty body)."""
    params = {"index": str(index)} if index is not None else None
    kwargs: dict[str, Any] = {"headers": headers, "params": params}
    if body is not None:
        kwargs["json"] = body
    async with server.session.request(method, server.api(handle), **kwargs) as r:
        raw = await r.read()
        return r.status, (await r.json(content_type=None)) if raw.strip() else None


def rc(body: Any) -> int | None:
    return body.get("responseCode") if isinstance(body, dict) else None


async def snapshot(server: Server, handle: str) -> tuple[int, Any]:
    """The record as the node admin sees it (restricted values and timestamps included)."""
    return await call(server, "GET", handle, NODE_ADMIN)


async def values_of(server: Server, handle: str) -> dict[int, tuple[str, Any]] | None:
    """The record's client values by index; it must carry the node's signature."""
    status, body = await snapshot(server, handle)
    if status == 404:
        return None
    assert status == 200, body
    assert_signed(body["values"], handle)
    return {
        v["index"]: (v["type"], v["data"]["value"]) for v in client_view(body["values"], handle)
    }


async def seed(server: Server, handle: str, values: list[dict[str, Any]]) -> None:
    status, body = await call(server, "PUT", handle, NODE_ADMIN, values)
    assert (status, rc(body)) == (201, 1), body


def expect(actor: str, allowed: set[str], ok: tuple[int, int]) -> tuple[int, int]:
    if actor == "anon":
        return ANONYMOUS
    return ok if actor in allowed else DENIED


# ------------------------------------------------------------------ identifiers


@dataclass(frozen=True)
class Op:
    method: str
    seeded: bool  # the identifier exists before
    body: list[dict[str, Any]] | None
    index: int | None
    status: int  # on success
    after: dict[int, tuple[str, Any]] | None  # the record's values after success


ORIG = [url(1, "https://e/orig"), url(2, "orig", "DESC")]
ORIG_VALUES = {1: ("URL", "https://e/orig"), 2: ("DESC", "orig")}

OPS = {
    "create": Op("PUT", False, [url(1, "https://e/new")], None, 201, {1: ("URL", "https://e/new")}),
    "replace": Op(
        "PUT", True, [url(1, "https://e/replaced")], None, 200, {1: ("URL", "https://e/replaced")}
    ),
    "add_value": Op(
        "PUT",
        True,
        [url(3, "a@e.org", "EMAIL")],
        3,
        201,
        {**ORIG_VALUES, 3: ("EMAIL", "a@e.org")},
    ),
    "modify_value": Op(
        "PUT",
        True,
        [url(1, "https://e/modified")],
        1,
        200,
        {1: ("URL", "https://e/modified"), 2: ("DESC", "orig")},
    ),
    "remove_value": Op("DELETE", True, None, 2, 200, {1: ("URL", "https://e/orig")}),
    "delete": Op("DELETE", True, None, None, 200, None),
}


@pytest.mark.parametrize("actor", list(ACTORS))
@pytest.mark.parametrize("prefix", [ENT8, ENT9])
@pytest.mark.parametrize("op", list(OPS))
async def test_identifier_matrix(server: Server, op: str, prefix: str, actor: str) -> None:
    spec = OPS[op]
    handle = f"{prefix}/M-{op}"
    if spec.seeded:
        await seed(server, handle, ORIG)
    before = await snapshot(server, handle)
    assert before[0] == (200 if spec.seeded else 404)

    status, body = await call(server, spec.method, handle, ACTORS[actor], spec.body, spec.index)

    wanted = expect(actor, {"node", OWNER[prefix]}, (spec.status, 1))
    assert (status, rc(body)) == wanted, body
    assert body["handle"] == handle
    if wanted[1] == 1:
        assert await values_of(server, handle) == spec.after
    else:
        assert await snapshot(server, handle) == before


# ------------------------------------------------------------------ prefix handles


@dataclass(frozen=True)
class PrefixOp:
    method: str
    handle: str
    body: list[dict[str, Any]] | None
    index: int | None
    allowed: frozenset[str]
    status: int
    # (index, type, data value) expected after success; None: the handle is gone
    after: tuple[int, str, Any] | None


PREFIX_OPS = {
    # needs "add derived prefix" in an ancestor prefix handle (0.NA/88.118.8 or 0.NA/88.118)
    "create_derived_prefix": PrefixOp(
        "PUT",
        "0.NA/88.118.8.1",
        prefix_body("88.118.8.1", "sub-secret"),
        None,
        frozenset({"node", "ent8"}),
        201,
        (300, "HS_SECKEY", "sub-secret"),
    ),
    "create_enterprise_prefix": PrefixOp(
        "PUT",
        "0.NA/88.118.7",
        prefix_body("88.118.7", "ent7-secret"),
        None,
        frozenset({"node"}),
        201,
        (300, "HS_SECKEY", "ent7-secret"),
    ),
    # 88.118.80 merely starts with the text "88.118.8": ENT8 is no ancestor of it.
    "create_lookalike_prefix": PrefixOp(
        "PUT",
        "0.NA/88.118.80",
        prefix_body("88.118.80", "s80"),
        None,
        frozenset({"node"}),
        201,
        (300, "HS_SECKEY", "s80"),
    ),
    # "delete derived prefix" in 0.NA/88.118, or "delete handle" in the handle itself
    "delete_enterprise_prefix": PrefixOp(
        "DELETE", "0.NA/88.118.8", None, None, frozenset({"node", "ent8"}), 200, None
    ),
    "node_prefix_add_admin": PrefixOp(
        "PUT",
        "0.NA/88.118",
        [admin_value(101, "0.NA/88.118.8", 300, ALL)],
        101,
        frozenset({"node"}),
        201,
        (101, "HS_ADMIN", {"handle": "0.NA/88.118.8", "index": 300, "permissions": ALL}),
    ),
    "node_prefix_add_value": PrefixOp(
        "PUT",
        "0.NA/88.118",
        [url(2, "changed", "DESC")],
        2,
        frozenset({"node"}),
        201,
        (2, "DESC", "changed"),
    ),
    "node_prefix_modify_admin": PrefixOp(
        "PUT",
        "0.NA/88.118",
        [admin_value(100, "0.NA/88.118.9", 300, ALL)],
        100,
        frozenset({"node"}),
        200,
        (100, "HS_ADMIN", {"handle": "0.NA/88.118.9", "index": 300, "permissions": ALL}),
    ),
    "node_prefix_delete": PrefixOp(
        "DELETE", "0.NA/88.118", None, None, frozenset({"node"}), 200, None
    ),
    "ent9_prefix_add_value": PrefixOp(
        "PUT",
        "0.NA/88.118.9",
        [url(2, "nine", "DESC")],
        2,
        frozenset({"node", "ent9"}),
        201,
        (2, "DESC", "nine"),
    ),
}


@pytest.mark.parametrize("actor", list(ACTORS))
@pytest.mark.parametrize("op", list(PREFIX_OPS))
async def test_prefix_handle_matrix(server: Server, op: str, actor: str) -> None:
    spec = PREFIX_OPS[op]
    before = await snapshot(server, spec.handle)

    status, body = await call(
        server, spec.method, spec.handle, ACTORS[actor], spec.body, spec.index
    )

    wanted = expect(actor, set(spec.allowed), (spec.status, 1))
    assert (status, rc(body)) == wanted, body
    assert body["handle"] == spec.handle
    if wanted[1] != 1:
        assert await snapshot(server, spec.handle) == before
        return
    # Anonymous GET: after changing or deleting 0.NA/88.118 the node admin may be gone.
    if spec.after is None:
        status, _ = await call(server, "GET", spec.handle, {})
        assert status == 404
        return
    index, vtype, data = spec.after
    reader = {}
    if vtype == "HS_SECKEY":  # restricted: read it as the new prefix's own admin
        reader = {"Authorization": basic(f"300:{spec.handle}", data)}
    status, got = await call(server, "GET", spec.handle, reader)
    assert status == 200, got
    by_index = {v["index"]: v for v in got["values"]}
    assert by_index[index]["type"] == vtype
    assert by_index[index]["data"]["value"] == data


async def test_new_enterprise_admin_controls_only_its_prefix(server: Server) -> None:
    ent7 = {"Authorization": basic("300:0.NA/88.118.7", "ent7-secret")}
    await seed(server, f"{ENT8}/EXISTING", ORIG)
    existing = await snapshot(server, f"{ENT8}/EXISTING")

    # Before the prefix exists, its admin cannot log in.
    status, body = await call(server, "GET", f"{ENT8}/EXISTING", ent7)
    assert (status, body) == (401, None)

    status, body = await call(
        server, "PUT", "0.NA/88.118.7", NODE_ADMIN, prefix_body("88.118.7", "ent7-secret")
    )
    assert (status, rc(body)) == (201, 1), body

    status, body = await call(server, "PUT", "88.118.7/A", ent7, [url(1, "https://e/7a")])
    assert (status, rc(body)) == (201, 1), body
    assert await values_of(server, "88.118.7/A") == {1: ("URL", "https://e/7a")}

    # A derived prefix of its own enterprise is within its rights.
    status, body = await call(
        server, "PUT", "0.NA/88.118.7.5", ent7, prefix_body("88.118.7.5", "s75")
    )
    assert (status, rc(body)) == (201, 1), body

    # Nothing under another enterprise.
    status, body = await call(server, "PUT", f"{ENT8}/A", ent7, [url(1, "https://e/8a")])
    assert (status, rc(body)) == DENIED, body
    assert (await snapshot(server, f"{ENT8}/A"))[0] == 404
    status, body = await call(
        server, "PUT", f"{ENT8}/EXISTING", ent7, [url(1, "https://e/hijack")], index=1
    )
    assert (status, rc(body)) == DENIED, body
    status, body = await call(server, "DELETE", f"{ENT8}/EXISTING", ent7)
    assert (status, rc(body)) == DENIED, body
    assert await snapshot(server, f"{ENT8}/EXISTING") == existing


# ------------------------------------------------------------------ HS_ADMIN semantics


async def test_own_hs_admin_grants_a_third_identity_exactly_its_rights(server: Server) -> None:
    handle = f"{ENT8}/OWN"
    values = [url(1, "https://e/orig"), admin_value(100, "0.NA/88.118.9", 300, "000000010000")]
    status, body = await call(server, "PUT", handle, ENT8_ADMIN, values)
    assert (status, rc(body)) == (201, 1), body
    # Control: without such an HS_ADMIN, ENT9 has no say over an 88.118.8 identifier.
    await seed(server, f"{ENT8}/PLAIN", ORIG)
    status, body = await call(
        server, "PUT", f"{ENT8}/PLAIN", ENT9_ADMIN, [url(1, "https://e/x")], index=1
    )
    assert (status, rc(body)) == DENIED, body

    status, body = await call(server, "PUT", handle, ENT9_ADMIN, [url(1, "https://e/m")], index=1)
    assert (status, rc(body)) == (200, 1), body
    after_modify = await snapshot(server, handle)
    assert {v["index"]: v["data"]["value"] for v in after_modify[1]["values"]}[1] == "https://e/m"

    refused: list[tuple[str, list[dict[str, Any]] | None, int | None]] = [
        ("DELETE", None, None),  # delete handle
        ("PUT", [admin_value(101, "0.NA/88.118.9", 300, ALL)], 101),  # add admin
        ("PUT", [admin_value(100, "0.NA/88.118.9", 300, ALL)], 100),  # modify admin
        ("PUT", [url(5, "x", "DESC")], 5),  # add value
        ("DELETE", None, 1),  # remove value
        ("DELETE", None, 100),  # remove admin
    ]
    for method, body_, index in refused:
        status, body = await call(server, method, handle, ENT9_ADMIN, body_, index)
        assert (status, rc(body)) == DENIED, (method, index, body)
    assert await snapshot(server, handle) == after_modify


async def test_enterprise_admin_keeps_control_through_prefix_handle(server: Server) -> None:
    handle = f"{ENT8}/R"
    values = [url(1, "https://e/orig"), admin_value(100, "0.NA/88.118.8", 300, ALL)]
    status, body = await call(server, "PUT", handle, ENT8_ADMIN, values)
    assert (status, rc(body)) == (201, 1), body

    # Hand the handle's own HS_ADMIN to someone else: ENT8 no longer appears in it.
    status, body = await call(
        server,
        "PUT",
        handle,
        ENT8_ADMIN,
        [admin_value(100, "0.NA/88.118.9", 300, "000000010000")],
        index=100,
    )
    assert (status, rc(body)) == (200, 1), body
    admin = (await values_of(server, handle) or {})[100]
    assert admin == (
        "HS_ADMIN",
        {"handle": "0.NA/88.118.9", "index": 300, "permissions": "000000010000"},
    )

    steps: list[tuple[str, list[dict[str, Any]] | None, int | None, int]] = [
        ("PUT", [url(1, "https://e/still-mine")], 1, 200),
        ("PUT", [url(2, "added", "DESC")], 2, 201),
        ("DELETE", None, 100, 200),
    ]
    for method, body_, index, wanted in steps:
        status, body = await call(server, method, handle, ENT8_ADMIN, body_, index)
        assert (status, rc(body)) == (wanted, 1), (method, index, body)
    assert await values_of(server, handle) == {
        1: ("URL", "https://e/still-mine"),
        2: ("DESC", "added"),
    }
    status, body = await call(server, "DELETE", handle, ENT8_ADMIN)
    assert (status, rc(body)) == (200, 1), body
    assert await values_of(server, handle) is None


# ------------------------------------------------------------------ the node's own keys

NODE_HANDLE = "0.NA/88.118"
NODE_KEY_INDEXES = [600, 601, 700, 701]  # root and signing key 1: HS_PUBKEY 60n, HS_CERT 70n


async def test_node_keys_are_published_in_its_prefix_handle(server: Server) -> None:
    status, body = await call(server, "GET", NODE_HANDLE, {})
    assert status == 200, body
    managed = [(v["index"], v["type"]) for v in body["values"] if node_managed(v, NODE_HANDLE)]
    keys = sorted((i, t) for i, t in managed if t != "HS_SIGNATURE")
    assert keys == [(600, "HS_PUBKEY"), (601, "HS_PUBKEY"), (700, "HS_CERT"), (701, "HS_CERT")]
    assert_signed(body["values"], NODE_HANDLE)
    assert [v["index"] for v in client_view(body["values"], NODE_HANDLE)] == [100]


def _key_write_cases() -> dict[str, tuple[list[dict[str, Any]], int | None]]:
    client = prefix_body(NODE_PREFIX, SECRETS[NODE_PREFIX])
    cert = {"index": 750, "type": "HS_CERT", "data": "a.b.c"}
    return {
        "pubkey-600": ([{"index": 600, "type": "HS_PUBKEY", "data": "signing key 1"}], 600),
        "cert-750": ([cert], 750),
        "desc-600": ([url(600, "not a key", "DESC")], 600),
        "desc-650": ([url(650, "not a key", "DESC")], 650),
        "replace-with-cert-701": ([*client, {**cert, "index": 701}], None),
        "replace-with-desc-700": ([*client, url(700, "not a key", "DESC")], None),
    }


@pytest.mark.parametrize("case", list(_key_write_cases()))
async def test_node_key_indexes_cannot_be_written(server: Server, case: str) -> None:
    """Indexes 600-799 of the node's prefix handle hold its keys: even the node admin's
    PUT with such an index is refused (400, rc 202) and changes nothing."""
    body_, index = _key_write_cases()[case]
    before = await snapshot(server, NODE_HANDLE)
    for v in body_:  # a well-formed key: the node's own signing key 1, published at 601
        if v["type"] == "HS_PUBKEY":
            v["data"] = next(k["data"] for k in before[1]["values"] if k["index"] == 601)
    status, body = await call(server, "PUT", NODE_HANDLE, NODE_ADMIN, body_, index)
    assert (status, rc(body)) == (400, 202), body
    assert await snapshot(server, NODE_HANDLE) == before


async def test_replacing_the_node_prefix_handle_keeps_the_keys(server: Server) -> None:
    _, before = await snapshot(server, NODE_HANDLE)
    body_ = [*prefix_body(NODE_PREFIX, SECRETS[NODE_PREFIX]), url(2, "node", "DESC")]
    status, body = await call(server, "PUT", NODE_HANDLE, NODE_ADMIN, body_)
    assert (status, rc(body)) == (200, 1), body
    _, after = await snapshot(server, NODE_HANDLE)
    assert await values_of(server, NODE_HANDLE) == {
        100: ("HS_ADMIN", {"handle": NODE_HANDLE, "index": 300, "permissions": ALL}),
        300: ("HS_SECKEY", SECRETS[NODE_PREFIX]),
        2: ("DESC", "node"),
    }

    def keys(record: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            v
            for v in record["values"]
            if node_managed(v, NODE_HANDLE) and v["type"] != "HS_SIGNATURE"
        ]

    assert keys(after) == keys(before)
    assert sorted(v["index"] for v in keys(after)) == NODE_KEY_INDEXES


def vlist(index: int, *members: tuple[str, int]) -> dict[str, Any]:
    return {
        "index": index,
        "type": "HS_VLIST",
        "data": {"format": "vlist", "value": [{"handle": h, "index": i} for h, i in members]},
    }


async def test_hs_vlist_group_grants_its_members_the_rights(server: Server) -> None:
    puts = {
        f"{ENT8}/GROUP": [vlist(200, ("0.NA/88.118.9", 300))],
        f"{ENT8}/OTHERGROUP": [vlist(200, ("0.NA/88.118.8", 300))],
        f"{ENT8}/T": [
            url(1, "https://e/t"),
            admin_value(100, f"{ENT8}/GROUP", 200, "011111110011"),
        ],
        f"{ENT8}/U": [
            url(1, "https://e/u"),
            admin_value(100, f"{ENT8}/OTHERGROUP", 200, "011111110011"),
        ],
    }
    for handle, values in puts.items():
        status, body = await call(server, "PUT", handle, ENT8_ADMIN, values)
        assert (status, rc(body)) == (201, 1), (handle, body)

    status, body = await call(
        server, "PUT", f"{ENT8}/T", ENT9_ADMIN, [url(1, "https://e/t2")], index=1
    )
    assert (status, rc(body)) == (200, 1), body
    assert (await values_of(server, f"{ENT8}/T") or {})[1] == ("URL", "https://e/t2")

    # A group that does not list ENT9 gives it nothing.
    u_before = await snapshot(server, f"{ENT8}/U")
    status, body = await call(
        server, "PUT", f"{ENT8}/U", ENT9_ADMIN, [url(1, "https://e/u2")], index=1
    )
    assert (status, rc(body)) == DENIED, body
    assert await snapshot(server, f"{ENT8}/U") == u_before

    # Membership is checked at each request: drop ENT9 from the group and it loses the rights.
    status, body = await call(
        server, "PUT", f"{ENT8}/GROUP", ENT8_ADMIN, [vlist(200, ("0.NA/88.118.8", 300))], index=200
    )
    assert (status, rc(body)) == (200, 1), body
    t_before = await snapshot(server, f"{ENT8}/T")
    status, body = await call(
        server, "PUT", f"{ENT8}/T", ENT9_ADMIN, [url(1, "https://e/t3")], index=1
    )
    assert (status, rc(body)) == DENIED, body
    assert await snapshot(server, f"{ENT8}/T") == t_before


async def test_index0_identity_authenticates_with_any_of_the_handles_secrets(
    server: Server,
) -> None:
    second = {"index": 301, "type": "HS_SECKEY", "data": "second-secret", "permissions": "1100"}
    status, body = await call(server, "PUT", "0.NA/88.118.8", ENT8_ADMIN, [second], index=301)
    assert (status, rc(body)) == (201, 1), body
    handle = f"{ENT8}/Z"
    values = [url(1, "https://e/z0"), admin_value(100, "0.NA/88.118.8", 0, "000000010000")]
    status, body = await call(server, "PUT", handle, ENT8_ADMIN, values)
    assert (status, rc(body)) == (201, 1), body

    for n, secret in enumerate([SECRETS[ENT8], "second-secret"], start=1):
        who = {"Authorization": basic("0.NA/88.118.8", secret)}
        status, body = await call(server, "PUT", handle, who, [url(1, f"https://e/z{n}")], index=1)
        assert (status, rc(body)) == (200, 1), (secret, body)
        assert (await values_of(server, handle) or {})[1] == ("URL", f"https://e/z{n}")

    # An identity with an explicit index authenticates only with that index's secret.
    status, _ = await call(
        server, "GET", handle, {"Authorization": basic("301:0.NA/88.118.8", "second-secret")}
    )
    assert status == 200
    before = await snapshot(server, handle)
    for ident, secret in [("300:0.NA/88.118.8", "second-secret"), ("0.NA/88.118.8", "wrong")]:
        who = {"Authorization": basic(ident, secret)}
        status, body = await call(server, "PUT", handle, who, [url(1, "https://e/bad")], index=1)
        assert (status, body) == (401, None), (ident, body)
    assert await snapshot(server, handle) == before


async def test_seckey_sealed_at_rest_and_key_file_private(server: Server) -> None:
    fresh = "fresh-secret-7-unique-bytes"
    status, body = await call(
        server, "PUT", "0.NA/88.118.7", NODE_ADMIN, prefix_body("88.118.7", fresh)
    )
    assert (status, rc(body)) == (201, 1), body
    # The admin can still read the secret back (sealed, not hashed).
    status, got = await call(server, "GET", "0.NA/88.118.7", NODE_ADMIN)
    assert status == 200
    assert {v["index"]: v["data"]["value"] for v in got["values"]}[300] == fresh

    secrets = [s.encode() for s in [*SECRETS.values(), fresh]]
    db = server.data / "registry.sqlite3"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        blobs = [bytes(row[0]) for row in conn.execute("SELECT vals FROM handles")]
    finally:
        conn.close()
    assert len(blobs) >= 4
    assert sum(b"HS_SECKEY" in blob for blob in blobs) == 4
    for blob in blobs:
        for secret in secrets:
            assert secret not in blob
    for path in server.data.iterdir():  # the database, its WAL, anything else on disk
        if path.is_file() and path.name != "secrets.key":
            raw = path.read_bytes()
            for secret in secrets:
                assert secret not in raw, path.name

    mode = stat.S_IMODE((server.data / "secrets.key").stat().st_mode)
    assert mode == 0o600, oct(mode)
