"""Listing, prefixes, site, unknown endpoints and methods, CORS, reverse lookup, proxy-style
resolution, the credential policy and throttling — against handle-rest.md and
handle-rest-observed.md §7, §9-11."""

from __future__ import annotations

import html
import re
import time
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yarl
from aiohttp.test_utils import TestServer

from registry.auth import FailureThrottle
from registry.model.identifiers import parse
from registry.model.jsonvalues import data_to_json
from registry.model.site import site_from_bytes, site_to_bytes
from registry.model.values import Value
from resolver.config import load
from resolver.http.app import make_app
from resolver.node import Node
from tests.conftest import (
    ENT8_ADMIN,
    ENT9_ADMIN,
    JSON,
    NODE_ADMIN,
    Server,
    assert_signed,
    basic,
    client_view,
    in_process,
    init_node,
)

PREFIX8 = "0.NA/88.118.8"
WRONG = {"Authorization": basic("300:0.NA/88.118.8", "wrong")}
LISTED = ["88.118.8/A", "88.118.8/B", "88.118.8/C", "88.118.8/D"]
HTML_TYPE = "text/html; charset=utf-8"


async def put(server: Server, handle: str, body: Any, headers: dict[str, str] = ENT8_ADMIN) -> None:
    async with server.session.put(server.api(handle), json=body, headers={**headers, **JSON}) as r:
        assert r.status == 201, await r.text()


async def fetch(
    server: Server,
    path: str,
    headers: dict[str, str] | None = None,
    method: str = "GET",
) -> tuple[int, Any]:
    url = yarl.URL(server.url + path, encoded=True)
    async with server.session.request(method, url, headers=headers or {}) as r:
        text = await r.text()
        assert "Traceback" not in text
        return r.status, (await r.json(content_type=None)) if text else None


def assert_two_challenges(headers: Any) -> None:
    challenges = headers.getall("WWW-Authenticate", [])
    assert len(challenges) == 2, challenges
    assert challenges[0] == 'Basic realm="handle"'
    assert re.fullmatch(r'Handle sessionId="[^"]+", nonce="[^"]+"', challenges[1]), challenges


def desc(text: str) -> list[dict[str, Any]]:
    return [{"index": 1, "type": "DESC", "data": text}]


@pytest.fixture
async def listed(server: Server) -> Server:
    for h in LISTED:
        await put(server, h, desc(h))
    await put(server, "88.118.9/Z", desc("z"), ENT9_ADMIN)
    return server


# ------------------------------------------------------------------ listing handles


LIST8 = "/api/handles?prefix=88.118.8"


async def test_list_first_page(listed: Server) -> None:
    status, body = await fetch(listed, LIST8 + "&page=0&pageSize=2", ENT8_ADMIN)
    assert status == 200
    assert body == {
        "responseCode": 1,
        "prefix": "88.118.8",
        "totalCount": "4",
        "page": 0,
        "pageSize": 2,
        "handles": LISTED[:2],
    }
    assert list(body) == ["responseCode", "prefix", "totalCount", "page", "pageSize", "handles"]


async def test_list_second_page(listed: Server) -> None:
    status, body = await fetch(listed, LIST8 + "&page=1&pageSize=2", ENT8_ADMIN)
    assert status == 200
    assert body["totalCount"] == "4"
    assert body["page"] == 1
    assert body["pageSize"] == 2
    assert body["handles"] == LISTED[2:]


@pytest.mark.parametrize("page", [2, 5000])
async def test_list_past_the_end(listed: Server, page: int) -> None:
    status, body = await fetch(listed, LIST8 + f"&page={page}&pageSize=2", ENT8_ADMIN)
    assert status == 200
    assert body == {
        "responseCode": 1,
        "prefix": "88.118.8",
        "totalCount": "4",
        "page": page,
        "pageSize": 2,
        "handles": [],
    }


