"""Writes that change nothing, over HTTP against a real server (issue 12).

A PUT of a value identical to the stored one used to skip the rights check, so any
authenticated identity could test guesses at values it may not read — the node admin's
HS_SECKEY included: 200 for a right guess, 403 for a wrong one. Every value a request names
is authorised now, changed or not, and a refusal says nothing about what the record holds;
an authorised write that changes nothing leaves the record, the outbox and the statistics
as they were.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from registry.model.identifiers import handle_key
from tests.conftest import ENT8, ENT8_ADMIN, ENT9, NODE_ADMIN, NODE_PREFIX, SECRETS, Server
from tests.test_authz import DENIED, call, rc, seed, snapshot, url
from tests.test_http_write import Clock

NODE_HANDLE = f"0.NA/{NODE_PREFIX}"
PREFIX8 = f"0.NA/{ENT8}"
HIDDEN9 = f"{ENT9}/HIDDEN"


def seckey(secret: str) -> dict[str, Any]:
    return {"index": 300, "type": "HS_SECKEY", "data": secret, "permissions": "1100"}


def hidden(data: str) -> dict[str, Any]:
    return {"index": 2, "type": "DESC", "data": data, "permissions": "1100"}


HIDDEN9_VALUES = [url(1, "https://e/nine"), hidden("hidden-nine")]

# (handle, index parameter, the body for a guess): the node admin's secret through the
# ?index= form, and a value an 88.118.8 admin may not read through a whole-record PUT.
GUESSES = {
    "index_form_seckey": (NODE_HANDLE, 300, lambda g: [seckey(g)], SECRETS[NODE_PREFIX]),
    "whole_record": (
        HIDDEN9,
        None,
        lambda g: [url(1, "https://e/nine"), hidden(g)],
        "hidden-nine",
    ),
}


@pytest.mark.parametrize("case", list(GUESSES))
async def test_a_guess_right_or_wrong_gets_the_same_refusal(server: Server, case: str) -> None:
    handle, index, body_for, stored = GUESSES[case]
    await seed(server, HIDDEN9, HIDDEN9_VALUES)
    before = await snapshot(server, handle)

    right = await call(server, "PUT", handle, ENT8_ADMIN, body_for(stored), index)
    wrong = await call(server, "PUT", handle, ENT8_ADMIN, body_for("a-wrong-guess"), index)

    assert (right[0], rc(right[1])) == DENIED, right
    assert right == wrong
    assert await snapshot(server, handle) == before  # not even re-signed


async def _request(
    server: Server, method: str, handle: str, query: dict[str, str], body: Any = None
) -> tuple[int, Any]:
    kwargs: dict[str, Any] = {"headers": ENT8_ADMIN, "params": query}
    if body is not None:
        kwargs["json"] = body
    async with server.session.request(method, server.api(handle), **kwargs) as r:
        raw = await r.read()
        return r.status, (await r.json(content_type=None)) if raw.strip() else None


REFUSALS = {
    "modify": ("PUT", {}, True),
    "add_no_overwrite": ("PUT", {"overwrite": "false"}, True),
    "remove": ("DELETE", {}, False),
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_a_refusal_does_not_tell_which_indexes_exist(server: Server, case: str) -> None:
    method, query, with_body = REFUSALS[case]
    before = await snapshot(server, NODE_HANDLE)
    answers = []
    for index in (300, 299):  # 300 holds the node admin's secret, 299 nothing
        body = [{**seckey("a-guess"), "index": index}] if with_body else None
        answers.append(
            await _request(server, method, NODE_HANDLE, {**query, "index": str(index)}, body)
        )
    assert (answers[0][0], rc(answers[0][1])) == DENIED, answers[0]
    assert answers[0] == answers[1]
    assert await snapshot(server, NODE_HANDLE) == before


async def _state(server: Server, keys: Sequence[str]) -> tuple[Any, ...]:
    store = server.node.store
    records = [await store.get(k) for k in keys]
    return records, await store.outbox_peek(1000), await store.stats_totals()


async def test_an_authorised_unchanged_write_changes_nothing(server: Server) -> None:
    clock = Clock()
    server.node.registry.clock = clock
    item = f"{ENT8}/SAME"
    values = [url(1, "https://e/same"), hidden("kept")]
    status, body = await call(server, "PUT", item, ENT8_ADMIN, values)
    assert (status, rc(body)) == (201, 1), body
    keys = [handle_key(item), handle_key(PREFIX8)]
    notified: list[str] = []

    async def hook(written: Sequence[str]) -> None:
        notified.extend(written)

    server.node.registry.write_hooks.append(hook)
    before = await _state(server, keys)
    clock.now += 86400  # a write now would stamp and sign at a new time

    unchanged: list[tuple[str, Any, int | None]] = [
        (item, values, None),  # the whole record
        (item, [values[1]], 2),  # one value (a secret one)
        (PREFIX8, [seckey(SECRETS[ENT8])], 300),  # the admin's own secret: sealed, compared
    ]
    for handle, body_, index in unchanged:
        status, body = await call(server, "PUT", handle, ENT8_ADMIN, body_, index)
        assert (status, body) == (200, {"responseCode": 1, "handle": handle}), (handle, index)
    assert await _state(server, keys) == before
    assert notified == []

    # The control: the same requests with one change do change the record and are reported.
    status, body = await call(server, "PUT", item, ENT8_ADMIN, [url(1, "https://e/new")], 1)
    assert (status, rc(body)) == (200, 1), body
    records, outbox, stats = await _state(server, keys)
    assert records[0] != before[0][0]
    assert stats[ENT8]["updates"] == before[2][ENT8]["updates"] + 1
    assert notified == [handle_key(item)]
    status, body = await call(server, "PUT", PREFIX8, NODE_ADMIN, [seckey("new-secret")], 300)
    assert (status, rc(body)) == (200, 1), body
    records, outbox, _ = await _state(server, keys)
    assert records[1] != before[0][1]
    assert len(outbox) == len(before[1]) + 1
