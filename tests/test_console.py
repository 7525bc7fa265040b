"""The admin console over HTTP (a real server on port 0): signing in and out, session
expiry, CSRF refusals, and every action refused or done by the registry's own rules."""

from __future__ import annotations

import io
import json
import ssl
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from pathlib import Path

import aiohttp
import pytest

from registry.authz import Principal
from registry.model.admin import AdminRef
from resolver.console.importer import JOBS
from resolver.console.sessions import SessionTable
from tests.conftest import ENT8, ENT9, NODE_PREFIX, SECRETS, admin_of, identity, in_process
from tests.console_support import Console, console_server, sign_in
from tests.test_serve import self_signed


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    async with console_server(tmp_path) as c:
        yield c


ENT8_ID = identity(ENT8)
ENT8_WHO = Principal(AdminRef(300, ENT8_ID.split(":", 1)[1]))


def new_form(
    csrf: str | None, prefix: str, suffix: str, url: str, index: str = "1"
) -> dict[str, str]:
    """The new-identifier form with one URL value (no ``csrf`` field when None)."""
    form = {
        "prefix": prefix,
        "suffix": suffix,
        "index_0": index,
        "type_0": "URL",
        "data_0": url,
        "perm_0": "",
        "ttl_0": "",
    }
    return form if csrf is None else {"csrf": csrf, **form}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_sign_in_sets_a_strict_http_only_cookie_and_lands_on_the_role_home(
    console: Console,
) -> None:
    async with console.client() as client:
        form = {"identity": identity(NODE_PREFIX), "secret": SECRETS[NODE_PREFIX]}
        async with client.post(
            f"{console.url}/admin/signin", data=form, allow_redirects=False
        ) as resp:
            assert resp.status == 303
            assert resp.headers["Location"] == "/admin/node"
            cookie = SimpleCookie(resp.headers["Set-Cookie"])["idnode_console"]
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
        assert cookie["path"] == "/admin" and not cookie["secure"]  # plain HTTP here
        assert SECRETS[NODE_PREFIX] not in resp.headers["Set-Cookie"]
        async with client.get(f"{console.url}/admin/node") as resp:
            page = await resp.text()
        assert resp.status == 200
        assert "Content-Security-Policy" in resp.headers
        assert ENT8 in page and ENT9 in page and "Top-level link" in page
        assert "<dt>Requests (http)</dt>" in page and "Cache hit ratio" in page
    async with console.client() as client:
        await sign_in(console, client, ENT8)
        async with client.get(f"{console.url}/admin/") as resp:
            assert resp.url.path == f"/admin/prefix/{ENT8}"


async def test_wrong_secret_is_refused_then_throttled(console: Console) -> None:
    async with console.client() as client:
        form = {"identity": identity(ENT8), "secret": "wrong"}
        for _ in range(5):  # the throttle's free failures per address and identity
            async with client.post(f"{console.url}/admin/signin", data=form) as resp:
                assert resp.status == 401
                assert "Wrong identity or secret" in await resp.text()
        good = {**form, "secret": SECRETS[ENT8]}
        async with client.post(f"{console.url}/admin/signin", data=good) as resp:
            assert resp.status == 429  # even the right secret waits now
            assert int(resp.headers["Retry-After"]) >= 1
        assert len(client.cookie_jar) == 0
        async with client.get(f"{console.url}/admin/node", allow_redirects=False) as resp:
            assert resp.status == 303
            assert resp.headers["Location"].startswith("/admin/signin?next=")


async def test_sign_in_from_another_site_is_refused(console: Console) -> None:
    async with console.client() as client:
        form = {"identity": identity(ENT8), "secret": SECRETS[ENT8]}
        headers = {"Origin": "https://evil.example"}
        async with client.post(f"{console.url}/admin/signin", data=form, headers=headers) as r:
            assert r.status == 403
        assert len(client.cookie_jar) == 0