@pytest.mark.parametrize(
    "query",
    [
        "",
        "&pageSize=0&page=0",
        "&pageSize=2",
        "&page=2",
        "&pageSize=-1&page=0",
        "&pageSize=2&page=-1",
    ],
)
async def test_list_without_paging_gives_everything(listed: Server, query: str) -> None:
    status, body = await fetch(listed, LIST8 + query, ENT8_ADMIN)
    assert status == 200
    assert body == {"responseCode": 1, "prefix": "88.118.8", "totalCount": "4", "handles": LISTED}
    assert list(body) == ["responseCode", "prefix", "totalCount", "handles"]


async def test_list_duplicated_page_size_first_wins(listed: Server) -> None:
    status, body = await fetch(listed, LIST8 + "&page=0&pageSize=1&pageSize=3", ENT8_ADMIN)
    assert status == 200
    assert body["pageSize"] == 1
    assert body["handles"] == LISTED[:1]


@pytest.mark.parametrize("query", ["&page=0&pageSize=abc", "&page=abc&pageSize=2"])
async def test_list_page_not_a_number(listed: Server, query: str) -> None:
    status, body = await fetch(listed, LIST8 + query, ENT8_ADMIN)
    assert status == 400
    assert body["responseCode"] == 4
    assert body["handle"] == "88.118.8"
    assert body["message"]


async def test_list_without_auth(listed: Server) -> None:
    async with listed.session.get(listed.url + LIST8 + "&page=0&pageSize=2") as r:
        assert r.status == 401
        assert await r.json() == {"responseCode": 402, "handle": "88.118.8"}
        assert_two_challenges(r.headers)


async def test_list_with_wrong_secret(listed: Server) -> None:
    async with listed.session.get(listed.url + LIST8, headers=WRONG) as r:
        assert r.status == 401
        assert await r.read() == b""


async def test_list_by_another_enterprise_admin(listed: Server) -> None:
    status, body = await fetch(listed, LIST8, ENT9_ADMIN)
    assert status == 403
    assert body["responseCode"] == 401
    assert body["handle"] == "88.118.8"


async def test_node_admin_lists_an_enterprise(listed: Server) -> None:
    status, body = await fetch(listed, LIST8, NODE_ADMIN)
    assert status == 200
    assert body["totalCount"] == "4"
    assert body["handles"] == LISTED


async def test_list_by_prefix_handle(listed: Server) -> None:
    status, body = await fetch(listed, "/api/handles?prefix=0.NA/88.118.8", ENT8_ADMIN)
    assert status == 200
    assert body == {
        "responseCode": 1,
        "prefix": "0.NA/88.118.8",
        "totalCount": "4",
        "handles": LISTED,
    }


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (ENT8_ADMIN, [PREFIX8]),
        (NODE_ADMIN, ["0.NA/88.118", PREFIX8, "0.NA/88.118.9"]),
    ],
    ids=["enterprise", "node"],
)
async def test_list_prefix_handles(
    listed: Server, headers: dict[str, str], expected: list[str]
) -> None:
    status, body = await fetch(listed, "/api/handles?prefix=0.NA", headers)
    assert status == 200
    assert body == {
        "responseCode": 1,
        "prefix": "0.NA",
        "totalCount": str(len(expected)),
        "handles": expected,
    }


@pytest.mark.parametrize("prefix", ["88.118.8/", "99.999"])
async def test_list_prefix_not_here(listed: Server, prefix: str) -> None:
    status, body = await fetch(listed, f"/api/handles?prefix={prefix}", ENT8_ADMIN)
    assert status == 400
    assert body == {
        "responseCode": 301,
        "message": "That prefix doesn't live here",
        "handle": prefix,
    }


# ------------------------------------------------------------------ prefixes, site


async def test_prefixes(server: Server) -> None:
    status, body = await fetch(server, "/api/prefixes", ENT8_ADMIN)
    assert status == 200
    assert body == {
        "responseCode": 1,
        "totalCount": "3",
        "prefixes": ["0.NA/88.118", PREFIX8, "0.NA/88.118.9"],
    }
    assert list(body) == ["responseCode", "totalCount", "prefixes"]


