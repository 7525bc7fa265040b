"""Value selection (``?type=`` / ``?index=``): :class:`registry.model.filters.ValueFilter`
against a plain reading of the documented semantics, and its bound on filters per query over
real HTTP servers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.model.filters import MAX_FILTERS, ValueFilter
from registry.model.values import Value
from tests import procs
from tests.conftest import ENT8_ADMIN, JSON, Server, init_node

ITEM = "88.118.8/FILTERED"


def reference_matches(value: Value, types: list[str], indexes: list[int]) -> bool:
    """handle-rest.md / handle-native.md §5, word for word: the index is named, or the
    type equals a named type ignoring ASCII case, or a named type ends in '.' and the
    type is that name without the dot or begins with the name."""
    if value.index in indexes:
        return True
    vt = value.type.encode().upper().decode()
    for t in types:
        tk = t.encode().upper().decode()
        if tk.endswith("."):
            if vt == tk[:-1] or vt.startswith(tk):
                return True
        elif vt == tk:
            return True
    return False


# A small alphabet, so that types share parts, dots (leading, trailing, doubled) and case
# variants often; 'é' and 'É' are not ASCII and never fold into each other.
_TYPE = st.text(alphabet="aAbB.éÉ", max_size=7)
_INDEX = st.integers(min_value=1, max_value=6)


@settings(max_examples=2000, deadline=None)
@given(
    values=st.lists(st.tuples(_INDEX, _TYPE.filter(bool)), max_size=12),
    types=st.lists(_TYPE, max_size=6),
    indexes=st.lists(_INDEX, max_size=3),
)
def test_selection_is_the_documented_one(
    values: list[tuple[int, str]], types: list[str], indexes: list[int]
) -> None:
    record = [Value(i, t, b"") for i, t in values]
    selection = ValueFilter(types, indexes)
    expected = [v for v in record if reference_matches(v, types, indexes)]
    assert selection.select(record) == expected
    assert bool(selection) == bool(types or indexes)


def test_documented_examples() -> None:
    """handle-rest-observed.md §1: T-TYPES holds URL, URL.alt and URLX."""
    record = [Value(1, "URL", b""), Value(2, "URL.alt", b""), Value(3, "URLX", b"")]

    def picked(*types: str) -> list[int]:
        return [v.index for v in ValueFilter(types).select(record)]

    assert picked("URL") == [1]
    assert picked("URL.") == [1, 2]
    assert picked("url.ALT") == [2]
    assert picked("URLX", "url") == [1, 3]
    assert picked("UR") == picked("U.") == picked("URLX.alt") == []
    assert picked("URL.alt.") == [2]
    assert [v.index for v in ValueFilter((), (3, 1)).select(record)] == [1, 3]


# ---------------------------------------------------------------------------- over HTTP


async def _make_item(server: Server) -> None:
    body = {"values": [{"index": i, "type": f"T{i}", "data": "x"} for i in range(1, 301)]}
    headers = {**ENT8_ADMIN, **JSON}
    async with server.session.put(server.api(ITEM), json=body, headers=headers) as r:
        assert r.status == 201, await r.text()


def _query(types: int, indexes: int = 0) -> str:
    parts = [f"type=T{i}" for i in range(1, types + 1)]
    parts += [f"index={i}" for i in range(1, indexes + 1)]
    return "?" + "&".join(parts)


async def _get(server: Server, query: str) -> tuple[int, Any]:
    async with server.session.get(server.api(ITEM) + query) as r:
        return r.status, await r.json()


async def test_too_many_filters_is_a_bad_request(server: Server) -> None:
    await _make_item(server)
    # At the bound: answered (types and indexes counted together).
    status, body = await _get(server, _query(MAX_FILTERS - 10, 10))
    assert status == 200, body
    assert body["responseCode"] == 1
    assert sorted(v["index"] for v in body["values"] if v["type"] != "HS_SIGNATURE") == list(
        range(1, MAX_FILTERS - 9)
    )
    # One more, as types, as indexes or both: refused as the reference refuses a bad
    # query (400, responseCode 4), naming the limit.
    for query in (_query(MAX_FILTERS + 1), _query(0, MAX_FILTERS + 1), _query(200, 200)):
        status, body = await _get(server, query)
        assert status == 400, body
        assert body["responseCode"] == 4
        assert body["handle"] == ITEM
        assert str(MAX_FILTERS) in body["message"]
    # The probe of issue 12: ~1,150 type filters in an 8 KB request.
    status, body = await _get(server, "?" + "&".join(["type=A"] * 1150))
    assert (status, body["responseCode"]) == (400, 4)


async def test_filter_bound_is_configurable(tmp_path: Path) -> None:
    data = tmp_path / "node"
    await init_node(data, max_filters="3")
    async with procs.serving(data) as served, aiohttp.ClientSession() as session:
        url = served.api("0.NA/88.118.8")
        async with session.get(url + "?type=HS_ADMIN&type=URL&index=300") as r:
            assert r.status == 200, await r.text()
        async with session.get(url + "?type=HS_ADMIN&type=URL&index=300&index=1") as r:
            body = await r.json()
            assert (r.status, body["responseCode"]) == (400, 4), body
            assert "at most 3 " in body["message"]
