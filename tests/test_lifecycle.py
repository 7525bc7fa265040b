"""The enterprise prefix lifecycle over the HTTP API (a real server on port 0): applications,
every transition and every refusal, and what each state means for resolution and writes."""

from __future__ import annotations

import json
from typing import Any

import dns.asyncquery
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from registry.model.pubkey import pubkey_to_jwk
from registry.model.values import HS_PUBKEY
from resolver.native import client as native_client
from resolver.native.listener import start_native
from resolver.native.messages import ErrorResponse
from resolver.transfer import ImportLineError, import_lines
from tests.conftest import (
    ENT8_ADMIN,
    JSON,
    NODE_ADMIN,
    Server,
    basic,
    identity,
)
from tests.test_dns_server import NAMES, listening

NEW = "88.118.20"
NEW_SECRET = "a-long-enough-secret"
NEW_ADMIN = {"Authorization": basic(identity(NEW), NEW_SECRET)}
APPLICATION = {
    "prefix": NEW,
    "name": "Motor works",
    "organisation": "Motor Works Ltd",
    "contact": "ops@motor.example",
    "industry": "machinery",
    "secret": NEW_SECRET,
}


async def call(
    server: Server,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    hdrs = {**(headers if headers is not None else NODE_ADMIN), **JSON}
    async with server.session.request(method, server.url + path, json=body, headers=hdrs) as r:
        text = await r.text()  # wrong credentials: 401 with no body
        return r.status, json.loads(text) if text else None


async def act(
    server: Server, prefix: str, action: str, reason: str | None = None, **kw: Any
) -> tuple[int, Any]:
    body = {"reason": reason} if reason is not None else {}
    return await call(server, "POST", f"/api/enterprises/{prefix}/{action}", body, **kw)


async def apply(server: Server, **changes: Any) -> tuple[int, Any]:
    body = {k: v for k, v in {**APPLICATION, **changes}.items() if v is not None}
    return await call(server, "POST", "/api/enterprises", body, headers={})


async def resolve(server: Server, handle: str) -> tuple[int, Any]:
    async with server.session.get(server.api(handle)) as r:
        return r.status, await r.json()


async def put_item(server: Server, handle: str, headers: dict[str, str]) -> tuple[int, Any]:
    body = {"values": [{"index": 1, "type": "URL", "data": "https://example.org/x"}]}
    async with server.session.put(server.api(handle), json=body, headers={**headers, **JSON}) as r:
        text = await r.text()  # wrong credentials: 401 with no body
        return r.status, json.loads(text) if text else None


async def approved(server: Server) -> None:
    assert (await apply(server))[0] == 201
    assert (await act(server, NEW, "approve"))[0] == 200


async def test_apply_then_approve_creates_the_prefix_with_the_applicants_secret(
    server: Server,
) -> None:
    status, body = await apply(server)
    assert status == 201, body
    assert body["state"] == "pending" and body["prefix"] == NEW
    assert body["credential"] == "secret" and NEW_SECRET not in str(body)
    # Pending: not routed, no prefix handle, nothing can be written under it.
    assert (await resolve(server, f"0.NA/{NEW}"))[0] == 404
    assert (await put_item(server, f"{NEW}/a", NEW_ADMIN))[0] in (401, 403)
    status, listing = await call(server, "GET", "/api/enterprises?state=pending")
    assert status == 200
    assert [e["prefix"] for e in listing["enterprises"]] == [NEW]
    only = listing["enterprises"][0]
    assert only["organisation"] == "Motor Works Ltd" and only["history"][0]["action"] == "apply"

    status, body = await act(server, NEW, "approve")
    assert (status, body["state"]) == (200, "active"), body
    assert body["history"][-1]["by"] == identity("88.118")
    assert (await resolve(server, f"0.NA/{NEW}"))[0] == 200
    # The enterprise admin signs in with the secret it applied with.
    assert (await put_item(server, f"{NEW}/a", NEW_ADMIN))[0] == 201
    assert (await resolve(server, f"{NEW}/a"))[0] == 200
    status, shown = await call(server, "GET", f"/api/enterprises/{NEW}", headers=NEW_ADMIN)
    assert (status, shown["state"]) == (200, "active")
    # The secret is stored sealed, never in clear, in the application and the prefix handle.
    async for _, record in _records(server):
        for v in record.values:
            assert NEW_SECRET.encode() not in v.data


async def _records(server: Server) -> Any:
    after = None
    while True:
        rows = await server.node.store.scan(after, 100)
        if not rows:
            return
        for key, record in rows:
            yield key, record
        after = rows[-1][0]


async def test_suspend_reactivate_withdraw_over_resolution_and_writes(server: Server) -> None:
    await approved(server)
    assert (await put_item(server, f"{NEW}/a", NEW_ADMIN))[0] == 201
    # Resolved twice: the second answer comes from the hot path's cached entry.
    assert (await resolve(server, f"{NEW}/a"))[0] == 200
    assert (await resolve(server, f"{NEW}/a"))[0] == 200

    status, body = await act(server, NEW, "suspend", "unpaid invoice")
    assert (status, body["state"], body["reason"]) == (200, "suspended", "unpaid invoice")
    status, body = await resolve(server, f"{NEW}/a")
    assert status == 403, body
    assert body == {
        "responseCode": 2,
        "message": f"prefix {NEW} is suspended",
        "handle": f"{NEW}/a",
    }
    assert (await resolve(server, f"{NEW}/a"))[0] == 403  # and again (no stale hot answer)
    for suffix in ("b", "ENTERPRISE.x", "TEMPLATE.x"):  # no suffix is exempt
        status, body = await put_item(server, f"{NEW}/{suffix}", NEW_ADMIN)
        assert (status, body["message"]) == (403, f"prefix {NEW} is suspended")
    async with server.session.delete(server.api(f"{NEW}/a"), headers=NEW_ADMIN) as r:
        assert r.status == 403
    # The prefix handle itself still resolves (it is the node's record of the allocation).
    assert (await resolve(server, f"0.NA/{NEW}"))[0] == 200

    status, body = await act(server, NEW, "reactivate")
    assert (status, body["state"]) == (200, "active")
    assert (await resolve(server, f"{NEW}/a"))[0] == 200
    assert (await put_item(server, f"{NEW}/b", NEW_ADMIN))[0] == 201

    status, body = await act(server, NEW, "withdraw", "contract ended")
    assert (status, body["state"]) == (200, "withdrawn")
    status, body = await resolve(server, f"{NEW}/a")
    assert (status, body["responseCode"], body["message"]) == (
        404,
        100,
        f"prefix {NEW} is withdrawn",
    )
    assert (await resolve(server, f"0.NA/{NEW}"))[0] == 404  # the prefix handle is gone
    status, body = await call(server, "GET", f"/api/enterprises/{NEW}")
    assert [h["action"] for h in body["history"]] == [
        "apply",
        "approve",
        "suspend",
        "reactivate",
        "withdraw",
    ]
    # Withdrawn is for good.
    for action in ("approve", "reactivate", "suspend", "withdraw", "reject"):
        status, body = await act(server, NEW, action, "x")
        assert (status, body["responseCode"]) == (409, 2), (action, body)
        assert f"prefix {NEW} is withdrawn" in body["message"]


async def test_reject_and_apply_again(server: Server) -> None:
    await apply(server)
    status, body = await act(server, NEW, "reject")
    assert (status, body["message"]) == (400, "reason is required (a non-empty string)")
    status, body = await act(server, NEW, "reject", "incomplete papers")
    assert (status, body["state"], body["reason"]) == (200, "rejected", "incomplete papers")
    assert (await resolve(server, f"0.NA/{NEW}"))[0] == 404
    status, body = await act(server, NEW, "approve")
    assert status == 409 and "rejected" in body["message"]
    status, body = await apply(server)
    assert (status, body["state"]) == (201, "pending")
    assert [h["action"] for h in body["history"]] == ["apply", "reject", "apply"]


@pytest.mark.parametrize(
    ("action", "state"),
    [("suspend", "pending"), ("reactivate", "pending"), ("withdraw", "pending")],
)
async def test_actions_a_pending_prefix_refuses(server: Server, action: str, state: str) -> None:
    await apply(server)
    status, body = await act(server, NEW, action, "why")
    assert status == 409
    assert body["message"].startswith(f"prefix {NEW} is {state}: it cannot be")


async def test_actions_an_active_prefix_refuses(server: Server) -> None:
    await approved(server)
    for action in ("approve", "reject", "reactivate"):
        status, body = await act(server, NEW, action, "why")
        assert status == 409, (action, body)
        assert body["message"].startswith(f"prefix {NEW} is active")
    assert (await act(server, NEW, "suspend", "x"))[0] == 200
    for action in ("approve", "reject", "suspend"):
        assert (await act(server, NEW, action, "why"))[0] == 409, action


async def test_only_the_node_admin_acts_and_lists(server: Server) -> None:
    await apply(server)
    for headers in (ENT8_ADMIN, NEW_ADMIN):
        status, _ = await act(server, NEW, "approve", headers=headers)
        assert status in (401, 403), headers
    status, body = await act(server, NEW, "approve", headers=ENT8_ADMIN)
    assert (status, body["responseCode"]) == (403, 401)
    status, body = await call(server, "GET", "/api/enterprises", headers=ENT8_ADMIN)
    assert status == 403
    status, body = await call(server, "GET", "/api/enterprises", headers={})
    assert status == 401
    # An enterprise admin sees its own prefix, not another's.
    status, body = await call(server, "GET", "/api/enterprises/88.118.8", headers=ENT8_ADMIN)
    assert (status, body["state"]) == (200, "active")
    status, body = await call(server, "GET", "/api/enterprises/88.118.9", headers=ENT8_ADMIN)
    assert status == 403
    status, body = await call(server, "GET", f"/api/enterprises/{NEW}", headers=ENT8_ADMIN)
    assert status == 403
    # Nothing changed.
    status, body = await call(server, "GET", f"/api/enterprises/{NEW}")
    assert body["state"] == "pending"


async def test_unknown_prefixes_and_actions(server: Server) -> None:
    status, body = await act(server, "88.118.77", "approve")
    assert (status, body["responseCode"]) == (404, 100)
    assert body["message"] == "no enterprise prefix 88.118.77 on this node"
    assert (await call(server, "GET", "/api/enterprises/88.118.77"))[0] == 404
    status, body = await act(server, "99.1.2", "approve")
    assert (status, body["responseCode"]) == (400, 301)
    status, body = await act(server, "88.118.8", "explode")
    assert status == 400 and "unknown action" in body["message"]
    status, body = await call(server, "GET", "/api/enterprises?state=sleeping")
    assert status == 400


async def test_a_prefix_made_directly_is_active_and_follows_the_lifecycle(server: Server) -> None:
    """88.118.9 was made with `idnode prefix create` (no application)."""
    assert (
        await put_item(
            server, "88.118.9/x", {"Authorization": basic(identity("88.118.9"), "ent9-secret")}
        )
    )[0] == 201
    _, body = await call(server, "GET", "/api/enterprises?state=active")
    assert {"88.118.8", "88.118.9"} <= {e["prefix"] for e in body["enterprises"]}
    assert (await act(server, "88.118.9", "suspend", "audit"))[0] == 200
    assert (await resolve(server, "88.118.9/x"))[0] == 403
    assert (await resolve(server, "88.118.8/x"))[0] == 404  # other prefixes unaffected
    _, body = await call(server, "GET", "/api/enterprises?state=suspended")
    assert [e["prefix"] for e in body["enterprises"]] == ["88.118.9"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"prefix": "99.1"}, "not under this node"),
        ({"prefix": "88.118"}, "not under this node"),
        ({"prefix": "88.118/x"}, "prefix:"),
        ({"name": ""}, "name is required"),
        ({"name": "n" * 201}, "name is longer than 200"),
        ({"contact": "a\nb"}, "control characters"),
        ({"secret": "short"}, "secret must be"),
        ({"publicKey": "AAAA"}, "exactly one credential"),
        ({"secret": None, "publicKey": "bm90IGEga2V5"}, "publicKey"),
        ({"extra": 1}, "unknown field"),
    ],
)
async def test_bad_applications(server: Server, changes: dict[str, Any], message: str) -> None:
    body = {k: v for k, v in {**APPLICATION, **changes}.items() if v is not None}
    status, answer = await call(server, "POST", "/api/enterprises", body, headers={})
    assert status == 400, answer
    assert message in answer["message"]


