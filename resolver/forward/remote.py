"""The forwarder: find the node responsible for a foreign prefix through the top-level
node's prefix records, then forward the query (recursion) or refer the client.

- ``home(prefix)`` looks up ``0.NA/<prefix>`` at the top-level, then its parents
  (``88.118.8`` → ``88.118`` → ``88``), and reads the responsible node's base URL from the
  HS_SITE value. Routing records are verified (signed by the top-level root) and cached for
  their TTL; absent ones for :data:`NEGATIVE_TTL`.
- A forwarded query asks the responsible node for the whole record, verifies it offline up
  to the top-level root (certificates fetched through the same routing), caches it for its
  TTL only when verified, and filters it here — so ``?type=URL`` answers are verified too.
- Forwarding adds a hop and this node's id to ``X-Idnode-Hops``/``X-Idnode-Via``: more hops
  than the limit, or a query that comes back here, is refused with responseCode 6.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from registry.errors import (
    BAD_GATEWAY,
    RC_ERROR,
    RC_HANDLE_NOT_FOUND,
    RC_SUCCESS,
    RC_VALUES_NOT_FOUND,
    HandleError,
    HandleNotFound,
    NotResponsible,
    RecursionTooHigh,
    RemoteError,
    ServerError,
)
from registry.model.identifiers import NA_PREFIX, Identifier, parse, served_prefix
from registry.model.site import PROTOCOL_NAMES, site_from_bytes
from registry.model.values import Value, type_key
from registry.signing.verify import verify_record
from resolver.forward.base import HOPS_HEADER, VIA_HEADER, Fetched, Home
from resolver.forward.peer import FetchError, fetch_values, get_json, values_of
from resolver.forward.ttl import TtlCache

if TYPE_CHECKING:
    import aiohttp

TOPLEVEL_PREFIX = "0.0"  # handles the top-level serves itself (its root: 0.0/0.0)
NEGATIVE_TTL = 60.0
CERT_TTL = 300.0  # certificates and keys fetched while verifying
MIN_TTL = 1.0


def candidate_prefixes(prefix: str) -> list[str]:
    """``88.118.8`` → ``[88.118.8, 88.118, 88]``: most specific first."""
    parts = prefix.split(".")
    return [".".join(parts[:n]) for n in range(len(parts), 0, -1)]


def site_url(values: Sequence[Value]) -> str | None:
    """The HTTP base URL an HS_SITE value names: its ``http`` attribute, else the first
    server's address and HTTP(S) interface."""
    for v in values:
        if type_key(v.type) != "HS_SITE":
            continue
        try:
            site = site_from_bytes(v.data)
        except HandleError:
            continue
        for attr in site.get("attributes", []):
            if attr.get("name") == "http" and str(attr.get("value", "")).startswith("http"):
                return str(attr["value"]).rstrip("/")
        for server in site.get("servers", []):
            for iface in server.get("interfaces", []):
                proto = iface.get("protocol")
                if proto in (PROTOCOL_NAMES[2], PROTOCOL_NAMES[3]):
                    scheme = "https" if proto == PROTOCOL_NAMES[3] else "http"
                    host = server["address"]
                    host = f"[{host}]" if ":" in host else host
                    return f"{scheme}://{host}:{iface['port']}"
    return None


def min_ttl(values: Sequence[Value], cap: float) -> float:
    ttls = [v.ttl for v in values if isinstance(v.ttl, int) and v.ttl > 0]
    return max(MIN_TTL, min([cap, *ttls]))


