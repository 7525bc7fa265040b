"""Registering the node with its top-level node (``idnode sync register``).

The node proves possession of its root key by signing the request with it; the top-level
answers with a certificate for that key (permissions over the node's prefixes and the prefixes
derived from them) and its own root. The node checks both before it keeps anything, then
publishes the certificate in place of its self-issued one — from then on every record's chain
ends at the top-level root — and queues a report of every enterprise prefix it already has.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from registry.model.identifiers import NA_PREFIX, handle_key, is_within
from registry.signing import jws
from registry.signing.keys import jwk_thumbprint, verify_signature
from registry.signing.payloads import CertClaims, ClaimsError, cert_claims_of, identity_key
from registry.store.base import Change, Record, Report
from resolver.config import split_hostport
from resolver.node import Node
from sync.client import IntakeClient, IntakeError
from sync.protocol import REGISTER_PATH
from sync.state import Registration, save_registration


class RegistrationError(Exception):
    """Registration failed; the message says why. Nothing was changed locally."""


def _address(url: str) -> str:
    host = urlsplit(url).hostname or ""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        return str(socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0])
    except (OSError, IndexError):
        raise RegistrationError(f"cannot resolve the host of {url}") from None


def _check_cert(
    text: Any, subject: str, jwk: Mapping[str, Any], issuer_jwk: Mapping[str, Any]
) -> CertClaims:
    """``text`` is a certificate for ``subject``'s key ``jwk``, signed with ``issuer_jwk``."""
    if not isinstance(text, str):
        raise RegistrationError("the top-level sent no certificate")
    try:
        token = jws.decode(text)
        claims = cert_claims_of(token.payload)
    except (jws.JwsError, ClaimsError) as exc:
        raise RegistrationError(f"unreadable certificate from the top-level: {exc}") from None
    if identity_key(claims.sub) != identity_key(subject):
        raise RegistrationError(f"the certificate is for {claims.sub}, not {subject}")
    if jwk_thumbprint(claims.public_key) != jwk_thumbprint(jwk):
        raise RegistrationError("the certificate certifies another key")
    if not verify_signature(issuer_jwk, token.alg, token.signing_input, token.signature):
        raise RegistrationError("the certificate's signature does not verify")
    return claims


async def register(
    node: Node, toplevel: str, app_id: str, public_url: str | None = None
) -> Registration:
    config, ring = node.config, node.keyring
    url = (public_url or config.base_url).rstrip("/")
    key = ring.key(0)
    # The native interfaces are published when the node serves the Handle protocol.
    port = split_hostport(config.native)[1] if config.native else None
    port = port or None  # port 0 (a test's free port) is nothing to publish
    body = {
        "app_id": app_id,
        "identity": ring.root_identity,
        "public_key": key.public_jwk(),
        "prefixes": list(config.prefixes),
        "site": {"http": url, "address": _address(url), "tcp_port": port, "udp_port": port},
        "name": config.name,
    }
    async with aiohttp.ClientSession() as session:
        try:
            answer = await IntakeClient(session, toplevel, app_id, key).post(REGISTER_PATH, body)
        except IntakeError as exc:
            raise RegistrationError(str(exc)) from None
    root = answer.get("root") if isinstance(answer, dict) else None
    if not isinstance(root, dict) or not isinstance(root.get("public_key"), dict):
        raise RegistrationError("the top-level sent no root key")
    root_jwk = root["public_key"]
    root_claims = _check_cert(root.get("cert"), str(root.get("identity")), root_jwk, root_jwk)
    if not root_claims.self_issued:
        raise RegistrationError("the top-level's root certificate is not self-issued")
    claims = _check_cert(answer.get("cert"), ring.root_identity, key.public_jwk(), root_jwk)
    if identity_key(claims.iss) != identity_key(root_claims.sub):
        raise RegistrationError(f"the certificate is issued by {claims.iss}, not the root")
    reg = Registration(
        toplevel=toplevel.rstrip("/"),
        app_id=app_id,
        public_url=url,
        prefixes=list(config.prefixes),
        root={"identity": root["identity"], "public_key": root_jwk, "cert": root["cert"]},
        registered_at=int(time.time()),
    )
    ring.set_root_cert(answer["cert"])
    await node.ensure_keys_published()
    await queue_prefixes(node)
    save_registration(config.data_dir, reg)
    return reg


async def queue_prefixes(node: Node) -> int:
    """Queue a ``create`` report for every enterprise prefix the node already has (the
    top-level treats a repeat as a replace, so registering again is harmless)."""
    homed = node.registry.homed_keys
    _total, handles = await node.store.list_handles(handle_key(NA_PREFIX))
    prefixes = [
        h.split("/", 1)[1]
        for h in handles
        if (k := handle_key(h.split("/", 1)[1])) not in homed
        and any(is_within(k, p) for p in homed)
    ]

    def mutate(_records: Mapping[str, Record]) -> tuple[list[Change], None]:
        return [Report(p, "prefix", {"op": "create", "prefix": p}) for p in prefixes], None

    if prefixes:
        await node.store.transact([], mutate)
    return len(prefixes)