async def test_applying_for_a_taken_prefix_or_twice(server: Server) -> None:
    status, body = await apply(server, prefix="88.118.8")
    assert (status, body["message"]) == (409, "prefix 88.118.8 is allocated already")
    assert (await apply(server))[0] == 201
    status, body = await apply(server)
    assert status == 409 and "pending" in body["message"]


async def test_applications_are_limited_per_address(server: Server) -> None:
    codes = [(await apply(server, prefix=f"88.118.{30 + n}"))[0] for n in range(6)]
    assert codes == [201] * 5 + [429]


async def test_a_public_key_application(server: Server) -> None:
    key = server.node.keyring.key(0)
    jwk = key.public_jwk()
    status, body = await apply(server, secret=None, publicKey=jwk)
    assert (status, body["credential"]) == (201, "publicKey"), body
    assert (await act(server, NEW, "approve"))[0] == 200
    record = await server.node.store.get(f"0.NA/{NEW}".upper())
    assert record is not None
    (pub,) = [v for v in record.values if v.index == 300]
    assert pub.type == HS_PUBKEY and pubkey_to_jwk(pub.data) == jwk


async def test_a_suspended_prefix_over_the_native_protocol(server: Server) -> None:
    """The native listener shares the core: its hot path (replies precomputed from the cache
    entry) must not answer for a prefix suspended since."""
    await approved(server)
    assert (await put_item(server, f"{NEW}/a", NEW_ADMIN))[0] == 201
    listener = await start_native(server.node, "127.0.0.1", 0)
    host, port = listener.address
    try:
        for _ in range(2):  # the second from the hot path
            reply = await native_client.resolve(host, port, f"{NEW}/a")
            assert reply.header.response_code == 1
        assert (await act(server, NEW, "suspend", "audit"))[0] == 200
        for tcp in (False, True, False):
            reply = await native_client.resolve(host, port, f"{NEW}/a", tcp=tcp)
            assert reply.header.response_code == 2
            assert isinstance(reply.body, ErrorResponse)
            assert reply.body.message == f"prefix {NEW} is suspended"
        assert (await act(server, NEW, "reactivate"))[0] == 200
        assert (await native_client.resolve(host, port, f"{NEW}/a")).header.response_code == 1
        assert (await act(server, NEW, "withdraw", "gone"))[0] == 200
        reply = await native_client.resolve(host, port, f"{NEW}/a")
        assert reply.header.response_code == 100
    finally:
        await listener.close()


