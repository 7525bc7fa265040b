"""The console's lifecycle queue over HTTP (a real server on port 0): an application filed
over the API is approved, suspended, reactivated and withdrawn through the node admin's
forms; refusals (a stale form's wrong state, a missing reason, an enterprise admin) are
messages on a page with their status, and every step is audited as the console's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import ENT8, NODE_PREFIX, admin_of
from tests.console_support import Console, console_server, sign_in
from tests.test_lifecycle import APPLICATION, NEW

QUEUE = "/admin/node/enterprises"


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    async with console_server(tmp_path) as c:
        yield c


async def file_application(console: Console, client: aiohttp.ClientSession, **changes: str) -> None:
    body = {**APPLICATION, **changes}
    async with client.post(f"{console.url}/api/enterprises", json=body) as resp:
        assert resp.status == 201, await resp.text()


async def act(
    console: Console, client: aiohttp.ClientSession, csrf: str, action: str, reason: str = ""
) -> tuple[int, str]:
    form = {"csrf": csrf, "prefix": NEW, "action": action, "reason": reason}
    async with client.post(f"{console.url}{QUEUE}", data=form) as resp:
        return resp.status, await resp.text()


async def state_of(console: Console, client: aiohttp.ClientSession, prefix: str) -> str:
    url = f"{console.url}/api/enterprises/{prefix}"
    async with client.get(url, headers=admin_of(NODE_PREFIX)) as resp:
        return str((await resp.json())["state"])


async def test_the_node_admin_walks_a_prefix_through_its_lifecycle(console: Console) -> None:
    async with console.client() as client:
        await file_application(console, client)
        csrf = await sign_in(console, client, NODE_PREFIX)
        async with client.get(f"{console.url}/admin/node") as resp:
            assert "1 application waiting" in await resp.text()
        async with client.get(f"{console.url}{QUEUE}") as resp:
            page = await resp.text()
        assert resp.status == 200
        pending = page.split('id="q-pending"')[1].split("</section>")[0]
        assert NEW in pending and "Motor Works Ltd" in pending and "ops@motor.example" in pending
        assert 'value="approve"' in pending and 'value="reject"' in pending

        status, page = await act(console, client, csrf, "approve")
        assert status == 200 and f"{NEW} is now active." in page
        assert await state_of(console, client, NEW) == "active"
        # A stale form: approving an active prefix is the registry's 409, shown on the queue.
        status, page = await act(console, client, csrf, "approve")
        assert status == 409
        assert 'role="alert">Approve 88.118.20: ' in page and "Traceback" not in page
        assert 'id="q-active"' in page  # the queue itself, not a bare error page
        # Suspending needs a reason: 400, nothing changed.
        status, page = await act(console, client, csrf, "suspend")
        assert status == 400 and "suspend needs a reason" in page
        assert await state_of(console, client, NEW) == "active"
        status, page = await act(console, client, csrf, "suspend", "unpaid invoice")
        assert status == 200 and f"{NEW} is now suspended." in page
        suspended = page.split('id="q-suspended"')[1].split("</section>")[0]
        assert 'value="reactivate"' in suspended and 'value="withdraw"' in suspended
        status, page = await act(console, client, csrf, "reactivate")
        assert status == 200 and f"{NEW} is now active." in page
        status, page = await act(console, client, csrf, "withdraw", "company closed")
        assert status == 200 and f"{NEW} is now withdrawn." in page
        assert await state_of(console, client, NEW) == "withdrawn"
        async with client.get(
            f"{console.url}/api/audit?action=prefix.approve", headers=admin_of(NODE_PREFIX)
        ) as resp:
            entries = (await resp.json())["entries"]
        assert entries  # one entry per record the approval changed
        assert {(e["transport"], e["identity"]) for e in entries} == {
            ("admin-console", "300:0.NA/88.118")
        }


async def test_reject_with_a_reason_and_refusals(console: Console) -> None:
    async with console.client() as client:
        await file_application(console, client)
        csrf = await sign_in(console, client, NODE_PREFIX)
        status, page = await act(console, client, csrf, "reject")
        assert status == 400 and "reject needs a reason" in page
        status, page = await act(console, client, csrf, "reject", "not an enterprise of ours")
        assert status == 200 and f"{NEW} is now rejected." in page
        assert "not an enterprise of ours" in page.split("Rejected and withdrawn")[1]
        status, page = await act(console, client, csrf, "suspend", "x")
        assert status == 409 and "Suspend 88.118.20: " in page
        status, page = await act(console, client, csrf, "explode")
        assert status == 400 and "unknown action" in page
    async with console.client() as client:  # an enterprise admin is no node admin
        await file_application(console, client, prefix="88.118.21")
        csrf = await sign_in(console, client, ENT8)
        async with client.get(f"{console.url}{QUEUE}") as resp:
            assert resp.status == 403
        form = {"csrf": csrf, "prefix": "88.118.21", "action": "approve", "reason": ""}
        async with client.post(f"{console.url}{QUEUE}", data=form) as resp:
            assert resp.status == 403 and "Not done" in await resp.text()
        assert await state_of(console, client, "88.118.21") == "pending"
