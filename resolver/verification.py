"""Verifying a record as a client does: fetch it (over HTTP, or from a local node), then
check it offline with :func:`registry.signing.verify.verify_record`.

    report = await verify_handle("88.118.8/X", server="https://node.example",
                                 trust_roots=[load_trust_root(Path("root.jwk"))])
    report.ok, report.values, report.reasons
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import serialization

from registry.errors import HandleError
from registry.model.identifiers import parse
from registry.model.values import Value
from registry.signing.keys import JwkError, public_jwk_of
from registry.signing.verify import Report, verify_record
from resolver.core import Query
from resolver.forward.peer import FetchError, fetch_values
from resolver.node import Node

Fetch = Callable[[str], Awaitable[Sequence[Value] | None]]


class VerifyError(Exception):
    """The record or a certificate could not be fetched, or a trust root is unusable."""


def load_trust_root(path: Path) -> dict[str, Any]:
    """A trust root from a JWK (JSON) or a PEM public key file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise VerifyError(f"{path}: {exc.strerror}") from None
    try:
        if raw.lstrip().startswith(b"{"):
            jwk = json.loads(raw)
            if not isinstance(jwk, dict) or "kty" not in jwk:
                raise VerifyError(f"{path}: not a JWK")
            return jwk
        return public_jwk_of(serialization.load_pem_public_key(raw))
    except JwkError:
        raise VerifyError("unsupported trust root key type") from None
    except (ValueError, json.JSONDecodeError) as exc:
        raise VerifyError(f"{path}: not a JWK or PEM public key ({exc})") from None


def http_fetch(session: aiohttp.ClientSession, server: str) -> Fetch:
    base = server.rstrip("/")

    async def fetch(handle: str) -> Sequence[Value] | None:
        try:
            return await fetch_values(session, base, handle)
        except FetchError as exc:
            raise VerifyError(str(exc)) from None

    return fetch


def local_fetch(node: Node) -> Fetch:
    async def fetch(handle: str) -> Sequence[Value] | None:
        try:
            return (await node.resolver.resolve(Query(handle))).values
        except HandleError:
            return None

    return fetch


def homed_or(node: Node, local: Fetch, elsewhere: Fetch) -> Fetch:
    """Fetch handles ``node`` is home for locally, any other from ``elsewhere``."""

    async def fetch(handle: str) -> Sequence[Value] | None:
        try:
            homed = node.registry.is_homed(parse(handle))
        except HandleError:
            return None
        return await (local if homed else elsewhere)(handle)

    return fetch


async def verify_with(
    fetch: Fetch, handle: str, trust_roots: Sequence[Mapping[str, Any]], now: int | None = None
) -> Report:
    values = await fetch(handle)
    if values is None:
        raise VerifyError(f"{handle} not found")
    return await verify_record(
        handle,
        values,
        fetch=fetch,
        trust_roots=trust_roots,
        now=int(time.time()) if now is None else now,
    )


async def verify_handle(
    handle: str, *, server: str, trust_roots: Sequence[Mapping[str, Any]]
) -> Report:
    """Resolve ``handle`` at ``server`` and verify it (and its chain) offline."""
    async with aiohttp.ClientSession() as session:
        return await verify_with(http_fetch(session, server), handle, trust_roots)


@dataclass(frozen=True, slots=True)
class SignatureStatus:
    """A record's signature as a person reads it: ``verified`` (by ``signer``, up to a
    trusted root), ``unsigned`` (no signature at all) or ``failed`` (``reasons``)."""

    state: str
    signer: str = ""
    expires: int | None = None
    reasons: tuple[str, ...] = ()


def status_of(report: Report) -> SignatureStatus:
    """The person's view of ``report``: verified only when every public value is."""
    if not report.signatures:
        return SignatureStatus("unsigned")
    if report.ok:
        best = next(s for s in report.signatures if s.trusted)
        chain = " → ".join(best.chain) or best.issuer or "?"
        return SignatureStatus("verified", chain, best.expires)
    return SignatureStatus("failed", reasons=tuple(report.reasons) or ("not verified",))


class LocalVerifier:
    """Checks this node's records as a client would (:func:`verify_record`), from the
    node's own answers: the chain must end at the top-level root once the node forwards to
    a top-level node, else at the node's own root key (read once, off the event loop)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._root: dict[str, Any] | None = None

    async def trust_roots(self) -> list[Mapping[str, Any]]:
        upstream = self.node.forwarding.upstream
        if upstream is not None:
            return list(upstream.trust_roots)
        if self._root is None:
            keyring = self.node.keyring
            self._root = await asyncio.to_thread(lambda: keyring.key(0).public_jwk())
        return [self._root]

    async def status(self, handle: str, values: Sequence[Value]) -> SignatureStatus:
        report = await verify_record(
            handle,
            values,
            fetch=local_fetch(self.node),
            trust_roots=await self.trust_roots(),
            now=int(time.time()),
        )
        return status_of(report)