async def test_a_suspended_prefix_over_dns(server: Server) -> None:
    """DNS answers from the same core: REFUSED while suspended (the table's row), the URI
    record again once reactivated, NXDOMAIN once withdrawn."""
    await approved(server)
    assert (await put_item(server, f"{NEW}/a", NEW_ADMIN))[0] == 201
    name = NAMES.to_name(f"{NEW}/a")

    async def ask() -> dns.message.Message:
        q = dns.message.make_query(name, dns.rdatatype.URI)
        return await dns.asyncquery.udp(q, "127.0.0.1", timeout=10, port=listener.port)

    async with listening(server.node) as listener:
        for _ in range(2):  # the second from the cached entry
            assert (await ask()).rcode() == dns.rcode.NOERROR
        assert (await act(server, NEW, "suspend", "audit"))[0] == 200
        assert (await ask()).rcode() == dns.rcode.REFUSED
        assert (await act(server, NEW, "reactivate"))[0] == 200
        reply = await ask()
        assert reply.rcode() == dns.rcode.NOERROR and reply.answer
        assert (await act(server, NEW, "withdraw", "gone"))[0] == 200
        assert (await ask()).rcode() == dns.rcode.NXDOMAIN


@pytest.mark.parametrize("workers", [0, 2])
async def test_imports_into_a_suspended_prefix_stop_at_its_first_line(
    server: Server, workers: int
) -> None:
    await approved(server)
    assert (await act(server, NEW, "suspend", "audit"))[0] == 200
    url = [{"index": 1, "type": "URL", "data": "https://example.org/"}]
    lines = [
        json.dumps({"handle": h, "values": url}) for h in ("88.118.8/i1", f"{NEW}/i2", f"{NEW}/i3")
    ]
    with pytest.raises(ImportLineError, match=f"^line 2: prefix {NEW} is suspended"):
        await import_lines(server.node.registry, lines, batch=10, workers=workers)
    assert await server.node.store.get("88.118.8/I1") is None  # nothing of the batch


async def test_an_application_that_is_not_json_is_refused_naming_the_post(server: Server) -> None:
    url = server.url + "/api/enterprises"
    async with server.session.post(url, data=b'{"prefix":', headers=JSON) as r:
        assert r.status == 400
        body = await r.json()
    assert body["responseCode"] == 4
    assert body["message"].startswith("Invalid JSON in POST request: "), body
    assert (await call(server, "GET", "/api/enterprises", None, headers=NODE_ADMIN))[0] == 200
