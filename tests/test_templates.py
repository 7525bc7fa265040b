"""Metadata templates over the HTTP API (a real server on port 0): publishing versions,
reading them (the API and plain resolution), and every write of an identifier that declares
one checked against it — PUT of the record, value edits, deletions, imports."""

from __future__ import annotations

import json
from typing import Any

import pytest

from resolver.transfer import ImportLineError, import_lines
from tests.conftest import ENT8_ADMIN, JSON, NODE_ADMIN, Server

MOTOR = {
    "description": "Motor controllers",
    "fields": [
        {
            "type": "SERIAL",
            "index": 2,
            "datatype": "string",
            "required": True,
            "pattern": "MC-[0-9]{4,8}",
        },
        {"type": "GTIN", "datatype": "gs1", "required": True},
        {"type": "VOLTAGE", "datatype": "enum", "enum": ["24V", "48V"]},
        {"type": "MADE", "datatype": "date"},
        {"type": "MANUAL", "datatype": "url"},
        {"type": "POWER_W", "datatype": "int"},
    ],
}
GOOD = [
    {"index": 1, "type": "TEMPLATE", "data": "motor-controller"},
    {"index": 2, "type": "SERIAL", "data": "MC-12345"},
    {"index": 3, "type": "GTIN", "data": "4006381333931"},
    {"index": 4, "type": "VOLTAGE", "data": "48V"},
    {"index": 5, "type": "MADE", "data": "2026-03-01"},
    {"index": 6, "type": "MANUAL", "data": "https://example.org/mc.pdf"},
    {"index": 7, "type": "POWER_W", "data": "750"},
]
ITEM = "88.118.8/MC-1"