async def test_prefixes_without_auth(server: Server) -> None:
    async with server.session.get(server.url + "/api/prefixes") as r:
        assert r.status == 401
        body = await r.json()
        assert_two_challenges(r.headers)
    assert body["responseCode"] == 402
    assert body.get("handle") is None


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_site(server: Server, method: str) -> None:
    status, body = await fetch(server, "/api/site", method=method)
    assert status == 200
    assert list(body) == ["responseCode", "site"]
    assert body["responseCode"] == 1
    site = body["site"]
    assert site["version"] == 1
    assert site["protocolVersion"] == "2.11"
    interfaces = site["servers"][0]["interfaces"]
    port = yarl.URL(server.url).port
    assert {"query": True, "admin": True, "protocol": "HTTP", "port": port} in interfaces
    # As the reference shows its site: the server's public key (the node's root key, which
    # signs certified native replies), between its address and its interfaces.
    (listed,) = site["servers"]
    assert list(listed) == ["serverId", "address", "publicKey", "interfaces"]
    root = server.node.keyring.key(0).public_jwk()
    assert listed["publicKey"] == {"format": "key", "value": root}
    assert site_from_bytes(site_to_bytes(site)) == site  # a valid HS_SITE as it is


# ------------------------------------------------------------------ unknown paths and methods


@pytest.mark.parametrize("path", ["/api/nonexistent", "/api/", "/api"])
async def test_unknown_api_endpoint(server: Server, path: str) -> None:
    status, body = await fetch(server, path)
    assert status == 404
    assert body["responseCode"] == 4
    assert body["message"] == f"Unknown HTTP API endpoint GET {path}"


async def test_unknown_api_endpoint_put(server: Server) -> None:
    status, body = await fetch(server, "/api/nonexistent", ENT8_ADMIN, method="PUT")
    assert status == 404
    assert body["responseCode"] == 4
    assert body["message"] == "Unknown HTTP API endpoint PUT /api/nonexistent"


async def test_known_endpoint_wrong_method(server: Server) -> None:
    status, body = await fetch(server, "/api/site", ENT8_ADMIN, method="PUT")
    assert status == 405
    assert body["responseCode"] == 4
    assert body["message"] == "Unknown HTTP API endpoint PUT /api/site"


@pytest.mark.parametrize("path", ["/api/handles/88.118.8/X", "/anything", "/api/site"])
async def test_unknown_method(server: Server, path: str) -> None:
    status, body = await fetch(server, path, method="PATCH")
    assert status == 501
    assert body == {"responseCode": 4, "message": "Unknown method PATCH"}


async def test_options(server: Server) -> None:
    async with server.session.options(server.api("88.118.8/X")) as r:
        assert r.status == 200
        allowed = {m.strip() for m in r.headers["Allow"].split(",")}
        assert await r.read() == b""
    assert {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"} <= allowed


@pytest.mark.parametrize("path", ["/api/handles/0.NA/88.118.8", "/api/handles/88.118.8/NOPE"])
async def test_cors_origin_is_echoed(server: Server, path: str) -> None:
    origin = "https://app.example.org"
    async with server.session.get(server.url + path, headers={"Origin": origin}) as r:
        assert r.status in (200, 404)
        assert r.headers["Access-Control-Allow-Origin"] == origin
        assert r.headers["Access-Control-Expose-Headers"] == "Content-Length"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("OPTIONS", "/", 200),  # no route takes OPTIONS: the catch-all's boundary answers
        ("PATCH", "/88.118.8/X", 501),
        ("POST", "/88.118.8/X", 405),  # a route has this path, for GET and HEAD only
        ("GET", "/resolve?handle=88.118.8/X", 302),  # a redirect raised by the handler
        ("GET", "/api/handles/88.118.8/NOPE", 404),  # resolution's own boundary
    ],
)
async def test_every_answer_passes_the_boundary(
    server: Server, method: str, path: str, status: int
) -> None:
    """Routes' handlers have no middleware around them: each answer, whichever way it was
    made, still carries the CORS headers, and a method a path lacks is aiohttp's 405."""
    origin = "https://app.example.org"
    url = yarl.URL(server.url + path, encoded=True)
    headers = {"Origin": origin}
    async with server.session.request(method, url, headers=headers, allow_redirects=False) as r:
        assert r.status == status
        assert r.headers["Access-Control-Allow-Origin"] == origin
        if status == 405:
            assert {m.strip() for m in r.headers["Allow"].split(",")} == {"GET", "HEAD"}


