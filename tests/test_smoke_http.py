from __future__ import annotations

from tests.conftest import ENT8_ADMIN, JSON, Server


async def test_create_then_resolve(server: Server) -> None:
    body = {"values": [{"index": 1, "type": "URL", "data": "https://example.org/a"}]}
    async with server.session.put(
        server.api("88.118.8/A"), json=body, headers={**ENT8_ADMIN, **JSON}
    ) as r:
        assert r.status == 201, await r.text()
    async with server.session.get(server.api("88.118.8/a")) as r:
        assert r.status == 200
        got = await r.json()
    assert got["handle"] == "88.118.8/a"
    assert got["values"][0]["data"] == {"format": "string", "value": "https://example.org/a"}