async def test_over_tls_the_cookie_is_secure(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    ctx = ssl.create_default_context(cafile=str(cert))
    settings = {"tls_cert": cert, "tls_key": key, "plain_credentials": "never"}
    async with in_process(tmp_path / "node", **settings) as port, aiohttp.ClientSession() as c:
        form = {"identity": identity(ENT8), "secret": SECRETS[ENT8]}
        async with c.post(
            f"https://127.0.0.1:{port}/admin/signin", data=form, ssl=ctx, allow_redirects=False
        ) as resp:
            assert resp.status == 303
            cookie = SimpleCookie(resp.headers["Set-Cookie"])["idnode_console"]
    assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Strict"


async def test_sign_in_needs_a_transport_that_may_carry_secrets(tmp_path: Path) -> None:
    async with (
        console_server(tmp_path, plain_credentials="never") as console,
        console.client() as client,
    ):
        form = {"identity": identity(ENT8), "secret": SECRETS[ENT8]}
        async with client.post(f"{console.url}/admin/signin", data=form) as resp:
            assert resp.status == 403
            assert "only over HTTPS" in await resp.text()
        assert len(client.cookie_jar) == 0


async def test_saving_a_prefix_handle_keeps_its_secret_unshown(console: Console) -> None:
    handle = f"0.NA/{ENT8}"
    async with console.client() as client:
        csrf = await sign_in(console, client, ENT8)
        async with client.get(f"{console.url}/admin/identifier", params={"handle": handle}) as r:
            page = await r.text()
        assert r.status == 200 and SECRETS[ENT8] not in page
        assert 'value="HS_SECKEY"' in page and "secret: empty keeps it" in page
        rows = {
            "index_0": "100",
            "type_0": "HS_ADMIN",
            "data_0": json.dumps(
                {
                    "format": "admin",
                    "value": {"handle": handle, "index": 300, "permissions": "111111111111"},
                }
            ),
            "index_1": "300",
            "type_1": "HS_SECKEY",
            "data_1": "",
            "perm_1": "1100",
            "index_2": "5",
            "type_2": "DESC",
            "data_2": "Plant A",
        }
        form = {"csrf": csrf, "handle": handle, **rows}
        form |= {k: "" for n in range(3) for k in (f"perm_{n}", f"ttl_{n}") if k not in form}
        async with client.post(f"{console.url}/admin/identifier", data=form) as resp:
            assert resp.status == 200, await resp.text()
    async with console.client() as again:  # the same secret still signs in
        await sign_in(console, again, ENT8)
    async with (
        aiohttp.ClientSession() as anon,
        anon.get(f"{console.url}/api/handles/{handle}") as r,
    ):
        values = {v["index"]: v for v in (await r.json())["values"]}
    assert values[5]["data"]["value"] == "Plant A" and 300 not in values  # secret: not public


async def test_next_returns_only_to_console_pages(console: Console) -> None:
    async with console.client() as client:
        for target, landing in (
            (f"/admin/prefix/{ENT8}?suffix=A", f"/admin/prefix/{ENT8}?suffix=A"),
            ("//evil.example/admin/", f"/admin/prefix/{ENT8}"),
            ("https://evil.example/admin/", f"/admin/prefix/{ENT8}"),
        ):
            form = {"identity": identity(ENT8), "secret": SECRETS[ENT8], "next": target}
            async with client.post(
                f"{console.url}/admin/signin", data=form, allow_redirects=False
            ) as resp:
                assert resp.headers["Location"] == landing


async def test_sign_out_ends_the_session_for_good(console: Console) -> None:
    async with console.client() as client:
        csrf = await sign_in(console, client, ENT8)
        (sid,) = [c.value for c in client.cookie_jar if c.key == "idnode_console"]
        async with client.post(f"{console.url}/admin/signout", data={"csrf": csrf}) as resp:
            assert resp.url.path == "/admin/signin"
        assert console.sessions.get(sid) is None
    async with console.client() as replay:  # the old cookie, sent again
        replay.cookie_jar.update_cookies({"idnode_console": sid})
        async with replay.get(f"{console.url}/admin/node", allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"].startswith("/admin/signin")


async def test_sessions_expire_when_idle_and_after_their_lifetime(console: Console) -> None:
    clock = Clock()
    console.sessions.clock = clock
    page = f"{console.url}/admin/prefix/{ENT8}"
    async with console.client() as client:
        await sign_in(console, client, ENT8)
        clock.now += console.sessions.idle - 1
        async with client.get(page, allow_redirects=False) as resp:
            assert resp.status == 200  # used in time: idle time starts again
        clock.now += console.sessions.idle - 1
        async with client.get(page, allow_redirects=False) as resp:
            assert resp.status == 200
        clock.now += console.sessions.idle
        async with client.get(page, allow_redirects=False) as resp:
            assert resp.status == 303
    async with console.client() as client:
        await sign_in(console, client, ENT8)
        step = console.sessions.idle / 2
        used = 0.0
        while used + step < console.sessions.lifetime:
            clock.now += step
            used += step
            async with client.get(page, allow_redirects=False) as resp:
                assert resp.status == 200
        clock.now += step  # past the lifetime, though never idle
        async with client.get(page, allow_redirects=False) as resp:
            assert resp.status == 303


def test_session_table_is_bounded() -> None:
    table = SessionTable(max_sessions=3)
    who = Principal(AdminRef(300, "0.NA/88.118.8"))
    opened = [table.open(who, "enterprise", ENT8) for _ in range(5)]
    assert len(table) == 3
    assert table.get(opened[0].id) is None and table.get(opened[4].id) is not None
    assert len({s.csrf for s in opened}) == 5


async def test_posts_without_the_csrf_token_are_refused(console: Console) -> None:
    async with console.client() as client:
        csrf = await sign_in(console, client, ENT8)
        create = new_form(None, ENT8, "CSRF-1", "https://example.org/c")
        for token in (None, "", csrf[:-1] + ("A" if csrf[-1] != "A" else "B")):
            form = dict(create) if token is None else {**create, "csrf": token}
            async with client.post(f"{console.url}/admin/identifier/new", data=form) as resp:
                assert resp.status == 403
                assert "expired" in await resp.text()
        async with client.get(f"{console.url}/api/handles/{ENT8}/CSRF-1") as resp:
            assert resp.status == 404
        async with client.post(f"{console.url}/admin/signout", data={}) as resp:
            assert resp.status == 403  # signing out is a POST like any other
        async with client.get(f"{console.url}/admin/prefix/{ENT8}") as resp:
            assert resp.status == 200  # still signed in


async def test_create_edit_delete_through_the_forms(console: Console) -> None:
    handle = f"{ENT8}/FORM-1"
    async with console.client() as client:
        csrf = await sign_in(console, client, ENT8)
        form = new_form(csrf, ENT8, "FORM-1", "https://example.org/f", index="one")
        form |= {"index_1": "", "type_1": "", "data_1": "", "perm_1": "", "ttl_1": ""}
        async with client.post(f"{console.url}/admin/identifier/new", data=form) as resp:
            assert resp.status == 400
            page = await resp.text()
        assert "An index is a whole number from 1." in page
        assert 'id="index_0"' in page and 'aria-invalid="true"' in page
        async with client.get(f"{console.url}/api/handles/{handle}") as resp:
            assert resp.status == 404
        form["index_0"] = "1"
        async with client.post(f"{console.url}/admin/identifier/new", data=form) as resp:
            assert resp.status == 200
            assert resp.url.query["handle"] == handle
            page = await resp.text()
        assert f"Created {handle}." in page and "Verified: signed by" in page
        async with client.get(f"{console.url}/api/handles/{handle}?type=URL") as resp:
            body = await resp.json()
        assert body["values"][0]["data"]["value"] == "https://example.org/f"
        # Edit: change the URL, add a value.
        edit = {
            "csrf": csrf,
            "handle": handle,
            "index_0": "1",
            "type_0": "URL",
            "data_0": "https://example.org/g",
            "perm_0": "1110",
            "ttl_0": "600",
            "index_1": "2",
            "type_1": "EMAIL",
            "data_1": "ops@example.org",
            "perm_1": "",
            "ttl_1": "",
        }
        async with client.post(f"{console.url}/admin/identifier", data=edit) as resp:
            assert resp.status == 200
            assert f"Saved {handle}." in await resp.text()
        async with client.get(f"{console.url}/api/handles/{handle}") as resp:
            values = {v["index"]: v for v in (await resp.json())["values"]}
        assert values[1]["data"]["value"] == "https://example.org/g" and values[1]["ttl"] == 600
        assert values[2]["type"] == "EMAIL"
        # Duplicate index: a field error, nothing written.
        dup = {**edit, "index_1": "1"}
        async with client.post(f"{console.url}/admin/identifier", data=dup) as resp:
            assert resp.status == 400
            assert "Index 1 is used by another row too." in await resp.text()
        # Delete needs the confirmation box.
        gone = {"csrf": csrf, "handle": handle}
        async with client.post(f"{console.url}/admin/identifier/delete", data=gone) as resp:
            assert resp.status == 400
        async with client.post(
            f"{console.url}/admin/identifier/delete", data={**gone, "confirm": "yes"}
        ) as resp:
            assert resp.status == 200 and resp.url.path == f"/admin/prefix/{ENT8}"
        async with client.get(f"{console.url}/api/handles/{handle}") as resp:
            assert resp.status == 404


async def test_an_enterprise_admin_is_refused_elsewhere_by_the_registry(
    console: Console,
) -> None:
    async with console.client() as client:
        csrf = await sign_in(console, client, ENT8)
        async with client.get(f"{console.url}/admin/prefix/{ENT9}") as resp:
            assert resp.status == 403  # listing 88.118.9 needs its "list handles"
        form = new_form(csrf, ENT9, "X", "https://example.org/x")
        async with client.post(f"{console.url}/admin/identifier/new", data=form) as resp:
            assert resp.status == 403
            assert "Not done" in await resp.text()
        async with client.get(f"{console.url}/api/handles/{ENT9}/X") as resp:
            assert resp.status == 404
        alloc = {"csrf": csrf, "prefix": "88.118.77", "secret": "s"}
        async with client.post(f"{console.url}/admin/node/prefixes", data=alloc) as resp:
            assert resp.status == 403
        async with client.get(f"{console.url}/api/handles/0.NA/88.118.77") as resp:
            assert resp.status == 404


async def test_node_admin_allocates_an_enterprise_prefix(console: Console) -> None:
    async with console.client() as client:
        csrf = await sign_in(console, client, NODE_PREFIX)
        alloc = {"csrf": csrf, "prefix": "88.118.77", "secret": ""}
        async with client.post(f"{console.url}/admin/node/prefixes", data=alloc) as resp:
            page = await resp.text()
        assert resp.url.path == "/admin/node" and "Allocated 88.118.77" in page
        secret = page.split("Its secret (shown once): ", 1)[1].split("<", 1)[0]
    async with console.client() as client:
        form = {"identity": "300:0.NA/88.118.77", "secret": secret}
        async with client.post(f"{console.url}/admin/signin", data=form) as resp:
            assert resp.url.path == "/admin/prefix/88.118.77"


async def test_search_by_suffix_and_by_url(console: Console) -> None:
    async with console.client() as client:
        csrf = await sign_in(console, client, ENT8)
        for suffix, url in (
            ("PUMP-1", "https://a.example/1"),
            ("PUMP-2", "https://b.example/2"),
            ("VALVE-1", "https://a.example/3"),
        ):
            form = new_form(csrf, ENT8, suffix, url)
            async with client.post(f"{console.url}/admin/identifier/new", data=form) as resp:
                assert resp.status == 200
        base = f"{console.url}/admin/prefix/{ENT8}"
        async with client.get(base, params={"suffix": "pump"}) as resp:
            page = await resp.text()
        assert "PUMP-1" in page and "PUMP-2" in page and "VALVE-1" not in page
        async with client.get(base, params={"url": "https://a.example/*"}) as resp:
            page = await resp.text()
        assert "PUMP-1" in page and "VALVE-1" in page and "PUMP-2" not in page


async def upload_and_wait(
    console: Console, client: aiohttp.ClientSession, name: str, text: str
) -> str:
    """Sign in as 88.118.8's admin, import ``text`` as file ``name``, wait for the job to
    finish; its id."""
    csrf = await sign_in(console, client, ENT8)
    form = aiohttp.FormData()
    form.add_field("csrf", csrf)
    form.add_field("file", io.BytesIO(text.encode()), filename=name)
    async with client.post(f"{console.url}/admin/import", data=form) as resp:
        assert resp.status == 200
        job_id = resp.url.path.rsplit("/", 1)[1]
        assert f'data-status="/admin/import/{job_id}.json"' in await resp.text()
    job = console.app[JOBS].get(job_id, ENT8_WHO)
    assert job is not None and job.task is not None
    await job.task
    return job_id


async def test_import_with_progress_reports_refused_lines(console: Console) -> None:
    lines = [
        {"handle": f"{ENT8}/IMP-1", "values": [{"index": 1, "type": "URL", "data": "https://x/1"}]},
        "not json",
        {"handle": f"{ENT9}/IMP-2", "values": [{"index": 1, "type": "URL", "data": "https://x/2"}]},
        {"handle": f"{ENT8}/IMP-3", "values": [{"index": 1, "type": "URL", "data": "https://x/3"}]},
    ]
    text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n"
    async with console.client() as client:
        job_id = await upload_and_wait(console, client, "items.jsonl", text)
        async with client.get(f"{console.url}/admin/import/{job_id}.json") as resp:
            status = await resp.json()
        assert status["finished"] and status["total"] == 4 and status["done"] == 4
        assert (status["created"], status["replaced"], status["failed"]) == (2, 0, 2)
        lines_refused = [e["line"] for e in status["errors"]]
        assert lines_refused == [2, 3]
        assert (
            status["errors"][1]["message"]
            == f"{ENT9}/IMP-2: {ENT8_ID} may not add handle on {ENT9}/IMP-2"
        )
    async with console.client() as other:  # someone else cannot see the job
        await sign_in(console, other, ENT9)
        async with other.get(f"{console.url}/admin/import/{job_id}.json") as resp:
            assert resp.status == 404
    async with (
        aiohttp.ClientSession() as anon,
        anon.get(f"{console.url}/api/handles/{ENT8}/IMP-3") as resp,
    ):
        assert resp.status == 200


async def test_an_upload_over_max_body_is_refused_on_a_page(console: Console) -> None:
    limit = console.node.config.max_body
    async with console.client() as client:
        csrf = await sign_in(console, client, ENT8)
        form = aiohttp.FormData()
        form.add_field("csrf", csrf)
        form.add_field("file", io.BytesIO(b"x" * (limit + 1)), filename="big.jsonl")
        async with client.post(f"{console.url}/admin/import", data=form) as resp:
            assert resp.status == 400
            assert resp.content_type == "text/html"
            assert f"larger than {limit} bytes" in await resp.text()


async def test_import_csv(console: Console) -> None:
    text = (
        "handle,index,type,data,ttl\n"
        f"{ENT8}/CSV-1,1,URL,https://c.example/1,\n"
        f"{ENT8}/CSV-1,2,EMAIL,a@c.example,600\n"
        f"{ENT8}/CSV-2,1,URL,https://c.example/2,\n"
    )
    async with console.client() as client:
        job_id = await upload_and_wait(console, client, "items.csv", text)
        job = console.app[JOBS].get(job_id, ENT8_WHO)
        assert job is not None
        assert (job.created, job.failed) == (2, 0), job.errors
        async with client.get(f"{console.url}/api/handles/{ENT8}/CSV-1") as resp:
            values = {v["index"]: v for v in (await resp.json())["values"]}
        assert values[2]["data"]["value"] == "a@c.example" and values[2]["ttl"] == 600


async def test_console_writes_are_audited_as_the_console(console: Console) -> None:
    handle = f"{ENT8}/AUDIT-1"
    async with console.client() as client:
        csrf = await sign_in(console, client, ENT8)
        form = new_form(csrf, ENT8, "AUDIT-1", "https://example.org/a")
        async with client.post(f"{console.url}/admin/identifier/new", data=form) as resp:
            assert resp.status == 200
        gone = {"csrf": csrf, "handle": handle, "confirm": "yes"}
        async with client.post(f"{console.url}/admin/identifier/delete", data=gone) as resp:
            assert resp.status == 200
        async with client.get(
            f"{console.url}/api/audit?prefix={ENT8}", headers=admin_of(NODE_PREFIX)
        ) as resp:
            assert resp.status == 200, await resp.text()
            entries = [e for e in (await resp.json())["entries"] if e["handle"] == handle]
    assert [e["transport"] for e in entries] == ["admin-console", "admin-console"]
    assert entries[0]["address"] == "127.0.0.1"
    assert entries[0]["identity"] == ENT8_ID
