"""The one builder of a node's own site JSON (registry.model.site.single_server_site), as
/api/site and the top-level's prefix records publish it: member order included, since
clients see it, and (with a key) a round trip through the HS_SITE codec."""

from __future__ import annotations

from registry.model.site import Interface, single_server_site, site_from_bytes, site_to_bytes
from registry.signing.keys import SigningKey
from sync.toplevel.records import Site, site_json


def test_a_site_without_a_key_has_no_public_key_member() -> None:
    site = single_server_site(
        "127.0.0.1",
        [Interface("HTTP", 8000)],
        [("desc", "n (idnode secondary node)"), ("prefixes", "88.118")],
    )
    assert site == {
        "version": 1,
        "protocolVersion": "2.11",
        "serialNumber": 1,
        "primarySite": True,
        "multiPrimary": False,
        "attributes": [
            {"name": "desc", "value": "n (idnode secondary node)"},
            {"name": "prefixes", "value": "88.118"},
        ],
        "servers": [
            {
                "serverId": 1,
                "address": "127.0.0.1",
                "interfaces": [{"query": True, "admin": True, "protocol": "HTTP", "port": 8000}],
            }
        ],
    }
    assert list(site["servers"][0]) == ["serverId", "address", "interfaces"]


def test_a_prefix_record_site_names_the_key_and_every_interface() -> None:
    jwk = SigningKey.generate().public_jwk()
    site = site_json(Site("https://n.example:8443", "10.0.0.1", 2641, 2642), jwk, "node A")
    assert site["attributes"] == [
        {"name": "http", "value": "https://n.example:8443"},
        {"name": "desc", "value": "node A"},
    ]
    (server,) = site["servers"]
    assert list(server) == ["serverId", "address", "publicKey", "interfaces"]
    assert server["publicKey"] == {"format": "key", "value": jwk}
    assert server["interfaces"] == [
        {"query": True, "admin": True, "protocol": "HTTPS", "port": 8443},
        {"query": True, "admin": True, "protocol": "TCP", "port": 2641},
        {"query": True, "admin": False, "protocol": "UDP", "port": 2642},
    ]
    assert site_from_bytes(site_to_bytes(site)) == site
    unnamed = site_json(Site("http://n.example", "10.0.0.1"), jwk, "")
    assert unnamed["attributes"] == [{"name": "http", "value": "http://n.example"}]
    assert [i["protocol"] for i in unnamed["servers"][0]["interfaces"]] == ["HTTP"]