async def test_no_cors_headers_without_origin(server: Server) -> None:
    async with server.session.get(server.api(PREFIX8)) as r:
        assert r.status == 200
        assert "Access-Control-Allow-Origin" not in r.headers


# ------------------------------------------------------------------ reverse lookup


@pytest.fixture
async def urls(server: Server) -> Server:
    def url(u: str) -> list[dict[str, Any]]:
        return [{"index": 1, "type": "URL", "data": u}]

    await put(server, "88.118.8/R1", url("https://example.org/a"))
    await put(server, "88.118.8/R2", url("https://example.org/b/c"))
    await put(server, "88.118.8/R3", url("https://other.net/a"))
    await put(server, "88.118.8/R5", desc("https://example.org/a"))
    await put(server, "88.118.9/R4", url("https://example.org/a"), ENT9_ADMIN)
    return server


async def reverse(server: Server, pattern: str, headers: dict[str, str]) -> tuple[int, Any]:
    async with server.session.get(
        server.url + "/hrls/handles/", params={"URL": pattern}, headers=headers
    ) as r:
        return r.status, await r.json()


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("https://example.org/a", ["88.118.8/R1"]),
        ("https://example.org/*", ["88.118.8/R1", "88.118.8/R2"]),
        ("*/a", ["88.118.8/R1", "88.118.8/R3"]),
        ("https://*.org/a", ["88.118.8/R1"]),
        ("https://*/a", ["88.118.8/R1", "88.118.8/R3"]),
        ("https://nowhere.example/*", []),
    ],
    ids=["exact", "trailing", "leading", "middle", "middle-wide", "none"],
)
async def test_reverse_lookup_enterprise_admin(
    urls: Server, pattern: str, expected: list[str]
) -> None:
    status, body = await reverse(urls, pattern, ENT8_ADMIN)
    assert status == 200
    assert isinstance(body, list)
    assert sorted(body) == expected


async def test_reverse_lookup_other_enterprise(urls: Server) -> None:
    status, body = await reverse(urls, "https://example.org/*", ENT9_ADMIN)
    assert status == 200
    assert body == ["88.118.9/R4"]


async def test_reverse_lookup_node_admin_sees_both_enterprises(urls: Server) -> None:
    status, body = await reverse(urls, "https://example.org/a", NODE_ADMIN)
    assert status == 200
    assert sorted(body) == ["88.118.8/R1", "88.118.9/R4"]


async def test_reverse_lookup_without_auth(urls: Server) -> None:
    async with urls.session.get(
        urls.url + "/hrls/handles/", params={"URL": "https://example.org/*"}
    ) as r:
        assert r.status == 401
        body = await r.json()
        assert_two_challenges(r.headers)
    assert body["responseCode"] == 402


@pytest.mark.parametrize("query", ["", "?URL="])
async def test_reverse_lookup_without_pattern(urls: Server, query: str) -> None:
    status, body = await fetch(urls, "/hrls/handles/" + query, ENT8_ADMIN)
    assert status == 400
    assert body["responseCode"] == 4
    assert body["message"]


# ------------------------------------------------------------------ proxy-style resolution


@pytest.fixture
async def proxied(server: Server) -> Server:
    await put(
        server,
        "88.118.8/P",
        [
            {"index": 1, "type": "DESC", "data": "a <described> thing"},
            {"index": 2, "type": "URL", "data": "https://example.org/p?a=1&b=2", "ttl": 3600},
            {"index": 3, "type": "URL", "data": "https://example.org/second"},
        ],
    )
    await put(server, "88.118.8/NOURL", desc("only a description"))
    return server


