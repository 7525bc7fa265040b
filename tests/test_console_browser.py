"""The admin console in a real browser: Debian's Chromium, headless, driven by Playwright.

Signs in, creates an identifier through the form (one validation error first, then
success), checks it resolves over the API, imports a file and watches the progress script
finish, and opens the record page; then the node admin approves an application from the
lifecycle queue and its enterprise admin creates an identifier by metadata template (one
validation error first) that resolves over the API. Screenshots of the main pages are taken
along the way, into ``IDNODE_SCREENSHOTS`` when set (``docs/screenshots`` refreshes the
README's), else a temporary directory. Chromium must be installed (``.ci/run`` installs
it): without it the test fails, it is never skipped.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.conftest import ENT8, ENT8_ADMIN, JSON, NODE_PREFIX, SECRETS, admin_of, identity
from tests.console_support import Console, console_server
from tests.test_lifecycle import APPLICATION, NEW, NEW_SECRET
from tests.test_templates import MOTOR

CHROMIUM = Path(os.environ.get("IDNODE_CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture
def chromium() -> Path:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: apt-get install chromium"
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        # --no-sandbox: Chromium refuses its sandbox when run as root (as CI runs).
        b = await pw.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    target = os.environ.get("IDNODE_SCREENSHOTS")
    out = Path(target) if target else tmp_path / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out


async def snap(page: Page, shots: Path, name: str) -> None:
    await page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


async def sign_in(page: Page, console: Console, prefix: str) -> None:
    await page.goto(f"{console.url}/admin/")
    await page.get_by_label("Identity").fill(identity(prefix))
    await page.get_by_label("Secret").fill(SECRETS[prefix])
    await page.get_by_role("button", name="Sign in").click()


async def resolve_api(console: Console, path: str) -> Any:
    """``GET /api/handles/{path}`` as any client (no credentials): must answer 200."""
    async with aiohttp.ClientSession() as http, http.get(f"{console.url}/api/handles/{path}") as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def seed(console: Console) -> None:
    """A few identifiers, so the listing has something to show."""
    async with aiohttp.ClientSession() as http:
        for n, name in enumerate(("PUMP-0001", "PUMP-0002", "VALVE-0100", "MOTOR-7"), 1):
            body = {
                "values": [
                    {"index": 1, "type": "URL", "data": f"https://plant.example/item/{n}"},
                    {"index": 2, "type": "EMAIL", "data": "service@plant.example"},
                ]
            }
            async with http.put(
                f"{console.url}/api/handles/{ENT8}/{name}",
                json=body,
                headers={**ENT8_ADMIN, **JSON},
            ) as r:
                assert r.status == 201, await r.text()


async def test_console_in_chromium(tmp_path: Path, browser: Browser, shots: Path) -> None:
    async with console_server(tmp_path) as console:
        await seed(console)
        context = await browser.new_context(viewport={"width": 1180, "height": 760})
        page = await context.new_page()
        errors: list[str] = []  # script errors, CSP violations included
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on(
            "console",
            lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None,
        )

        # Sign-in page; a wrong secret first.
        await page.goto(f"{console.url}/admin/")
        await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        await snap(page, shots, "01-sign-in")
        await page.get_by_label("Identity").fill(identity(NODE_PREFIX))
        await page.get_by_label("Secret").fill("not the secret")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("alert")).to_have_text("Wrong identity or secret.")

        # The node admin's dashboard.
        await sign_in(page, console, NODE_PREFIX)
        await expect(page).to_have_url(f"{console.url}/admin/node")
        await expect(page.get_by_role("link", name=ENT8, exact=True)).to_be_visible()
        await expect(page.get_by_role("heading", name="Top-level link")).to_be_visible()
        await snap(page, shots, "02-node-admin")
        await page.get_by_role("button", name="Sign out").click()
        await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

        # The enterprise admin: the identifier list, then a search.
        await sign_in(page, console, ENT8)
        await expect(page).to_have_url(f"{console.url}/admin/prefix/{ENT8}")
        await expect(page.get_by_role("link", name=f"{ENT8}/PUMP-0001")).to_be_visible()
        await snap(page, shots, "03-identifiers")
        await page.get_by_label("Suffix starts with").fill("pump")
        await page.get_by_role("button", name="Search").click()
        await expect(page.locator("ul.handles li")).to_have_count(2)

        # A new identifier through the form: one field at fault, then success.
        await page.get_by_role("link", name="New identifier").click()
        await page.get_by_label("Identifier").fill("SENSOR-42")
        await page.get_by_label("Index, row 1").fill("first")
        await page.get_by_label("Data, row 1").fill("https://plant.example/item/42")
        await page.get_by_label("Index, row 2").fill("2")
        await page.get_by_label("Type, row 2").fill("EMAIL")
        await page.get_by_label("Data, row 2").fill("service@plant.example")
        await page.get_by_role("button", name="Create").click()
        error = page.locator("#err-index-0")
        await expect(error).to_have_text("An index is a whole number from 1.")
        await expect(page.get_by_label("Index, row 1")).to_have_attribute("aria-invalid", "true")
        await expect(page.locator(".field-error")).to_have_count(1)
        await snap(page, shots, "04-identifier-form-error")
        await page.get_by_label("Index, row 1").fill("1")
        await page.get_by_role("button", name="Create").click()
        await expect(page.locator(".flash")).to_have_text(f"Created {ENT8}/SENSOR-42.")
        await expect(page.locator(".sig")).to_contain_text("Verified: signed by")
        await snap(page, shots, "05-identifier-edit")

        # It resolves over the API, as any client sees it.
        body = await resolve_api(console, f"{ENT8}/SENSOR-42?type=URL")
        assert body["values"][0]["data"] == {
            "format": "string",
            "value": "https://plant.example/item/42",
        }

        # The record page, from the editor's link.
        await page.get_by_role("link", name="Record page").click()
        await expect(page.get_by_role("heading", name=f"{ENT8}/SENSOR-42")).to_be_visible()
        await expect(page.locator(".sig-verified")).to_contain_text("Signature verified")
        await snap(page, shots, "06-record-page")
        await page.goto(f"{console.url}/0.NA/{NODE_PREFIX}?noredirect")
        await expect(page.locator("td.data").first).to_contain_text("every right")
        keys = page.locator("td.data", has_text="Ed25519 (EdDSA), thumbprint")
        await expect(keys.first).to_be_visible()
        await snap(page, shots, "07-record-page-keys")

        # The landing page's resolve box leads to the record page too.
        await page.goto(f"{console.url}/")
        await snap(page, shots, "09-landing")
        await page.get_by_label("identifier").fill(f"{ENT8}/SENSOR-42")
        await page.get_by_role("button", name="Resolve").click()
        await expect(page.get_by_role("heading", name=f"{ENT8}/SENSOR-42")).to_be_visible()

        # An import, its progress followed by the page's script.
        source = tmp_path / "items.jsonl"
        source.write_text(
            "".join(
                f'{{"handle":"{ENT8}/BATCH-{n}","values":[{{"index":1,"type":"URL",'
                f'"data":"https://plant.example/b/{n}"}}]}}\n'
                for n in range(40)
            )
        )
        await page.goto(f"{console.url}/admin/import")
        await page.get_by_label("File (.jsonl or .csv)").set_input_files(str(source))
        await page.get_by_role("button", name="Import").click()
        await expect(page.locator("#figures")).to_have_text(
            "Done: 40 of 40 records — 40 created, 0 replaced, 0 refused.", timeout=20_000
        )
        await expect(page.locator("#bar")).to_have_attribute("value", "40")
        await snap(page, shots, "08-import")
        assert errors == []
        await context.close()


async def test_approve_then_create_by_template_in_chromium(
    tmp_path: Path, browser: Browser, shots: Path
) -> None:
    async with console_server(tmp_path) as console:
        async with aiohttp.ClientSession() as http:
            async with http.put(
                f"{console.url}/api/templates/motor-controller",
                json=MOTOR,
                headers={**admin_of(NODE_PREFIX), **JSON},
            ) as r:
                assert r.status == 201, await r.text()
            async with http.post(f"{console.url}/api/enterprises", json=APPLICATION) as r:
                assert r.status == 201, await r.text()
        context = await browser.new_context(viewport={"width": 1180, "height": 760})
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        # The node admin approves the application from the lifecycle queue.
        await sign_in(page, console, NODE_PREFIX)
        await expect(page.get_by_text("1 application waiting")).to_be_visible()
        await page.get_by_role("link", name="Lifecycle queue").click()
        pending = page.locator("section", has=page.locator("#q-pending"))
        await expect(pending.get_by_role("row", name=NEW)).to_contain_text("Motor Works Ltd")
        await snap(page, shots, "10-lifecycle-queue")
        await pending.get_by_role("button", name="Approve").click()
        await expect(page.locator(".flash")).to_have_text(f"{NEW} is now active.")
        active = page.locator("section", has=page.locator("#q-active"))
        await expect(active.get_by_role("row", name=NEW)).to_be_visible()
        await page.get_by_role("button", name="Sign out").click()

        # Its admin signs in with the application's secret and creates an identifier by
        # template: a wrong GTIN check digit first, then success.
        await page.get_by_label("Identity").fill(identity(NEW))
        await page.get_by_label("Secret").fill(NEW_SECRET)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page).to_have_url(f"{console.url}/admin/prefix/{NEW}")
        await page.get_by_role("link", name="New identifier").click()
        await page.get_by_label("Fill in by template").select_option("motor-controller")
        await page.get_by_role("button", name="Use template").click()
        await page.get_by_label("Identifier").fill("MC-7")
        await page.locator("#f_0").fill("MC-1234")
        await page.locator("#f_1").fill("4006381333932")
        await page.locator("#f_2").select_option("48V")
        await page.get_by_role("button", name="Create").click()
        await expect(page.locator("#err-GTIN")).to_contain_text("not a GS1 key")
        await expect(page.locator("#f_1")).to_have_attribute("aria-invalid", "true")
        await expect(page.locator(".field-error")).to_have_count(1)
        await snap(page, shots, "11-template-form-error")
        await page.locator("#f_1").fill("4006381333931")
        await page.get_by_role("button", name="Create").click()
        await expect(page.locator(".flash")).to_have_text(f"Created {NEW}/MC-7.")

        body = await resolve_api(console, f"{NEW}/MC-7")
        values = {v["type"]: v["data"]["value"] for v in body["values"]}
        assert values["GTIN"] == "4006381333931" and values["TEMPLATE"] == "motor-controller"
        assert errors == []
        await context.close()
