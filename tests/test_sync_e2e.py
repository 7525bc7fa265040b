"""The whole chain on loopback, as real processes: a top-level node and two secondary nodes.

- An enterprise prefix created on node A is reported, routed by the top-level, and its
  identifiers resolve through node B, verified up to the top-level root; a tampered answer is
  never marked verified nor cached; referrals and loop limits.
- The top-level is down while A takes 1,000 writes and A is killed (SIGKILL) with a full
  outbox: after both come back, every change is reported, none twice, and the top-level's
  statistics equal A's own.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from resolver.native import Limits
from resolver.native import client as native_client
from resolver.native.codes import DNRF, REC, ResponseCode
from resolver.native.messages import OpaqueBody, ResolutionRequest, ResolutionResponse
from resolver.native.readers import _handle_and_values
from tests.conftest import (
    ENT8,
    ENT8_ADMIN,
    NODE_ADMIN,
    basic,
    free_port,
    identity,
    init_node,
    served_app,
)
from tests.procs import Served, cli
from tests.syncprocs import (
    app_create,
    get_json,
    init_secondary,
    node_serving,
    prefix_body,
    register,
    toplevel_init,
    toplevel_serving,
    until,
)

URL = "https://example.org/items/"


async def native_address(served: Served) -> tuple[str, int]:
    """The native listener's address, from the announce lines after the HTTP one."""
    assert served.proc.stdout is not None
    for _ in range(2):  # hdl-udp, hdl-tcp: the same port
        line = (await asyncio.wait_for(served.proc.stdout.readline(), 20)).decode().strip()
        host, _, port = line.rpartition("://")[2].rpartition(":")
    return host, int(port)


def url_body(n: int | str) -> dict[str, Any]:
    return {
        "values": [{"index": 1, "type": "URL", "data": {"format": "string", "value": f"{URL}{n}"}}]
    }


async def put(
    session: aiohttp.ClientSession, served: Served, handle: str, body: Any, headers: dict[str, str]
) -> int:
    async with session.put(served.api(handle), json=body, headers=headers) as r:
        await r.read()
        return r.status


def urls(body: dict[str, Any]) -> list[str]:
    return [v["data"]["value"] for v in body.get("values", []) if v["type"] == "URL"]