@pytest.mark.parametrize("accept", [None, "application/json"])
async def test_proxy_redirects_to_the_first_url(proxied: Server, accept: str | None) -> None:
    headers = {"Accept": accept} if accept else {}
    async with proxied.session.get(
        proxied.url + "/88.118.8/P", headers=headers, allow_redirects=False
    ) as r:
        assert r.status == 302
        assert r.headers["Location"] == "https://example.org/p?a=1&b=2"
        assert r.headers["Content-Type"].startswith("text/html")
        expires = parsedate_to_datetime(r.headers["Expires"]).timestamp()
        text = await r.text()
    assert abs(expires - (time.time() + 3600)) < 120
    assert '<a href="https://example.org/p?a=1&amp;b=2">' in text


async def test_proxy_lookup_ignores_case(proxied: Server) -> None:
    async with proxied.session.get(proxied.url + "/88.118.8/p", allow_redirects=False) as r:
        assert r.status == 302
        assert r.headers["Location"] == "https://example.org/p?a=1&b=2"


async def test_proxy_skips_a_non_public_url(server: Server) -> None:
    await put(
        server,
        "88.118.8/HIDDEN",
        [
            {
                "index": 1,
                "type": "URL",
                "data": "https://example.org/secret",
                "permissions": "1100",
            },
            {"index": 2, "type": "URL", "data": "https://example.org/public"},
        ],
    )
    async with server.session.get(server.url + "/88.118.8/HIDDEN", allow_redirects=False) as r:
        assert r.status == 302
        assert r.headers["Location"] == "https://example.org/public"
        assert "secret" not in await r.text()


async def test_proxy_noredirect_shows_the_values(proxied: Server) -> None:
    async with proxied.session.get(proxied.url + "/88.118.8/P?noredirect") as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == HTML_TYPE
        text = await r.text()
    assert "<table" in text
    assert "a &lt;described&gt; thing" in text
    assert "https://example.org/second" in text
    assert "DESC" in text
    assert "<described>" not in text


async def test_proxy_noredirect_as_json(proxied: Server) -> None:
    async with proxied.session.get(
        proxied.url + "/88.118.8/P?noredirect", headers={"Accept": "application/json"}
    ) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("application/json")
        body = await r.json()
    assert body["responseCode"] == 1
    assert body["handle"] == "88.118.8/P"
    assert [v["index"] for v in client_view(body["values"], "88.118.8/P")] == [1, 2, 3]
    assert_signed(body["values"], "88.118.8/P")


async def test_proxy_unknown_handle(server: Server) -> None:
    async with server.session.get(server.url + "/88.118.8/NOPE", allow_redirects=False) as r:
        assert r.status == 404
        assert r.headers["Content-Type"].startswith("text/html")
        assert "Not Found" in await r.text()


async def test_proxy_record_without_url(proxied: Server) -> None:
    async with proxied.session.get(proxied.url + "/88.118.8/NOURL", allow_redirects=False) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == HTML_TYPE
        text = await r.text()
    assert "only a description" in text
    assert "<table" in text


async def test_landing_page(server: Server) -> None:
    async with server.session.get(server.url + "/") as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == HTML_TYPE
        text = await r.text()
    assert "<form" in text
    assert 'action="/resolve"' in text
    assert 'name="handle"' in text


async def test_resolve_form_redirects(server: Server) -> None:
    async with server.session.get(
        server.url + "/resolve", params={"handle": "88.118.8/X"}, allow_redirects=False
    ) as r:
        assert r.status == 302
        assert r.headers["Location"] == "/88.118.8/X?noredirect"


@pytest.mark.parametrize(
    "url",
    [
        "https://example.org/a\r\nSet-Cookie: stolen=1",
        "https://example.org/a\nb",
        "https://example.org/a\x00b",
        "https://example.org/a\tb",
        "https://example.org/a b",
        "https://example.org/\u202etxt.exe",
        "javascript:alert(document.cookie)",
        "JavaScript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "//evil.example/",
        "/local/path",
        "evil.example",
        "https:///evil.example",
        "https:evil.example",
        "https://",
        "https://example.org:port/",
        "https://example.org\\@evil.example/",
        "ftp://example.org/file",
    ],
)
async def test_proxy_redirects_only_to_absolute_http_urls(server: Server, url: str) -> None:
    """Anything else is shown on the values page (as the API shows it: base64 when it is
    not text), escaped and not linked."""
    await put(server, "88.118.8/BAD", [{"index": 1, "type": "URL", "data": url}])
    async with server.session.get(server.url + "/88.118.8/BAD", allow_redirects=False) as r:
        assert r.status == 200
        assert "Location" not in r.headers
        assert r.headers["Content-Type"] == HTML_TYPE
        text = await r.text()
    assert html.escape(data_to_json("URL", url.encode())["value"]) in text
    # The page links only within this site (the landing page, the JSON), never to the value.
    links = re.findall(r'<a [^>]*href="([^"]*)"', text)
    assert links and all(link.startswith("/") and not link.startswith("//") for link in links)


