"""Authentication: proving an identity ``index:handle`` with the secret in its HS_SECKEY (or a
MAC made with it, answering a challenge) or a signature by the key in its HS_PUBKEY, and
throttling repeated failures."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from registry.authz import Principal, group_refs
from registry.errors import AuthenticationFailed, InvalidValue, Throttled
from registry.model import admin as adm
from registry.model.identifiers import handle_key
from registry.model.values import HS_PUBKEY, HS_SECKEY, HS_VLIST, Value, type_key
from registry.proofs import SecretProof, check_proof, secret_mac
from registry.secretmac import SecretMac
from registry.secretmac import secret_mac as scheme_mac
from registry.secrets import Sealer, secrets_equal
from registry.signing.handlesig import verify_pubkey_signature
from registry.store.base import Record, Store

_DUMMY = b"\0" * 32
MAX_GROUP_DEPTH = 3


def parse_identity(text: str) -> adm.AdminRef:
    """``300:0.NA/88.118.8`` → AdminRef(300, "0.NA/88.118.8"); without ``N:`` the index is 0."""
    head, sep, rest = text.partition(":")
    if sep and head.isdigit():
        return adm.AdminRef(int(head), rest)
    return adm.AdminRef(0, text)


class Authenticator:
    """Checks secrets against the store (secrets are sealed at rest, compared in constant
    time) and resolves the HS_VLIST groups an identity belongs to."""

    def __init__(
        self,
        store: Store,
        sealer: Sealer,
        fetch: Callable[[str], Awaitable[Record | None]] | None = None,
    ) -> None:
        self._store = store
        self._sealer = sealer
        # Identity records are read through the record cache when there is one: it is exact,
        # and it keeps a store read off every authenticated request.
        self._fetch = fetch or store.get

    async def _values_of(self, identity: adm.AdminRef, vtype: str) -> list[Value]:
        """The ``vtype`` values of ``identity`` that may prove it: the one at its index, or
        every one for index 0."""
        if not identity.handle:
            return []
        record = await self._fetch(handle_key(identity.handle))
        if record is None:
            return []
        return [
            v for v in record.values if type_key(v.type) == vtype and identity.index in (0, v.index)
        ]

    def _secrets(self, values: list[Value]) -> list[tuple[int, bytes]]:
        out = []
        for v in values:
            try:
                out.append((v.index, self._sealer.unseal(v.data)))
            except Exception:  # a blob sealed under another key never matches
                continue
        return out

    async def verify_secret(self, identity: adm.AdminRef, secret: bytes) -> Principal:
        matched = 0
        stored = self._secrets(await self._values_of(identity, HS_SECKEY))
        for index, known in stored:
            if secrets_equal(known, secret) and not matched:
                matched = index
        if not stored:
            secrets_equal(_DUMMY, secret)  # keep timing independent of existence
        if not matched:
            raise AuthenticationFailed()
        # "0.NA/88.118.8" (index 0) is the identity of whichever key matched.
        return Principal(adm.AdminRef(matched, identity.handle))

    async def verify_secret_mac(
        self, identity: adm.AdminRef, proof: SecretProof, message: bytes
    ) -> Principal:
        """``identity`` if ``proof`` is the MAC over ``message`` (a challenge's nonce and
        request digest) that one of its HS_SECKEY secrets gives; the secret never leaves
        this method. PBKDF2 runs in a worker thread. ValueError for a proof whose parameters
        are not computed (:func:`registry.proofs.check_proof`: check it first)."""
        check_proof(proof)
        for index, known in self._secrets(await self._values_of(identity, HS_SECKEY)):
            expected = await asyncio.to_thread(secret_mac, known, proof, message)
            if secrets_equal(expected, proof.mac):
                return Principal(adm.AdminRef(index, identity.handle))
        raise AuthenticationFailed()

    async def verify_handle_mac(
        self, identity: adm.AdminRef, how: SecretMac, data: bytes, mac: bytes
    ) -> Principal:
        """(The HTTP ``Handle`` scheme.) The identity whose HS_SECKEY secret answers ``data``
        with ``mac`` computed as ``how`` says; PBKDF2 runs off the event loop."""
        secrets = self._secrets(await self._values_of(identity, HS_SECKEY))

        def matched() -> int:
            for index, secret in secrets:
                if hmac.compare_digest(scheme_mac(how, secret, data), mac):
                    return index
            return 0

        index = await asyncio.to_thread(matched) if how.kind == "pbkdf2" else matched()
        if not index:
            raise AuthenticationFailed()
        return Principal(adm.AdminRef(index, identity.handle))

    async def verify_signature(
        self, identity: adm.AdminRef, data: bytes, signature: bytes, alg: str
    ) -> Principal:
        """The identity whose HS_PUBKEY (the one at ``identity.index``, or with index 0 each
        in index order, as the reference tries them) verifies ``signature`` over ``data``
        under the Handle algorithm name ``alg``; AuthenticationFailed if none does."""
        for v in sorted(await self._values_of(identity, HS_PUBKEY), key=lambda v: v.index):
            try:
                good = verify_pubkey_signature(v.data, alg, data, signature)
            except (ValueError, InvalidValue):  # no key we can use, or an alg that does not fit
                continue
            if good:
                return Principal(adm.AdminRef(v.index, identity.handle))
        raise AuthenticationFailed()

    async def with_groups(self, who: Principal, records: dict[str, Record]) -> Principal:
        """``who`` with the HS_VLIST groups, named by admin values in ``records``, that
        contain it (directly or through nested groups, up to a small depth)."""
        me = (handle_key(who.identity.handle), who.identity.index)
        candidates = {(h, i) for h, i in group_refs(records) if (handle_key(h), i) != me and i != 0}
        groups: set[str] = set()
        members_of: dict[tuple[str, int], list[adm.AdminRef]] = {}
        frontier = candidates
        for _ in range(MAX_GROUP_DEPTH):
            if not frontier:
                break
            keys = sorted({handle_key(h) for h, _ in frontier})
            found = await self._store.get_many(keys)
            nxt: set[tuple[str, int]] = set()
            for h, i in frontier:
                rec = found.get(handle_key(h))
                if rec is None:
                    continue
                for v in rec.values:
                    if v.index == i and type_key(v.type) == HS_VLIST:
                        try:
                            refs = adm.decode_vlist(v.data)
                        except Exception:
                            refs = []
                        members_of[(handle_key(h), i)] = refs
                        nxt |= {(r.handle, r.index) for r in refs}
            frontier = {r for r in nxt if (handle_key(r[0]), r[1]) not in members_of}
        # A group contains me if a member is me or a group that contains me.
        changed = True
        while changed:
            changed = False
            for (gk, gi), refs in members_of.items():
                name = f"{gi}:{gk}"
                if name in groups:
                    continue
                for r in refs:
                    rk = handle_key(r.handle)
                    if (rk == me[0] and r.index in (0, me[1])) or f"{r.index}:{rk}" in groups:
                        groups.add(name)
                        changed = True
                        break
        return Principal(who.identity, frozenset(groups))


_Key = tuple[str, ...]  # ("pair", address, handle), ("identity", handle), ...
# Told of each failed attempt: (transport, address, identity named or None).
FailureHook = Callable[[str, str, adm.AdminRef | None], Awaitable[None]]


class FailureThrottle:
    """Slows down secret guessing, whichever protocol carries the attempts: it says how long
    an attempt must wait before its credentials are checked, and learns how each went.

    Failures are counted per (address, handle), per handle and per address — the handle the
    identity names, whatever its spelling or index (``0:H`` tries every secret of ``H``), and
    an IPv6 address by its /64 (one host commonly holds a whole /64). Once a counter has
    had its free failures, each further attempt it covers must wait a delay doubling with
    every failure (capped) after the last one: the per-handle counter stops guesses spread
    over many addresses, the per-address one an address trying many identities. A success
    clears only its own (address, handle) counter — knowing one secret buys no guesses at
    another — and a counter is forgotten ``forget`` seconds after its last failure. The
    counters are an LRU of at most ``max_entries``.
    """

    def __init__(
        self,
        free: int = 5,
        identity_free: int = 20,
        address_free: int = 50,
        base: float = 1.0,
        cap: float = 300.0,
        forget: float = 3600.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if forget < cap:  # else a patient guesser would be forgotten between two delays
            raise ValueError("forget must not be shorter than cap")
        self.free, self.identity_free, self.address_free = free, identity_free, address_free
        self.base, self.cap, self.forget = base, cap, forget
        self._max = max_entries
        self._clock = clock
        self._fails: OrderedDict[_Key, tuple[int, float]] = OrderedDict()
        self.on_failure: FailureHook | None = None  # e.g. the audit log's

    def _counters(self, address: str, identity: adm.AdminRef | None) -> list[tuple[_Key, int]]:
        """The counters an attempt from ``address`` as ``identity`` falls under, each with
        its free failures; ``identity`` None: credentials that named nobody."""
        source = _source(address)
        out: list[tuple[_Key, int]] = [(("address", source), self.address_free)]
        if identity is not None:
            target = handle_key(identity.handle)
            out.append((("pair", source, target), self.free))
            out.append((("identity", target), self.identity_free))
        return out

    def retry_after(self, address: str, identity: adm.AdminRef | None) -> float:
        """Seconds an attempt from ``address`` as ``identity`` must still wait before its
        credentials are checked (0: go)."""
        now = self._clock()
        wait = 0.0
        for key, free in self._counters(address, identity):
            entry = self._fails.get(key)
            if entry is None:
                continue
            count, last = entry
            if now - last >= self.forget:
                del self._fails[key]
            elif count >= free:
                delay = min(self.cap, self.base * 2.0 ** min(count - free, 64))
                wait = max(wait, last + delay - now)
        return wait

    def failed(self, address: str, identity: adm.AdminRef | None) -> None:
        """An attempt from ``address`` as ``identity`` (None: credentials that named
        nobody) failed."""
        now = self._clock()
        for key, _ in self._counters(address, identity):
            count, last = self._fails.pop(key, (0, now))
            if now - last >= self.forget:
                count = 0
            self._fails[key] = (count + 1, now)
        while len(self._fails) > self._max:
            self._fails.popitem(last=False)

    def succeeded(self, address: str, identity: adm.AdminRef) -> None:
        """An attempt from ``address`` proved ``identity``: only that pair's count is
        cleared."""
        self._fails.pop(("pair", _source(address), handle_key(identity.handle)), None)

    @staticmethod
    def ceil(seconds: float) -> int:
        return max(1, math.ceil(seconds))

    async def attempt(
        self,
        address: str,
        identity: adm.AdminRef | None,
        prove: Callable[[adm.AdminRef], Awaitable[Principal]],
        transport: str = "http",
    ) -> Principal:
        """One authentication attempt from ``address`` as ``identity``, whichever protocol
        carries it (HTTP Basic, the native challenge-response): :class:`Throttled` while
        attempts from there must wait; then ``prove(identity)``, which raises
        AuthenticationFailed for wrong credentials, counted as it went. ``identity`` None:
        credentials that named nobody, a failure without a check. Each failure is told to
        :attr:`on_failure` (``transport``: what carried the attempt)."""
        wait = self.retry_after(address, identity)
        if wait > 0:
            raise Throttled(self.ceil(wait))
        try:
            if identity is None:
                raise AuthenticationFailed("")
            who = await prove(identity)
        except AuthenticationFailed:
            self.failed(address, identity)
            if self.on_failure is not None:
                await self.on_failure(transport, address, identity)
            raise
        self.succeeded(address, identity)
        return who


def _source(address: str) -> str:
    """``address`` as counted: an IPv6 address by its /64, anything else as it is."""
    if ":" not in address:
        return address  # IPv4 (or no address at all): no parsing on the common path
    try:
        ip = ipaddress.IPv6Address(address.partition("%")[0])
    except ValueError:
        return address
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((ip, 64), strict=False))
