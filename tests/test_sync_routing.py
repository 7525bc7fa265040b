"""Cross-node routing (its pure parts, and a top-level that does not answer) and the sync
configuration."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from registry.errors import ServerError
from registry.model.identifiers import parse
from registry.model.site import site_to_bytes
from registry.model.values import Value
from resolver.config import Config, ConfigError, load
from resolver.forward.base import parse_hops
from resolver.forward.remote import Remote, candidate_prefixes, min_ttl, site_url
from sync.protocol import (
    ProtocolError,
    check_batch,
    check_item,
    check_signature,
    parse_auth,
    sign_request,
)
from tests.conftest import free_port, init_node


def site(obj: dict[str, object], ttl: int = 3600) -> Value:
    return Value(1, "HS_SITE", site_to_bytes(obj), ttl=ttl)


def server(address: str, protocol: str, port: int) -> dict[str, object]:
    iface = {"query": True, "admin": False, "protocol": protocol, "port": port}
    return {
        "serverId": 1,
        "address": address,
        "publicKey": {"format": "base64", "value": ""},
        "interfaces": [iface],
    }


def test_candidate_prefixes_most_specific_first() -> None:
    assert candidate_prefixes("88.118.8") == ["88.118.8", "88.118", "88"]
    assert candidate_prefixes("88") == ["88"]


def test_site_url_prefers_the_http_attribute_then_the_http_interface() -> None:
    with_attr = site(
        {
            "attributes": [{"name": "http", "value": "https://node.example/base/"}],
            "servers": [server("10.0.0.1", "HTTP", 8000)],
        }
    )
    assert site_url([with_attr]) == "https://node.example/base"
    assert site_url([site({"servers": [server("10.0.0.1", "HTTP", 8000)]})]) == (
        "http://10.0.0.1:8000"
    )
    assert site_url([site({"servers": [server("2001:db8::1", "HTTPS", 443)]})]) == (
        "https://[2001:db8::1]:443"
    )
    assert site_url([site({"servers": [server("10.0.0.1", "TCP", 2641)]})]) is None
    assert site_url([Value(1, "URL", b"http://x")]) is None


def test_ttls_and_hop_headers() -> None:
    assert min_ttl([site({}, 120), site({}, 60)], 3600) == 60
    assert min_ttl([site({}, 86400)], 3600) == 3600
    assert parse_hops({"X-Idnode-Hops": "3", "X-Idnode-Via": "a,b"}) == (3, ("a", "b"))
    assert parse_hops({"X-Idnode-Hops": "lots"}) == (0, ())


def test_request_signatures_cover_method_path_body_and_nonce() -> None:
    from registry.signing.keys import SigningKey

    key, other = SigningKey.generate(), SigningKey.generate()
    header = sign_request(key, "app-1", "POST", "/intake/v1/batches", b"{}", 1000, "n" * 16)
    auth = parse_auth(header)
    assert (auth.app, auth.ts, auth.nonce) == ("app-1", 1000, "n" * 16)
    jwk = key.public_jwk()
    assert check_signature(auth, jwk, "EdDSA", "POST", "/intake/v1/batches", b"{}")
    assert not check_signature(auth, jwk, "EdDSA", "POST", "/intake/v1/batches", b"{ }")
    assert not check_signature(auth, jwk, "EdDSA", "POST", "/intake/v1/heartbeat", b"{}")
    assert not check_signature(
        auth, other.public_jwk(), "EdDSA", "POST", "/intake/v1/batches", b"{}"
    )
    for bad in (
        None,
        "Basic abc",
        'IDNODE-SIG app="a"',
        'IDNODE-SIG app="a", ts="x", nonce="n", sig="s"',
    ):
        with pytest.raises(ProtocolError):
            parse_auth(bad)


def test_batch_and_item_shapes() -> None:
    good = {"id": "a:1", "kind": "prefix", "op": "create", "prefix": "88.118.8"}
    assert check_item(good) is good
    for bad in (
        {**good, "id": ""},
        {**good, "kind": "handle"},
        {**good, "op": "rename"},
        {**good, "prefix": "88/1"},
        {"id": "a:2", "kind": "stats", "prefix": "88.118.8", "start": 0, "seconds": 0},
    ):
        with pytest.raises(ProtocolError):
            check_item(bad)
    with pytest.raises(ProtocolError):
        check_batch({"items": [good] * 101})
    with pytest.raises(ProtocolError):
        check_batch({"items": []})


async def test_sync_configuration(tmp_path: Path) -> None:
    data = tmp_path / "node"
    await init_node(data)
    config = load(data, env={"IDNODE_RECURSION": "off", "IDNODE_STATS_INTERVAL": "60"})
    assert (config.recursion, config.stats_interval) == (False, 60)
    assert Config(data, http="0.0.0.0:8000").base_url == "http://127.0.0.1:8000"
    assert Config(data, public_url="https://n.example/").base_url == "https://n.example"
    for env in (
        {"IDNODE_RECURSION": "maybe"},
        {"IDNODE_PUBLIC_URL": "ftp://x"},
        {"IDNODE_SYNC_POLL": "0"},
    ):
        with pytest.raises(ConfigError):
            load(data, env=env)


async def test_a_toplevel_that_does_not_answer_is_a_502_naming_what_was_asked() -> None:
    """No socket listens at the top-level's address: finding a foreign prefix's home fails
    as a bad gateway for our client, not as a traceback or a 'not found'."""
    async with aiohttp.ClientSession() as session:
        remote = Remote(
            session, f"http://127.0.0.1:{free_port()}", [], node_id="test", max_ttl=60.0
        )
        with pytest.raises(ServerError) as caught:
            await remote.fetch(parse("99.1/x"), 0, ())
    assert caught.value.status == 502
    assert "0.NA/99.1" in caught.value.message