async def test_proxy_redirects_to_the_first_url_it_can(server: Server) -> None:
    await put(
        server,
        "88.118.8/MIXED",
        [
            {"index": 1, "type": "URL", "data": "javascript:alert(1)"},
            {"index": 2, "type": "URL", "data": "https://example.org/fine"},
        ],
    )
    async with server.session.get(server.url + "/88.118.8/MIXED", allow_redirects=False) as r:
        assert r.status == 302
        assert r.headers["Location"] == "https://example.org/fine"


async def test_redirect_schemes_are_configurable(tmp_path: Path) -> None:
    values = [
        {"index": 1, "type": "URL", "data": "http://example.org/plain"},
        {"index": 2, "type": "URL", "data": "ftp://example.org/file"},
    ]
    async with (
        in_process(tmp_path / "node", redirect_schemes=("ftp", "https")) as port,
        aiohttp.ClientSession() as session,
    ):
        url = f"http://127.0.0.1:{port}"
        async with session.put(
            f"{url}/api/handles/88.118.8/FTP", json={"values": values}, headers=ENT8_ADMIN
        ) as r:
            assert r.status == 201
        async with session.get(f"{url}/88.118.8/FTP", allow_redirects=False) as r:
            assert r.status == 302
            assert r.headers["Location"] == "ftp://example.org/file"  # not http: not allowed


@pytest.mark.parametrize(
    "typed",
    [
        "/evil.example",
        "//evil.example",
        "///evil.example",
        "\\\\evil.example",
        "/\\evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "%2F%2Fevil.example",
        "88.118.8/X\r\nSet-Cookie: a=1",
        "88.118.8/X?y#z",
    ],
)
async def test_resolve_form_stays_on_the_site(server: Server, typed: str) -> None:
    """Whatever is typed, the form leads to this site's proxy page for exactly that."""
    async with server.session.get(
        server.url + "/resolve", params={"handle": typed}, allow_redirects=False
    ) as r:
        assert r.status == 302
        location = r.headers["Location"]
    assert location.startswith("/") and location[1] not in "/\\", location
    target = yarl.URL(server.url).join(yarl.URL(location, encoded=True))
    assert target.origin() == yarl.URL(server.url).origin()
    assert location.endswith("?noredirect")
    async with server.session.get(target, allow_redirects=False) as r:
        assert r.headers["Content-Type"] == HTML_TYPE
        assert html.escape(typed) in await r.text()  # the page of what was typed


# ------------------------------------------------------------------ plain_credentials = never


@pytest.fixture
async def strict(tmp_path: Path) -> AsyncIterator[Server]:
    data = tmp_path / "strict"
    await init_node(data, plain_credentials="never")
    config = load(data)
    assert config.plain_credentials == "never"
    node = await Node.open(config)
    test_server = TestServer(make_app(config, node), port=0)
    await test_server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            url = str(test_server.make_url("")).rstrip("/")
            yield Server(url, session, node, data)
    finally:
        await test_server.close()
        await node.close()


@pytest.mark.parametrize("headers", [ENT8_ADMIN, WRONG], ids=["right", "wrong"])
async def test_never_refuses_credentials_on_writes(strict: Server, headers: dict[str, str]) -> None:
    handle = "88.118.8/T-HTTP"
    async with strict.session.put(
        strict.api(handle), json=desc("x"), headers={**headers, **JSON}
    ) as r:
        assert r.status == 403
        body = await r.json()
        assert "WWW-Authenticate" not in r.headers
    assert body["responseCode"] == 402
    assert body["handle"] == handle
    status, body = await fetch(strict, f"/api/handles/{handle}")
    assert status == 404
    assert body == {"responseCode": 100, "handle": handle}


