"""The identifier form by metadata template over HTTP (a real server on port 0): the
template's fields as inputs, the registry's per-field refusals shown beside each field with
nothing written, then a record that follows the template; editing it shows the same form
and keeps the values the template does not name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from registry.errors import TemplateViolation
from registry.model import templates as tpl
from resolver.console.templateform import violations
from tests.conftest import ENT8, NODE_PREFIX, admin_of
from tests.console_support import Console, console_server, sign_in
from tests.test_templates import MOTOR

HANDLE = f"{ENT8}/MC-7"


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    async with console_server(tmp_path) as c:
        async with (
            c.client() as client,
            client.put(
                f"{c.url}/api/templates/motor-controller",
                json=MOTOR,
                headers=admin_of(NODE_PREFIX),
            ) as resp,
        ):
            assert resp.status == 201, await resp.text()
        yield c


def filled(csrf: str, gtin: str, mode: str = "new") -> dict[str, str]:
    return {
        "csrf": csrf,
        "prefix": ENT8,
        "suffix": "MC-7",
        "template": "motor-controller",
        "mode": mode,
        "f_0": "MC-1234",
        "f_1": gtin,
        "f_2": "48V",
    }


async def test_create_and_edit_through_the_template_form(console: Console) -> None:
    async with console.client() as client:
        csrf = await sign_in(console, client, ENT8)
        async with client.get(f"{console.url}/admin/identifier/new?prefix={ENT8}") as resp:
            page = await resp.text()
        assert '<option value="motor-controller">motor-controller — Motor controllers' in page
        url = f"{console.url}/admin/identifier/new?prefix={ENT8}&template=motor-controller"
        async with client.get(url) as resp:
            page = await resp.text()
        assert resp.status == 200
        assert '<label for="f_1">GTIN <small>(required)</small></label>' in page
        assert '<select id="f_2" name="f_2"' in page and '<option value="48V">' in page
        assert "string, pattern MC-[0-9]{4,8}, index 2" in page
        # A wrong check digit: 400, the message beside GTIN, the typed values kept.
        form = filled(csrf, "4006381333932")
        async with client.post(f"{console.url}/admin/identifier/template", data=form) as resp:
            assert resp.status == 400
            page = await resp.text()
        assert '<p class="field-error" id="err-GTIN">not a GS1 key' in page
        assert 'id="f_1" name="f_1" type="text" value="4006381333932" aria-invalid="true"' in page
        assert 'value="MC-1234"' in page and "err-SERIAL" not in page
        async with client.get(f"{console.url}/api/handles/{HANDLE}") as resp:
            assert resp.status == 404
        # A required field left empty is named too.
        form = {**filled(csrf, "4006381333931"), "f_0": ""}
        async with client.post(f"{console.url}/admin/identifier/template", data=form) as resp:
            assert resp.status == 400
            assert 'id="err-SERIAL">required' in await resp.text()
        form = filled(csrf, "4006381333931")
        async with client.post(f"{console.url}/admin/identifier/template", data=form) as resp:
            assert resp.status == 200
            page = await resp.text()
        assert f"Created {HANDLE}." in page
        async with client.get(f"{console.url}/api/handles/{HANDLE}") as resp:
            values = {v["type"]: v for v in (await resp.json())["values"]}
        assert values["SERIAL"]["index"] == 2 and values["SERIAL"]["data"]["value"] == "MC-1234"
        assert values["TEMPLATE"]["data"]["value"] == "motor-controller"
        assert values["GTIN"]["data"]["value"] == "4006381333931" and "MANUAL" not in values
        # Editing shows the template form, filled in; a value it does not name is kept.
        async with client.put(
            f"{console.url}/api/handles/{HANDLE}?index=50",
            json={"values": [{"index": 50, "type": "NOTE", "data": "kept"}]},
            headers=admin_of(ENT8),
        ) as resp:
            assert resp.status in (200, 201), await resp.text()
        async with client.get(f"{console.url}/admin/identifier?handle={HANDLE}") as resp:
            page = await resp.text()
        assert 'name="mode" value="edit"' in page and 'value="4006381333931"' in page
        form = {**filled(csrf, "4006381333931", "edit"), "f_2": "12V"}
        async with client.post(f"{console.url}/admin/identifier/template", data=form) as resp:
            assert resp.status == 400
            assert 'id="err-VOLTAGE">not one of 24V, 48V' in await resp.text()
        form = {**filled(csrf, "4006381333931", "edit"), "f_2": "24V"}
        async with client.post(f"{console.url}/admin/identifier/template", data=form) as resp:
            assert resp.status == 200 and f"Saved {HANDLE}." in await resp.text()
        async with client.get(f"{console.url}/api/handles/{HANDLE}") as resp:
            values = {v["type"]: v for v in (await resp.json())["values"]}
        assert values["VOLTAGE"]["data"]["value"] == "24V"
        assert values["NOTE"]["index"] == 50 and values["NOTE"]["data"]["value"] == "kept"
        async with client.get(f"{console.url}/admin/identifier?handle={HANDLE}&plain=1") as resp:
            assert 'class="values"' in await resp.text()  # the plain editor stays reachable


def test_violations_map_to_fields_by_type_and_the_rest_to_the_summary() -> None:
    template = tpl.parse_definition(MOTOR, "motor-controller", 1)
    exc = TemplateViolation(
        HANDLE,
        template.ref,
        [
            {"type": "gtin", "index": 3, "message": "not a GS1 key"},
            {"type": "GTIN", "index": 9, "message": "must be at index 3"},
            {"type": "TEMPLATE", "index": 1, "message": "unknown template"},
        ],
    )
    assert violations(exc, template) == {
        "GTIN": "not a GS1 key; must be at index 3",
        "": "unknown template",
    }