async def send(
    server: Server, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    hdrs = {**(NODE_ADMIN if headers is None else headers), **JSON}
    async with server.session.request(method, server.url + path, json=body, headers=hdrs) as r:
        text = await r.text()
        return r.status, json.loads(text) if text else None


async def put_template(server: Server, body: Any = MOTOR, name: str = "motor-controller") -> Any:
    status, answer = await send(server, "PUT", f"/api/templates/{name}", body)
    assert status == 201, answer
    return answer


async def put_item(
    server: Server, values: list[dict[str, Any]], query: str = ""
) -> tuple[int, Any]:
    return await send(server, "PUT", f"/api/handles/{ITEM}{query}", {"values": values}, ENT8_ADMIN)


def with_(index: int, data: str) -> list[dict[str, Any]]:
    return [{**v, "data": data} if v["index"] == index else v for v in GOOD]


async def test_templates_are_versioned_and_published_as_records(server: Server) -> None:
    first = await put_template(server)
    assert (first["version"], first["handle"]) == (1, "88.118/TEMPLATE.motor-controller")
    second = await put_template(server, {"fields": [{"type": "SERIAL", "required": True}]})
    assert second["version"] == 2
    status, body = await send(server, "GET", "/api/templates/motor-controller", headers={})
    assert (status, body["version"], body["versions"]) == (200, 2, [1, 2])
    status, body = await send(
        server, "GET", "/api/templates/motor-controller?version=1", headers={}
    )
    assert (status, len(body["fields"])) == (200, 6)
    assert body["fields"][0] == MOTOR["fields"][0]
    status, body = await send(server, "GET", "/api/templates", headers={})
    assert [(t["name"], t["version"]) for t in body["templates"]] == [("motor-controller", 2)]
    # Any Handle client reads them by resolving the record: one value per version.
    async with server.session.get(server.api("88.118/TEMPLATE.motor-controller")) as r:
        record = await r.json()
    versions = [v for v in record["values"] if v["type"] == "IDNODE_TEMPLATE"]
    assert [v["index"] for v in versions] == [1, 2]
    assert json.loads(versions[0]["data"]["value"])["fields"][0]["pattern"] == "MC-[0-9]{4,8}"


async def test_template_refusals(server: Server) -> None:
    status, body = await send(server, "PUT", "/api/templates/t", MOTOR, headers=ENT8_ADMIN)
    assert (status, body["responseCode"]) == (403, 401)
    status, _ = await send(server, "PUT", "/api/templates/t", MOTOR, headers={})
    assert status == 401
    status, body = await send(server, "PUT", "/api/templates/bad name", MOTOR)
    assert status == 400 and "template name" in body["message"]
    status, body = await send(
        server, "PUT", "/api/templates/t", {"fields": [{"type": "A", "pattern": "(a+)+"}]}
    )
    assert status == 400 and "nest a repeat" in body["message"]
    status, body = await send(server, "GET", "/api/templates/nothing", headers={})
    assert (status, body["responseCode"]) == (404, 100)
    await put_template(server)
    status, body = await send(
        server, "GET", "/api/templates/motor-controller?version=9", headers={}
    )
    assert status == 404


async def test_a_record_that_follows_its_template_is_written(server: Server) -> None:
    await put_template(server)
    status, body = await put_item(server, GOOD)
    assert status == 201, body


@pytest.mark.parametrize(
    ("values", "errors"),
    [
        ([v for v in GOOD if v["type"] != "SERIAL"], [("SERIAL", 2, "required")]),
        (with_(2, "XX-1"), [("SERIAL", 2, "does not match MC-[0-9]{4,8}")]),
        (with_(3, "4006381333932"), [("GTIN", 3, "not a GS1 key with a valid check digit")]),
        (with_(4, "12V"), [("VOLTAGE", 4, "not one of 24V, 48V")]),
        (with_(5, "2026-13-01"), [("MADE", 5, "not a date (YYYY-MM-DD)")]),
        (with_(6, "mailto:x@example.org"), [("MANUAL", 6, "not an http(s) URL")]),
        (with_(7, "750W"), [("POWER_W", 7, "not an integer")]),
        (
            [v for v in with_(4, "12V") if v["type"] != "SERIAL" and v["index"] != 7]
            + [{"index": 7, "type": "POWER_W", "data": "x"}],
            [
                ("SERIAL", 2, "required"),
                ("VOLTAGE", 4, "not one of 24V, 48V"),
                ("POWER_W", 7, "not an integer"),
            ],
        ),
        (with_(1, "no-such-template"), [("TEMPLATE", 1, "unknown template no-such-template")]),
        (
            with_(1, "motor-controller@7"),
            [("TEMPLATE", 1, "unknown template version motor-controller@7")],
        ),
        (
            with_(1, "not a name"),
            [
                (
                    "TEMPLATE",
                    1,
                    "a template name is 1-64 letters, digits, '-' or '_', starting with a "
                    "letter or digit",
                )
            ],
        ),
    ],
)
async def test_each_rule_refuses_with_the_fields_at_fault(
    server: Server, values: list[dict[str, Any]], errors: list[tuple[str, int, str]]
) -> None:
    await put_template(server)
    status, body = await put_item(server, values)
    assert (status, body["responseCode"]) == (400, 202), body
    assert [(e["type"], e["index"], e["message"]) for e in body["errors"]] == errors
    assert body["message"].startswith(f"{ITEM} does not follow template")
    async with server.session.get(server.api(ITEM)) as r:
        assert r.status == 404  # nothing written


async def test_version_pinning(server: Server) -> None:
    await put_template(server)  # v1: SERIAL MC-nnnn
    v2 = {"fields": [{"type": "SERIAL", "index": 2, "required": True, "pattern": "S[0-9]+"}]}
    await put_template(server, v2)
    pinned = with_(1, "motor-controller@1")
    assert (await put_item(server, pinned))[0] == 201
    # Unpinned means the newest: v2's pattern now applies.
    status, body = await put_item(server, GOOD)
    assert status == 400 and body["errors"][0]["message"] == "does not match S[0-9]+"
    assert (await put_item(server, with_(2, "S77")))[0] == 200


async def test_value_edits_and_deletions_are_checked_too(server: Server) -> None:
    await put_template(server)
    assert (await put_item(server, GOOD))[0] == 201
    # ?index= edits: the record as it would be is checked (its TEMPLATE value is stored).
    status, body = await put_item(
        server, [{"index": 4, "type": "VOLTAGE", "data": "99V"}], "?index=4"
    )
    assert status == 400 and body["errors"] == [
        {"type": "VOLTAGE", "index": 4, "message": "not one of 24V, 48V"}
    ]
    assert (await put_item(server, [{"index": 4, "type": "VOLTAGE", "data": "24V"}], "?index=4"))[
        0
    ] == 200
    async with server.session.delete(server.api(ITEM) + "?index=2", headers=ENT8_ADMIN) as r:
        body = await r.json()
        assert r.status == 400 and body["errors"][0]["message"] == "required"
    # Dropping the TEMPLATE value frees the record from it.
    async with server.session.delete(server.api(ITEM) + "?index=1", headers=ENT8_ADMIN) as r:
        assert r.status == 200
    async with server.session.delete(server.api(ITEM) + "?index=2", headers=ENT8_ADMIN) as r:
        assert r.status == 200


async def test_imports_are_checked_naming_the_line(server: Server) -> None:
    await put_template(server)
    lines = [json.dumps({"handle": f"88.118.8/IMP-{n}", "values": GOOD}) for n in range(3)]
    report = await import_lines(server.node.registry, lines, batch=10, workers=0)
    assert report.created == 3
    bad = [*lines, json.dumps({"handle": "88.118.8/IMP-9", "values": with_(3, "123")})]
    for workers in (0, 2):  # the in-process path and the prepared (bulk) path
        with pytest.raises(
            ImportLineError,
            match=r"^line 4: 88.118.8/IMP-9 does not follow template motor-controller@1: "
            r"GTIN \(index 3\): not a GS1 key",
        ):
            await import_lines(server.node.registry, bad, batch=10, workers=workers)
    assert await server.node.store.get("88.118.8/IMP-9") is None
