"""The records the top-level publishes, as Handle values: pure, no I/O.

``0.0/0.0`` holds the root: HS_PUBKEY at 300 (the root key) and HS_CERT at 301 (its
self-issued certificate, identity ``300:0.0/0.0``). ``0.NA/<prefix>`` routes a prefix to its
node: HS_SITE at 1 (one server: the node's address, key and interfaces, plus an ``http``
attribute with the node's base URL), HS_PUBKEY at 300 (the node's key) and, for the node's own
prefix, HS_CERT at 700 (the certificate issued at registration, for ``600:0.NA/<prefix>``).
Every record carries an HS_SIGNATURE by the root (``300:0.0/0.0``), whose chain ends at the
self-issued certificate in ``0.0/0.0``: clients verify routing records offline with
:func:`registry.signing.verify.verify_record`, trusting the root's JWK.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from registry.model.identifiers import prefix_handle
from registry.model.pubkey import pubkey_from_jwk
from registry.model.site import Interface, single_server_site, site_to_bytes
from registry.model.values import HS_PUBKEY, HS_SITE, Value
from registry.signing.claims import HS_CERT, Signer, issue_cert
from registry.signing.keys import SigningKey

ROOT_HANDLE = "0.0/0.0"
ROOT_IDENTITY = f"300:{ROOT_HANDLE}"
ROOT_PERMS = [("0.NA/0.NA", "everything")]
ROOT_VALIDITY = 10 * 365 * 86400
NODE_CERT_VALIDITY = 2 * 365 * 86400
# Records are signed when they are served, so a short validity is enough.
SIGNATURE_VALIDITY = 7 * 86400
DEFAULT_RECORD_TTL = 3600

SITE_INDEX = 1
PUBKEY_INDEX = 300
ROOT_CERT_INDEX = 301
NODE_CERT_INDEX = 700
NODE_KEY_INDEX = 600  # the node's root identity is 600:0.NA/<prefix>


@dataclass(frozen=True, slots=True)
class Site:
    """Where a node answers: its base URL, its address and optional native ports."""

    http: str
    address: str
    tcp_port: int | None = None
    udp_port: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "http": self.http,
            "address": self.address,
            "tcp_port": self.tcp_port,
            "udp_port": self.udp_port,
        }

    @property
    def http_port(self) -> int:
        url = urlsplit(self.http)
        return url.port or (443 if url.scheme == "https" else 80)


def node_identity(prefix: str) -> str:
    return f"{NODE_KEY_INDEX}:{prefix_handle(prefix)}"


def node_cert_perms(prefixes: Sequence[str]) -> list[tuple[str, str]]:
    """``thisHandle`` and ``derivedPrefixes`` on each prefix: the prefix handle, the
    identifiers under it, and every derived (enterprise) prefix and its identifiers."""
    perms = []
    for p in prefixes:
        perms += [(prefix_handle(p), "thisHandle"), (prefix_handle(p), "derivedPrefixes")]
    return perms


def issue_node_cert(
    root: SigningKey, identity: str, jwk: Mapping[str, Any], prefixes: Sequence[str], now: int
) -> str:
    return issue_cert(
        ROOT_IDENTITY, root, identity, jwk, node_cert_perms(prefixes), now, NODE_CERT_VALIDITY
    )


def site_json(site: Site, jwk: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The HS_SITE value's JSON form (see :mod:`registry.model.site`)."""
    http_protocol = "HTTPS" if urlsplit(site.http).scheme == "https" else "HTTP"
    interfaces = [Interface(http_protocol, site.http_port)]
    if site.tcp_port is not None:
        interfaces.append(Interface("TCP", site.tcp_port))
    if site.udp_port is not None:
        interfaces.append(Interface("UDP", site.udp_port, admin=False))
    attributes = [("http", site.http)] + ([("desc", name)] if name else [])
    return single_server_site(site.address, interfaces, attributes, public_key=jwk)


def root_values(root_jwk: Mapping[str, Any], root_cert: str, ttl: int, stamp: int) -> list[Value]:
    """``0.0/0.0``'s values before signing."""
    return [
        Value(PUBKEY_INDEX, HS_PUBKEY, pubkey_from_jwk(root_jwk), ttl=ttl, timestamp=stamp),
        Value(ROOT_CERT_INDEX, HS_CERT, root_cert.encode("utf-8"), ttl=ttl, timestamp=stamp),
    ]


def prefix_values(
    site: Site,
    jwk: Mapping[str, Any],
    name: str,
    cert: str | None,
    ttl: int,
    stamp: int,
) -> list[Value]:
    """``0.NA/<prefix>``'s values before signing; ``cert`` only for the node's own prefix."""
    site_data = site_to_bytes(site_json(site, jwk, name))
    values = [
        Value(SITE_INDEX, HS_SITE, site_data, ttl=ttl, timestamp=stamp),
        Value(PUBKEY_INDEX, HS_PUBKEY, pubkey_from_jwk(jwk), ttl=ttl, timestamp=stamp),
    ]
    if cert is not None:
        values.append(
            Value(NODE_CERT_INDEX, HS_CERT, cert.encode("utf-8"), ttl=ttl, timestamp=stamp)
        )
    return values


def signed(
    root: SigningKey, handle: str, values: Sequence[Value], ttl: int, now: int
) -> tuple[Value, ...]:
    """``values`` with the root's HS_SIGNATURE (at 400) appended, with the record's TTL."""
    out = Signer(root, ROOT_IDENTITY, SIGNATURE_VALIDITY).sign_values(handle, values, now)
    sig = out[-1]
    return (*out[:-1], Value(sig.index, sig.type, sig.data, ttl=ttl, timestamp=now))