async def test_never_runs_reads_as_anonymous(strict: Server) -> None:
    status, body = await fetch(strict, "/api/handles/0.NA/88.118.8", ENT8_ADMIN)
    assert status == 200
    assert [v["index"] for v in client_view(body["values"], PREFIX8)] == [100]
    assert_signed(body["values"], PREFIX8)
    status, body = await fetch(strict, "/api/handles/0.NA/88.118.8?type=HS_SECKEY", ENT8_ADMIN)
    assert status == 200
    assert body == {"responseCode": 200, "values": [], "handle": PREFIX8}
    status, body = await fetch(strict, "/api/handles/0.NA/88.118.8", WRONG)
    assert status == 200
    assert body["responseCode"] == 1


async def test_never_refuses_listing(strict: Server) -> None:
    status, body = await fetch(strict, "/api/handles?prefix=88.118.8", ENT8_ADMIN)
    assert status == 403
    assert body["responseCode"] == 402
    assert body["handle"] == "88.118.8"


# ------------------------------------------------------------------ throttling


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def read_secret(server: Server, headers: dict[str, str]) -> tuple[int, Any, Any]:
    async with server.session.get(server.api(PREFIX8) + "?type=HS_SECKEY", headers=headers) as r:
        text = await r.text()
        return r.status, (await r.json() if text else None), r.headers


async def test_throttle_after_five_failures(server: Server) -> None:
    clock = Clock()
    server.node.throttle = FailureThrottle(clock=clock)
    for _ in range(5):
        status, _, _ = await read_secret(server, WRONG)
        assert status == 401
    status, body, headers = await read_secret(server, ENT8_ADMIN)
    assert status == 429
    assert body["responseCode"] == 3
    assert body["message"]
    assert body["handle"] == PREFIX8
    retry = int(headers["Retry-After"])
    assert retry >= 1
    status, body, _ = await read_secret(server, WRONG)
    assert status == 429
    assert body["responseCode"] == 3
    clock.now += retry
    status, body, _ = await read_secret(server, ENT8_ADMIN)
    assert status == 200
    assert body["values"][0]["data"]["value"] == "ent8-secret"


async def test_success_resets_the_failure_count(server: Server) -> None:
    server.node.throttle = FailureThrottle(clock=Clock())
    for _ in range(2):
        for _ in range(4):
            status, _, _ = await read_secret(server, WRONG)
            assert status == 401
        status, body, _ = await read_secret(server, ENT8_ADMIN)
        assert status == 200
        assert body["responseCode"] == 1


GUESS_NODE = {"Authorization": basic("300:0.NA/88.118", "a-guess")}


async def test_a_known_login_does_not_reset_guesses_at_another_identity(server: Server) -> None:
    server.node.throttle = FailureThrottle(clock=Clock())
    for _ in range(5):
        status, _, _ = await read_secret(server, GUESS_NODE)
        assert status == 401
        status, _, _ = await read_secret(server, ENT8_ADMIN)  # a login the guesser knows
        assert status == 200
    status, body, _ = await read_secret(server, GUESS_NODE)
    assert status == 429
    assert body["responseCode"] == 3
    status, _, _ = await read_secret(server, ENT8_ADMIN)  # its own login is not held up
    assert status == 200