class Remote:
    """A :class:`resolver.forward.base.Forwarder` over HTTP: resolves handles of prefixes
    this node is not home for, through ``toplevel``'s routing records."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        toplevel: str,
        trust_roots: Sequence[Mapping[str, Any]],
        *,
        node_id: str,
        recursion: bool = True,
        max_hops: int = 4,
        max_ttl: float = 3600.0,
        entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.session = session
        self.toplevel = toplevel.rstrip("/")
        self.trust_roots = list(trust_roots)
        self.node_id = node_id
        self.recursion = recursion
        self.max_hops = max_hops
        self.max_ttl = max_ttl
        self._wall = wall
        self._homes = TtlCache(entries, clock)
        self._answers = TtlCache(entries, clock)
        self._certs = TtlCache(1000, clock)

    # -- HTTP ------------------------------------------------------------------------------

    async def _raw_fetch(self, base: str, handle: str) -> tuple[Value, ...] | None:
        with _unanswered():
            return await fetch_values(self.session, base, handle)

    # -- routing ---------------------------------------------------------------------------

    async def home(self, prefix: str) -> Home | None:
        """The node serving ``prefix`` (or its nearest parent with a record), or None."""
        for candidate in candidate_prefixes(prefix):
            key = candidate.upper()
            hit, home = self._homes.get(key)
            if not hit:
                home, ttl = await self._lookup(candidate)
                self._homes.put(key, home, ttl)
            if home is not None:
                return home  # type: ignore[no-any-return]
        return None

    async def _lookup(self, prefix: str) -> tuple[Home | None, float]:
        handle = f"{NA_PREFIX}/{prefix}"
        values = await self._raw_fetch(self.toplevel, handle)
        if values is None:
            return None, NEGATIVE_TTL
        # The top-level's records are checked with certificates from the top-level alone:
        # routing must not depend on routing.
        report = await verify_record(
            handle,
            values,
            fetch=self._toplevel_fetch,
            trust_roots=self.trust_roots,
            now=int(self._wall()),
        )
        url = site_url(values)
        if not report.ok or url is None:
            # Not trusted or unusable: routing by it would let anyone redirect clients.
            return None, NEGATIVE_TTL
        site = tuple(v for v in values if type_key(v.type) == "HS_SITE")
        return Home(prefix, url, site), min_ttl(site, self.max_ttl)

    async def base_for(self, ident: Identifier) -> tuple[str, Home | None]:
        """Where ``ident`` lives: the top-level itself for ``0.0/...``, else its home."""
        if ident.prefix_key == TOPLEVEL_PREFIX:
            return self.toplevel, None
        home = await self.home(served_prefix(ident))
        if home is None:
            raise NotResponsible()
        return home.url, home

    async def _toplevel_fetch(self, handle: str) -> Sequence[Value] | None:
        key = "TOP " + handle.upper()
        hit, values = self._certs.get(key)
        if not hit:
            values = await self._raw_fetch(self.toplevel, handle)
            self._certs.put(key, values, CERT_TTL)
        return values  # type: ignore[no-any-return]

    async def cert_fetch(self, handle: str) -> Sequence[Value] | None:
        """Fetch a record named by a signature chain (no verification: the chain checks the
        certificates themselves)."""
        key = handle.upper()
        hit, values = self._certs.get(key)
        if hit:
            return values  # type: ignore[no-any-return]
        ident = parse(handle)
        base = (
            self.toplevel
            if ident.prefix_key == TOPLEVEL_PREFIX or ident.text.upper().startswith("0.NA/0.")
            else (await self.base_for(ident))[0]
        )
        values = await self._raw_fetch(base, handle)
        self._certs.put(key, values, CERT_TTL)
        return values

    # -- resolution ------------------------------------------------------------------------

    async def fetch(
        self,
        ident: Identifier,
        hops: int,
        via: Sequence[str],
        bypass: bool = False,
        *,
        recursion: bool = True,
    ) -> Fetched | Home:
        """The whole record of ``ident`` from its node, verified (or the Home to refer to
        when recursion is off, in the configuration or by the client's ``recursion``).
        ``bypass``: ask the node even if a verified copy is cached (``auth=true``)."""
        base, home = await self.base_for(ident)
        if not (self.recursion and recursion) and home is not None:
            return home
        hit, cached = (False, None) if bypass else self._answers.get(ident.key)
        if hit:
            if cached is None:
                raise HandleNotFound()
            return cached  # type: ignore[no-any-return]
        if self.node_id in via:
            raise RecursionTooHigh(f"Resolution loop: the query for {ident.text} came back")
        if hops + 1 > self.max_hops:
            raise RecursionTooHigh(f"More than {self.max_hops} hops to resolve {ident.text}")
        headers = {HOPS_HEADER: str(hops + 1), VIA_HEADER: ",".join([*via, self.node_id])}
        with _unanswered():
            status, body = await get_json(self.session, base, ident.text, headers)
        code = body.get("responseCode")
        if status == 404 or code == RC_HANDLE_NOT_FOUND:
            self._answers.put(ident.key, None, NEGATIVE_TTL)
            raise HandleNotFound()
        if status != 200 or code not in (RC_SUCCESS, RC_VALUES_NOT_FOUND):
            if not 400 <= status < 600:  # no answer of the API's: the other node failed
                raise ServerError(
                    f"{base} answered HTTP {status} for {ident.text}"[:300], outcome=BAD_GATEWAY
                )
            message = body.get("message")
            raise RemoteError(
                code if isinstance(code, int) else RC_ERROR,
                message if isinstance(message, str) else None,
            )
        with _unanswered():
            values = values_of(body, ident.text)
        report = await verify_record(
            ident.text,
            values,
            fetch=self.cert_fetch,
            trust_roots=self.trust_roots,
            now=int(self._wall()),
        )
        result = Fetched(values, report.ok, None if report.ok else "; ".join(report.reasons))
        if report.ok:  # only verified answers are kept
            self._answers.put(ident.key, result, min_ttl(values, self.max_ttl))
        return result


@contextmanager
def _unanswered() -> Iterator[None]:
    """Another node that did not answer, or answered no record: a 502 for our client."""
    try:
        yield
    except FetchError as exc:
        raise ServerError(str(exc), outcome=BAD_GATEWAY) from None