class Tamperer:
    """An HTTP proxy in front of node A that rewrites the URL of ``ITEM-2`` on the way out:
    what a compromised network path or cache would do."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.hits: dict[str, int] = {}

    async def handle(self, request: web.Request) -> web.Response:
        path = request.rel_url.path
        self.hits[path] = self.hits.get(path, 0) + 1
        headers = {k: v for k, v in request.headers.items() if k.lower().startswith("x-idnode")}
        async with (
            aiohttp.ClientSession() as s,
            s.get(self.upstream + str(request.rel_url), headers=headers) as r,
        ):
            body = await r.read()
            status = r.status
        if path.endswith("/ITEM-2"):
            body = body.replace(b"items/2", b"evil.example/2")
        return web.Response(body=body, status=status, content_type="application/json")


@pytest.fixture
async def tamperer() -> AsyncIterator[tuple[Tamperer, str]]:
    proxy = Tamperer("")
    app = web.Application()
    app.router.add_get("/{tail:.*}", proxy.handle)
    async with served_app(app) as url:
        yield proxy, url


async def test_prefix_on_a_resolves_verified_through_b(
    tmp_path: Path, tamperer: tuple[Tamperer, str]
) -> None:
    proxy, proxy_url = tamperer
    top_data, a_data, b_data = tmp_path / "top", tmp_path / "a", tmp_path / "b"
    toplevel_init(top_data)
    app_a, app_b = app_create(top_data, "88.118"), app_create(top_data, "88.200")
    await init_node(a_data)
    await init_secondary(b_data, "88.200", {"88.200": "b-secret"})
    async with (
        toplevel_serving(top_data) as top,
        node_serving(a_data, {"IDNODE_RECURSION": "false"}) as a,
        node_serving(b_data, {"IDNODE_NATIVE": "127.0.0.1:0"}) as b,
        aiohttp.ClientSession() as s,
    ):
        b_native = await native_address(b)
        register(b_data, top, app_b, b)
        # A is published behind the tampering proxy: B reaches A only through it.
        proxy.upstream = a.url
        done = cli(
            "sync", "register", "--data", a_data, "--toplevel", top.url,
            "--app-id", app_a, "--public-url", proxy_url,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr

        # An enterprise prefix created on A, and identifiers in it.
        assert await put(s, a, "0.NA/88.118.50", prefix_body("88.118.50", "s50"), NODE_ADMIN) == 201
        admin50 = {"Authorization": basic(identity("88.118.50"), "s50")}
        for n in (1, 2):
            assert await put(s, a, f"88.118.50/ITEM-{n}", url_body(n), admin50) == 201

        # Reported and routed: the top-level's record for it is signed by its root.
        status, route, _ = await until(
            lambda: get_json(s, top.api("0.NA/88.118.50")), lambda r: r[0] == 200, "routing"
        )
        assert any(v["type"] == "HS_SITE" for v in route["values"])

        # A reports its status by itself.
        _, nodes, _ = await until(
            lambda: get_json(s, top.url + "/toplevel/v1/nodes"),
            lambda r: any(n["app_id"] == app_a and n["heartbeat"] for n in r[1]["nodes"]),
            "a heartbeat from A",
        )
        (beat,) = [n["heartbeat"]["status"] for n in nodes["nodes"] if n["app_id"] == app_a]
        assert beat["prefixes"] == ["88.118"] and beat["records"] >= 3

        # Resolved through B, verified up to the top-level root.
        status, body, headers = await get_json(s, b.api("88.118.50/ITEM-1"))
        assert status == 200, body
        assert headers["X-Idnode-Verified"] == "true", headers.get("X-Idnode-Verify-Error")
        assert urls(body) == [f"{URL}1"]
        status, body, headers = await get_json(s, b.api("88.118.50/ITEM-1?type=URL"))
        assert (status, headers["X-Idnode-Verified"], urls(body)) == (200, "true", [f"{URL}1"])
        assert [v["type"] for v in body["values"]] == ["URL"]
        hits = proxy.hits.get("/api/handles/88.118.50/ITEM-1", 0)
        assert hits == 1  # the second answer came from B's cache of the verified record
        status, body, headers = await get_json(s, b.api("88.118.50/ITEM-1?auth=true"))
        assert (status, headers["X-Idnode-Verified"]) == (200, "true")
        assert proxy.hits["/api/handles/88.118.50/ITEM-1"] == 2  # auth=true asked A again

        # Offline, as a client would: `idnode verify` against the top-level root only.
        reg = json.loads((a_data / "sync" / "registration.json").read_text())
        root = tmp_path / "toplevel-root.jwk"
        root.write_text(json.dumps(reg["root"]["public_key"]))
        status, body, _ = await get_json(s, b.api("0.NA/88.118"))  # A's keys, through B
        assert status == 200, (body, b.stderr_text())
        for server in (b.url, a.url):
            done = cli("verify", "88.118.50/ITEM-1", "--server", server, "--trust-root", root)
            assert done.returncode == 0, done.stdout + done.stderr
        # And on A's own data directory: the registered trust root is the default.
        done = cli("verify", "88.118.50/ITEM-1", "--data", a_data)
        assert done.returncode == 0, done.stdout + done.stderr

        # A tampered answer is served, but never as verified, and never cached.
        for _ in range(2):
            status, body, headers = await get_json(s, b.api("88.118.50/ITEM-2"))
            assert status == 200
            assert headers["X-Idnode-Verified"] == "false"
            assert "digest" in headers["X-Idnode-Verify-Error"]
        assert proxy.hits["/api/handles/88.118.50/ITEM-2"] == 2

        # Recursion off on A: a referral to B's prefix record, with B's HS_SITE.
        status, body, _ = await get_json(s, a.api("88.200/ANY"))
        assert status == 300 and body["responseCode"] == 302, body
        assert body["referralHandle"] == "0.NA/88.200"
        assert [v["type"] for v in body["values"]] == ["HS_SITE"]
        # The proxy tells it as the same referral, never B's site values as the handle's own.
        proxied = f"{a.url}/88.200/ANY"
        accept = {"Accept": "application/json"}
        async with s.get(proxied, headers=accept, allow_redirects=False) as r:
            assert (r.status, await r.json()) == (300, body)
        async with s.get(proxied, allow_redirects=False) as r:
            page = await r.text()
            assert r.status == 300 and r.content_type == "text/html", page
        assert "<title>Referral — 88.200/ANY</title>" in page and "<b>0.NA/88.200</b>" in page

        # Over the native protocol the client's flags reach B's core: REC (recursion allowed,
        # as clients send it) resolves at A; REC clear asks for a referral to A's prefix
        # record (the route the top-level published); DNRF (no referrals) makes that "not
        # responsible".
        rec = native_client.request(ResolutionRequest("88.118.50/ITEM-1"))
        got = await native_client.exchange_tcp(*b_native, rec)
        assert got.header.response_code == ResponseCode.SUCCESS
        assert isinstance(got.body, ResolutionResponse)
        assert [v.data for v in got.body.values if v.type == "URL"] == [f"{URL}1".encode()]
        rec.header.op_flags &= ~REC
        got = await native_client.exchange_tcp(*b_native, rec)
        assert got.header.response_code == ResponseCode.SERVICE_REFERRAL
        assert isinstance(got.body, OpaqueBody)
        referral, site = _handle_and_values(got.body.data, 0, len(got.body.data), Limits())
        assert referral == "0.NA/88.118.50" and [v.type for v in site] == ["HS_SITE"]
        rec.header.op_flags |= DNRF
        got = await native_client.exchange_tcp(*b_native, rec)
        assert got.header.response_code == ResponseCode.SERVER_NOT_RESP

        # Loops and hop limits are refused with responseCode 6.
        for headers in ({"X-Idnode-Via": app_b}, {"X-Idnode-Hops": "4"}):
            status, body, _ = await get_json(s, b.api("88.118.8/ANY"), headers)
            assert body["responseCode"] == 6, (headers, body)
        # A prefix nobody serves.
        status, body, _ = await get_json(s, b.api("77.1/X"))
        assert (status, body["responseCode"]) == (400, 301)


def parse_metrics(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+(?:\{[^}]*\})?) (\S+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


async def metrics(s: aiohttp.ClientSession, served: Served) -> dict[str, float]:
    async with s.get(served.url + "/metrics") as r:
        return parse_metrics(await r.text())


def own_stats(m: dict[str, float]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for key, value in m.items():
        found = re.match(r'idnode_sync_stats_([a-z]+)\{prefix="([^"]+)"\}', key)
        if found:
            out.setdefault(found.group(2), {})[found.group(1)] = int(value)
    return out


async def test_outbox_survives_toplevel_downtime_and_a_sigkill(tmp_path: Path) -> None:
    top_data, a_data = tmp_path / "top", tmp_path / "a"
    toplevel_init(top_data)
    app_a = app_create(top_data, "88.118")
    await init_node(a_data)
    port = free_port()
    top_http = f"127.0.0.1:{port}"
    async with aiohttp.ClientSession() as s:
        async with node_serving(a_data) as a:
            async with toplevel_serving(top_data, http=top_http) as top:
                register(a_data, top, app_a, a)
                await until(
                    lambda: metrics(s, a),
                    lambda m: m["idnode_sync_pending_items"] == 0,
                    "first drain",
                )
            # The top-level is down: 1,000 writes (10 new enterprise prefixes, 950 new
            # identifiers, 30 updates, 10 deletions) and some resolutions pile up.
            sem = asyncio.Semaphore(16)

            async def write(handle: str, body: Any, headers: dict[str, str], want: int) -> None:
                async with sem:
                    assert await put(s, a, handle, body, headers) == want

            new_prefixes = [f"88.118.{100 + i}" for i in range(10)]
            await asyncio.gather(
                *(write(f"0.NA/{p}", prefix_body(p, "x"), NODE_ADMIN, 201) for p in new_prefixes)
            )
            await asyncio.gather(
                *(write(f"{ENT8}/N{i}", url_body(i), ENT8_ADMIN, 201) for i in range(950))
            )
            await asyncio.gather(
                *(write(f"{ENT8}/N{i}", url_body(f"-{i}"), ENT8_ADMIN, 200) for i in range(30))
            )
            for i in range(10):
                async with s.delete(a.api(f"{ENT8}/N{900 + i}"), headers=ENT8_ADMIN) as r:
                    assert r.status == 200
            for i in range(200):
                async with s.get(a.api(f"{ENT8}/N{i}")) as r:
                    assert r.status == 200
            async with s.get(a.api(f"0.NA/{ENT8}")) as r:  # the node's own: not a statistic
                assert r.status == 200
            m = await until(
                lambda: metrics(s, a),
                lambda m: (
                    m["idnode_sync_pending_items"] >= 10
                    and m["idnode_sync_last_error_timestamp_seconds"] > 0
                ),
                "writes queued while the top-level is down",
            )
            # Killed with a full outbox: no clean shutdown, no final flush.
            a.proc.send_signal(signal.SIGKILL)
            await a.proc.wait()
        async with (
            toplevel_serving(top_data, http=top_http) as top,
            node_serving(a_data) as a,
        ):
            m = await until(
                lambda: metrics(s, a),
                lambda m: (
                    m["idnode_sync_pending_items"] == 0
                    and own_stats(m).get(ENT8, {}).get("registrations") == 950
                ),
                "outbox drained after restarts",
            )
            theirs = await until(
                lambda: get_json(s, top.url + "/toplevel/v1/stats"),
                lambda r: _totals(r[1]) == own_stats(m),
                "top-level statistics equal A's own",
            )
            mine = own_stats(m)
            assert mine[ENT8] == {
                "registrations": 950,
                "updates": 30,
                "deletions": 10,
                "resolutions": mine[ENT8]["resolutions"],
            }
            for i in range(10):
                status, _, _ = await get_json(s, top.api(f"0.NA/88.118.{100 + i}"))
                assert status == 200
            assert theirs[0] == 200
            # Every item A ever queued was accepted exactly once: outbox sequence numbers run
            # 1..N without gaps, and the top-level saw N distinct ids, all accepted.
            status, items, _ = await get_json(s, top.url + "/toplevel/v1/items")
            (counters,) = [c for c in items["apps"] if c["app_id"] == app_a]
            queued = await asyncio.to_thread(_last_seq, a_data)
            assert (counters["accepted"], counters["ids"], counters["rejected"]) == (
                queued,
                queued,
                0,
            )
            assert queued > 12  # 12 prefix items and the statistics intervals


COUNTS = ("registrations", "updates", "deletions", "resolutions")


def _totals(stats: Any) -> dict[str, dict[str, int]]:
    """Totals per prefix from the top-level's stats view."""
    totals = stats.get("totals", []) if isinstance(stats, dict) else []
    return {t["prefix"]: {k: int(t[k]) for k in COUNTS} for t in totals}


def _last_seq(data: Path) -> int:
    conn = sqlite3.connect(f"file:{data / 'registry.sqlite3'}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        return int(row[0])
    finally:
        conn.close()
