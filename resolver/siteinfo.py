"""The node's site record: what get-site-info answers and what the top-level publishes as the
HS_SITE value of the node's prefix handle, so that clients find the node and verify its
certified answers.

One primary site, one server (id 1): the address of the node's public URL, its root key
(the key registration sends the top-level, and the one certified native answers are signed
with), and its interfaces: HTTP(S) at the public URL's port, then TCP and UDP at the native
port (UDP query-only). Attributes: ``http`` (the public URL) and ``desc`` (the node's name).
This is the record :func:`sync.toplevel.records.site_json` builds from the registration, field
for field (tests/test_native_server.py checks the two agree); the registration must name the
native port for the published copy to list the native interfaces too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from registry.model.site import site_to_bytes

SITE_SERIAL = 1  # also the site-info serial in every native reply's header


def site_json(
    http_url: str, address: str, name: str, jwk: Mapping[str, Any], native_port: int | None
) -> dict[str, Any]:
    """The site record's JSON form (:mod:`registry.model.site`)."""
    url = urlsplit(http_url)
    http = "HTTPS" if url.scheme == "https" else "HTTP"
    http_port = url.port or (443 if url.scheme == "https" else 80)
    interfaces = [{"query": True, "admin": True, "protocol": http, "port": http_port}]
    if native_port is not None:
        interfaces += [
            {"query": True, "admin": True, "protocol": "TCP", "port": native_port},
            {"query": True, "admin": False, "protocol": "UDP", "port": native_port},
        ]
    attributes = [{"name": "http", "value": http_url}]
    if name:
        attributes.append({"name": "desc", "value": name})
    return {
        "version": 1,
        "protocolVersion": "2.11",
        "serialNumber": SITE_SERIAL,
        "primarySite": True,
        "multiPrimary": False,
        "attributes": attributes,
        "servers": [
            {
                "serverId": 1,
                "address": address,
                "publicKey": {"format": "key", "value": dict(jwk)},
                "interfaces": interfaces,
            }
        ],
    }


def site_record(
    http_url: str, address: str, name: str, jwk: Mapping[str, Any], native_port: int | None
) -> bytes:
    """The site record's bytes (HS_SITE data, the body of a get-site-info reply)."""
    return site_to_bytes(site_json(http_url, address, name, jwk, native_port))


async def public_address(http_url: str) -> str:
    """The IP address of ``http_url``'s host (a name is looked up, without blocking the event
    loop): a site record names its server by address."""
    host = urlsplit(http_url).hostname or ""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"cannot resolve the host of {http_url}")
    return str(infos[0][4][0])
