"""The record page, ``GET /{handle}?noredirect``, made for people: HS_ADMIN, HS_SITE,
HS_PUBKEY and signatures rendered readably, long values wrapped, and the record's signature
status — verified, unsigned, or failed, never a failed one shown as verified."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pytest

from registry.model.identifiers import handle_key
from registry.store.base import Put, Record
from tests.conftest import ENT8_ADMIN, JSON, Server


async def page(server: Server, handle: str) -> str:
    async with server.session.get(f"{server.url}/{handle}?noredirect") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/html")
        assert "Content-Security-Policy" in r.headers
        return await r.text()


async def put(server: Server, handle: str, values: list[dict[str, object]]) -> None:
    async with server.session.put(
        server.api(handle), json={"values": values}, headers={**ENT8_ADMIN, **JSON}
    ) as r:
        assert r.status in (200, 201), await r.text()


async def test_prefix_handle_shows_admin_rights_in_words_and_no_secret(server: Server) -> None:
    text = await page(server, "0.NA/88.118.8")
    assert "every right" in text and "300:0.NA/88.118.8" in text
    assert "HS_SECKEY" not in text and "ent8-secret" not in text
    assert "✔ Signature verified: signed by" in text
    assert "1 day" in text  # the default TTL, readable


async def test_node_keys_and_certificates_are_summarised(server: Server) -> None:
    text = await page(server, "0.NA/88.118")
    assert "Ed25519 (EdDSA), thumbprint" in text  # HS_PUBKEY
    assert "issuer" in text and "expires" in text  # HS_CERT claims
    assert '<code class="wrap">' in text  # the JWS itself, wrapped


async def test_site_values_show_servers_and_interfaces(server: Server) -> None:
    site = {
        "version": 1,
        "protocolVersion": "2.10",
        "serialNumber": 7,
        "primarySite": True,
        "multiPrimary": False,
        "attributes": [{"name": "desc", "value": "plant A"}],
        "servers": [
            {
                "serverId": 1,
                "address": "192.0.2.5",
                "publicKey": {"format": "base64", "value": ""},
                "interfaces": [
                    {"query": True, "admin": False, "protocol": "HTTP", "port": 8000},
                    {"query": True, "admin": True, "protocol": "TCP", "port": 2641},
                ],
            }
        ],
    }
    await put(
        server,
        "88.118.8/SITE",
        [{"index": 1, "type": "HS_SITE", "data": {"format": "site", "value": site}}],
    )
    text = await page(server, "88.118.8/SITE")
    assert "server 1 at <code>192.0.2.5</code>: HTTP 8000 (query), TCP 2641 (query+admin)" in text
    assert "primary, protocol 2.10, serial 7" in text and "desc=plant A" in text


async def test_unsigned_record_says_so(server: Server) -> None:
    signer = server.node.registry.signer
    server.node.registry.signer = None
    try:
        await put(server, "88.118.8/PLAIN", [{"index": 1, "type": "URL", "data": "no-url"}])
    finally:
        server.node.registry.signer = signer
    text = await page(server, "88.118.8/PLAIN")
    assert "Unsigned: this record carries no signature." in text
    assert "verified" not in text


@pytest.mark.parametrize("change", ["data", "drop-signature-key"])
async def test_tampered_record_fails_and_is_never_shown_verified(
    server: Server, change: str
) -> None:
    handle = "88.118.8/TAMPER"
    await put(server, handle, [{"index": 1, "type": "URL", "data": "not a url: shown"}])
    key = handle_key(handle)

    def tamper(records: Mapping[str, Record]) -> tuple[list[Put], None]:
        record = records[key]
        values = list(record.values)
        if change == "data":
            values[0] = dataclasses.replace(values[0], data=b"tampered")
        else:  # a signature whose digests no longer match anything present
            values = [
                dataclasses.replace(v, index=v.index + 1) if v.index == 1 else v for v in values
            ]
        return [Put(key, Record(record.handle, tuple(values)))], None

    await server.node.store.transact([key], tamper)
    await server.node.cache.invalidate([key])
    text = await page(server, handle)
    assert "✘ Signature check failed:" in text
    assert "Signature verified" not in text