async def read_secret_from(server: Server, address: str, headers: dict[str, str]) -> int:
    """The status of reading 0.NA/88.118.8's secret from the loopback ``address``."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(server.api(PREFIX8) + "?type=HS_SECKEY", headers=headers) as r,
    ):
        return r.status


async def test_guesses_from_many_addresses_at_one_identity_are_throttled(server: Server) -> None:
    clock = Clock()
    server.node.throttle = FailureThrottle(clock=clock)
    for n in range(20):  # one guess from each address, the handle's free failures
        assert await read_secret_from(server, f"127.0.0.{n + 2}", GUESS_NODE) == 401
    assert await read_secret_from(server, "127.0.0.200", GUESS_NODE) == 429
    # The identity is held up for everyone (its owner too) until the delay has passed...
    assert await read_secret_from(server, "127.0.0.201", NODE_ADMIN) == 429
    assert await read_secret_from(server, "127.0.0.202", ENT8_ADMIN) == 200  # ...others not
    clock.now += 1.0
    assert await read_secret_from(server, "127.0.0.201", NODE_ADMIN) == 200


# ------------------------------------------------------------------ no tracebacks


async def test_internal_error_shows_no_traceback(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(query: Any) -> Any:
        raise RuntimeError("boom: internal detail")

    monkeypatch.setattr(server.node.resolver, "resolve", broken)
    async with server.session.get(server.api("88.118.8/X")) as r:
        assert r.status == 500
        assert r.headers["Content-Type"].startswith("application/json")
        text = await r.text()
        body = await r.json()
    assert "Traceback" not in text
    assert "boom" not in text
    assert body["responseCode"] == 2
    assert body["handle"] == "88.118.8/X"
    assert body["message"]


KEY_WITHOUT_MODULUS = orjson.dumps(
    [{"index": 1, "type": "HS_PUBKEY", "data": {"format": "key", "value": {"kty": "RSA"}}}]
)
SITE_WITHOUT_ADDRESS = orjson.dumps(
    [{"index": 1, "type": "HS_SITE", "data": {"format": "site", "value": {"servers": [{}]}}}]
)


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("PUT", "/api/handles/88.118.8/T", b'{"values":[{"index":1,'),
        ("PUT", "/api/handles/88.118.8/T", b'[{"index":"x","type":"URL","data":"y"}]'),
        ("PUT", "/api/handles/88.118.8/T", b'[{"index":1,"type":"URL","data":{"format":7}}]'),
        ("PUT", "/api/handles/88.118.8/T", b'{"values":[null]}'),
        ("PUT", "/api/handles/88.118.8/T", b'[{"index":1,"type":["URL"],"data":"y"}]'),
        ("PUT", "/api/handles/88.118.8/T", b'[{"index":1,"type":"URL","data":"y","ttl":"z"}]'),
        ("PUT", "/api/handles/88.118.8/T", b'[{"index":1e400,"type":"URL","data":"y"}]'),
        ("PUT", "/api/handles/88.118.8/T", b'[{"index":99999999999,"type":"URL","data":"y"}]'),
        ("PUT", "/api/handles/88.118.8/T", KEY_WITHOUT_MODULUS),
        ("PUT", "/api/handles/88.118.8/T", SITE_WITHOUT_ADDRESS),
        ("GET", "/api/handles/88.118.8/T?index=1.5", b""),
        ("GET", "/hrls/handles/?URL=x&limit=abc", b""),
        ("DELETE", "/api/handles/88.118.8/%FF", b""),
    ],
)  # fmt: skip
async def test_error_bodies_carry_no_traceback(
    server: Server, method: str, path: str, data: bytes
) -> None:
    url = yarl.URL(server.url + path, encoded=True)
    async with server.session.request(
        method, url, data=data or None, headers={**ENT8_ADMIN, **JSON}
    ) as r:
        text = await r.text()
        assert r.status in (400, 413), text
        body = await r.json()
    assert "Traceback" not in text
    assert 'File "' not in text
    assert body["responseCode"] in (4, 102, 202)
    assert body["message"]


async def test_list_everything_streams_across_chunks(server: Server) -> None:
    """An unpaged listing bigger than one store chunk (10,000) comes back whole and in order."""
    names = [f"88.118.8/S{i:05d}" for i in range(10_005)]
    items = [(parse(n), [Value(1, "DESC", b"x")]) for n in names]
    await server.node.registry.import_records(items)
    status, body = await fetch(server, LIST8, ENT8_ADMIN)
    assert status == 200
    assert body["totalCount"] == str(len(names))
    assert body["handles"] == names
