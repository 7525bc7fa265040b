"""DNS queries answered from the resolution core: a query's wire form in, the response's out.

No I/O of its own (the listener does that): dnspython reads and writes the wire format, the
name mapping (:mod:`.names`) finds the handle, the node's resolver finds its values (as for
an anonymous HTTP query of the whole record, and counted in its statistics the same way),
and :mod:`.records` makes them records.

==========================================  =============================================
query                                       answer
==========================================  =============================================
under 12 bytes, or a response (QR set)      none: dropped
not parsable                                FORMERR (the header only); TSIG: NOTAUTH
opcode other than QUERY                     NOTIMP
not one question; question type OPT         FORMERR
EDNS version over 0                         BADVERS
class other than IN or ANY; AXFR, IXFR      REFUSED
name outside the zone                       REFUSED
the zone apex                               SOA, NS (ANY: both), authoritative (AA)
an identifier of the node's prefixes        URI, NAPTR, TXT (ANY: all three), AA
... of another node's, recursion on         the same, from the other node: no AA, RA set;
                                            unverified: an EDE (RFC 8914) saying why
... of another node's, recursion off        REFUSED
no record of that type                      NODATA (NOERROR, no answer) with the SOA
no such identifier; no handle's name        NXDOMAIN with the SOA (NODATA for a name
                                            others lie under: :func:`.names.is_leaf`)
other failures                              their row's rcode (:mod:`registry.errors`)
==========================================  =============================================

Over UDP an answer holds at most 512 bytes, or with EDNS what the client offers up to the
configured payload; a longer one is sent truncated with TC set, and TCP carries it whole.

The hot path is the in-process cache tier (:meth:`Resolver.cached`): nothing awaited, and
the response rendered once per cache entry, question type and form (EDNS, RD), then sent
again with the query's id and name (its 0x20 case) patched in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from registry.cache.entry import CacheEntry
from registry.errors import (
    RC_HANDLE_NOT_FOUND,
    HandleError,
)
from registry.model.values import TTL_ABSOLUTE, Value
from resolver.core import Query, Resolver
from resolver.dns.config import DEFAULT_UDP, MIN_UDP
from resolver.dns.names import AboveHandles, NameMap, NotAHandle, NotInZone, is_leaf
from resolver.dns.records import ZoneConfig, ns, rrset, soa

log = logging.getLogger("idnode.dns")

NOERROR = dns.rcode.NOERROR
FORMERR = dns.rcode.FORMERR
NXDOMAIN = dns.rcode.NXDOMAIN
NOTIMP = dns.rcode.NOTIMP
REFUSED = dns.rcode.REFUSED
NOTAUTH = dns.rcode.NOTAUTH
BADVERS = dns.rcode.BADVERS
AA, RA, RD = dns.flags.AA, dns.flags.RA, dns.flags.RD
MAX_TCP = 65535
_QR = 0x80  # in the header's third byte

IN, ANY_CLASS = dns.rdataclass.IN, dns.rdataclass.ANY
ANY, SOA, NS = dns.rdatatype.ANY, dns.rdatatype.SOA, dns.rdatatype.NS
_REFUSED_TYPES = frozenset({dns.rdatatype.AXFR, dns.rdatatype.IXFR})
_RECORDS: dict[int, tuple[dns.rdatatype.RdataType, ...]] = {
    dns.rdatatype.URI: (dns.rdatatype.URI,),
    dns.rdatatype.NAPTR: (dns.rdatatype.NAPTR,),
    dns.rdatatype.TXT: (dns.rdatatype.TXT,),
    ANY: (dns.rdatatype.URI, dns.rdatatype.NAPTR, dns.rdatatype.TXT),
}

# Bounds of what is remembered, as clients choose the names they ask for.
KNOWN_NAMES = 65_536
BODIES_PER_NAME = 8
MEMO_BYTES = 16 << 20


class Pending:
    """A query the in-process tier cannot answer: :meth:`Answerer.finish` awaits the
    resolver for it."""

    __slots__ = ("known", "limit", "query", "qwire", "tcp")

    def __init__(
        self, query: dns.message.Message, known: _Known, qwire: bytes, limit: int, tcp: bool
    ) -> None:
        self.query = query
        self.known = known
        self.qwire = qwire
        self.limit = limit
        self.tcp = tcp


class _Known:
    """A name mapped to its handle once, and the responses rendered for its cache entry."""

    __slots__ = ("bodies", "entry", "handle")

    def __init__(self, handle: str) -> None:
        self.handle = handle
        self.entry: CacheEntry | None = None  # what the bodies were rendered from
        self.bodies: dict[int, bytes] = {}


class _Faults:
    """Unexpected exceptions, logged with their traceback at most once per ``every``
    seconds: a client that keeps triggering one cannot flood the log."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self.next = 0.0
        self.quiet = 0

    def report(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now < self.next:
            self.quiet += 1
            return
        self.next = now + self.every
        log.error("dns: error answering a query (%d more not logged)", self.quiet, exc_info=exc)
        self.quiet = 0


def header_only(wire: bytes, rcode: int) -> bytes:
    """A response of a header alone, for a query dnspython cannot parse: its id, opcode and
    RD echoed, ``rcode`` (under 16) set, no sections."""
    flags = _QR | (wire[2] & 0x79)  # opcode and RD
    return wire[:2] + bytes((flags, rcode)) + bytes(8)


def _variant(query: dns.message.Message, rdtype: int) -> int:
    """What a rendered response depends on besides the name: type, EDNS or not, RD."""
    return (rdtype << 2) | (query.edns >= 0) << 1 | (query.flags & RD) >> 8


def _stable(values: tuple[Value, ...]) -> bool:
    """Whether the records' TTLs stay the same over time (no value has an expiry time)."""
    return all(v.ttl_type != TTL_ABSOLUTE for v in values)


class Answerer:
    """Answers DNS queries for ``zone`` with ``resolver``'s identifiers."""

    def __init__(
        self,
        resolver: Resolver,
        zone: ZoneConfig,
        udp_payload: int = DEFAULT_UDP,
        *,
        clock: Callable[[], float] = time.time,
        memo_bytes: int = MEMO_BYTES,
    ) -> None:
        self.resolver = resolver
        self.zone = zone
        self.names = NameMap(zone.zone)
        self.udp_payload = udp_payload
        self.clock = clock
        self.memo_bytes = memo_bytes
        self.faults = _Faults()
        self._known: dict[bytes, _Known] = {}  # lower-cased name (wire form) -> its handle
        self._memo_used = 0
        self._soa = soa(zone)
        self._negative_soa = soa(zone, negative=True)
        self._ns = ns(zone)

    # -- entry points -------------------------------------------------------------------

    def reply(self, wire: bytes, tcp: bool = False) -> bytes | Pending | None:
        """The response to the query ``wire`` when it can be made at once; a
        :class:`Pending` when the resolver must be awaited; None for a packet to drop.
        ``tcp``: the answer goes over TCP (up to 65,535 bytes). Never raises."""
        if len(wire) < 12 or wire[2] & _QR:
            return None
        try:
            query = dns.message.from_wire(wire)
        except dns.message.UnknownTSIGKey:
            return header_only(wire, NOTAUTH)
        except Exception:  # anything dnspython makes of bad bytes is the client's error
            return header_only(wire, FORMERR)
        try:
            return self._reply(query, tcp)
        except Exception as exc:
            return self._fault(query, tcp, exc)

    async def finish(self, pending: Pending) -> bytes:
        """The response to a :class:`Pending` query, once the resolver answered. Never
        raises (but may be cancelled)."""
        try:
            return await self._finish(pending)
        except Exception as exc:
            return self._fault(pending.query, pending.tcp, exc)

    async def answer(self, wire: bytes, tcp: bool = False) -> bytes | None:
        """:meth:`reply` and, when needed, :meth:`finish`: the response to ``wire``, or None
        for a packet to drop."""
        out = self.reply(wire, tcp)
        if isinstance(out, Pending):
            return await self.finish(out)
        return out

    def busy(self, pending: Pending) -> bytes:
        """REFUSED for ``pending``, when too many queries are being resolved already.
        Never raises."""
        try:
            return self._error(pending.query, REFUSED, pending.tcp, "server busy")
        except Exception as exc:
            return self._fault(pending.query, pending.tcp, exc)

    # -- the query ----------------------------------------------------------------------

    def _reply(self, query: dns.message.Message, tcp: bool) -> bytes | Pending:
        if query.opcode() != dns.opcode.QUERY:
            return self._error(query, NOTIMP, tcp)
        if len(query.question) != 1:
            return self._error(query, FORMERR, tcp)
        if query.edns > 0:
            return self._error(query, BADVERS, tcp)
        question = query.question[0]
        rdtype = question.rdtype
        if question.rdclass != IN and question.rdclass != ANY_CLASS:
            return self._error(query, REFUSED, tcp)
        if rdtype in _REFUSED_TYPES:
            return self._error(query, REFUSED, tcp)
        if rdtype == dns.rdatatype.OPT:
            return self._error(query, FORMERR, tcp)
        name = question.name
        qwire = name.to_wire()  # without a file: the bytes
        assert qwire is not None
        key = qwire.lower()
        known = self._known.get(key)
        if known is None:
            if name == self.zone.zone:
                return self._apex(query, rdtype, tcp)
            try:
                handle = self.names.to_handle(name)
            except NotInZone:
                return self._error(query, REFUSED, tcp)
            except AboveHandles:
                return self._negative(query, NOERROR, tcp)
            except NotAHandle:
                return self._negative(query, NXDOMAIN, tcp)
            known = self._remember(key, handle)
        limit = self._limit(query, tcp)
        entry = self.resolver.cached(known.handle)
        if entry is None:
            return Pending(query, known, qwire, limit, tcp)
        if known.entry is entry:
            # The cache entry's rendering, for this type and form, with this query's id and
            # name (same bytes ignoring case: the name's compressed copies point at it).
            body = known.bodies.get(_variant(query, rdtype))
            if body is not None and len(body) <= limit:
                return query.id.to_bytes(2, "big") + body[2:12] + qwire + body[12 + len(qwire) :]
        return self._local(query, known, entry, entry.public, limit, tcp)

    def _remember(self, key: bytes, handle: str) -> _Known:
        known = self._known
        if len(known) >= KNOWN_NAMES:
            self._forget()
        found = known[key] = _Known(handle)
        return found

    def _forget(self) -> None:
        self._known.clear()
        self._memo_used = 0

    async def _finish(self, pending: Pending) -> bytes:
        query, tcp = pending.query, pending.tcp
        handle = pending.known.handle
        try:
            answer = await self.resolver.resolve(Query(handle))
        except HandleError as exc:
            rcode = exc.outcome.rcode
            if rcode == NXDOMAIN:
                if exc.response_code == RC_HANDLE_NOT_FOUND and not is_leaf(handle):
                    return self._negative(query, NOERROR, tcp)
                return self._negative(query, NXDOMAIN, tcp)
            return self._error(query, rcode, tcp, exc.message)
        if answer.referral is not None:  # recursion off: a DNS client cannot follow it
            return self._error(query, REFUSED, tcp, f"referral to {answer.referral}")
        if answer.verified is None:
            if answer.whole and answer.entry is not None:
                entry = answer.entry
                return self._local(query, pending.known, entry, entry.public, pending.limit, tcp)
            return self._local(query, None, None, answer.values, pending.limit, tcp)
        response = self._response(query, RA)
        if not answer.verified and query.edns >= 0:
            reason = f"not verified: {answer.unverified_reason or 'no reason given'}"
            self._ede(response, reason)
        return self._values(response, query, answer.values, pending.limit, tcp)

    # -- responses ----------------------------------------------------------------------

    def _response(self, query: dns.message.Message, flags: int = 0) -> dns.message.Message:
        response = dns.message.make_response(query, our_payload=self.udp_payload, pad=0)
        response.flags |= flags
        return response

    def _local(
        self,
        query: dns.message.Message,
        known: _Known | None,
        entry: CacheEntry | None,
        values: tuple[Value, ...],
        limit: int,
        tcp: bool,
    ) -> bytes:
        """The answer of values held here, remembered per ``entry`` for the types that
        have records when ``known`` is given."""
        response = self._response(query, AA)
        rdtype = query.question[0].rdtype
        full = self._full(response, query, values)
        if known is not None and full is not None and _stable(values):
            if known.entry is not entry or len(known.bodies) >= BODIES_PER_NAME:
                known.entry = entry
                known.bodies = {}
            if self._memo_used + len(full) > self.memo_bytes:
                self._forget()
            else:
                known.bodies[_variant(query, rdtype)] = full
                self._memo_used += len(full)
        return self._fit(response, full, limit, tcp)

    def _values(
        self,
        response: dns.message.Message,
        query: dns.message.Message,
        values: tuple[Value, ...],
        limit: int,
        tcp: bool,
    ) -> bytes:
        return self._fit(response, self._full(response, query, values), limit, tcp)

    def _full(
        self, response: dns.message.Message, query: dns.message.Message, values: tuple[Value, ...]
    ) -> bytes | None:
        """Fills ``response`` with the records of ``values`` the question asks for (or the
        SOA when there are none) and returns its wire form, None when over 65,535 bytes."""
        question = query.question[0]
        now = self.clock()
        for rdtype in _RECORDS.get(question.rdtype, ()):
            found = rrset(question.name, rdtype, values, now)
            if found is not None:
                response.answer.append(found)
        if not response.answer:
            response.authority.append(self._negative_soa)
        try:
            return response.to_wire(max_size=MAX_TCP)
        except dns.exception.TooBig:
            return None

    def _fit(
        self, response: dns.message.Message, full: bytes | None, limit: int, tcp: bool
    ) -> bytes:
        """``full``, the wire form of ``response``, when it fits ``limit``; over UDP the
        response truncated (TC set, what fits kept), over TCP SERVFAIL."""
        if full is not None and len(full) <= limit:
            return full
        if tcp:
            response.answer.clear()
            response.authority.clear()
            response.set_rcode(dns.rcode.SERVFAIL)
            self._ede(response, "answer too large for DNS")
            return response.to_wire(max_size=MAX_TCP)
        return response.to_wire(max_size=limit, prefer_truncation=True)

    def _apex(self, query: dns.message.Message, rdtype: int, tcp: bool) -> bytes:
        response = self._response(query, AA)
        if rdtype in (SOA, ANY):
            response.answer.append(self._soa)
        if rdtype in (NS, ANY):
            response.answer.append(self._ns)
        if not response.answer:
            response.authority.append(self._negative_soa)
        return response.to_wire(max_size=self._limit(query, tcp), prefer_truncation=True)

    def _negative(self, query: dns.message.Message, rcode: int, tcp: bool) -> bytes:
        """NXDOMAIN or NODATA (NOERROR), authoritative, with the SOA for negative caching."""
        response = self._response(query, AA)
        response.set_rcode(dns.rcode.Rcode(rcode))
        response.authority.append(self._negative_soa)
        return response.to_wire(max_size=self._limit(query, tcp), prefer_truncation=True)

    def _error(
        self,
        query: dns.message.Message,
        rcode: int,
        tcp: bool,
        text: str | None = None,
    ) -> bytes:
        """A response carrying only ``rcode`` (and ``text`` in an EDE when the query has
        EDNS)."""
        response = self._response(query)
        if text:
            self._ede(response, text)
        response.set_rcode(dns.rcode.Rcode(rcode))
        return response.to_wire(max_size=self._limit(query, tcp), prefer_truncation=True)

    def _ede(self, response: dns.message.Message, text: str) -> None:
        """Adds ``text`` as an Extended DNS Error (RFC 8914, code 0: other) to a response
        that has EDNS (the client's query had)."""
        if response.edns < 0:
            return
        option = dns.edns.EDEOption(dns.edns.EDECode.OTHER, text[:200])
        response.use_edns(
            0, response.ednsflags, self.udp_payload, response.request_payload, [option]
        )

    def _limit(self, query: dns.message.Message, tcp: bool) -> int:
        if tcp:
            return MAX_TCP
        if query.edns < 0:
            return MIN_UDP
        return max(MIN_UDP, min(query.payload, self.udp_payload))

    def _fault(self, query: dns.message.Message, tcp: bool, exc: Exception) -> bytes:
        """SERVFAIL for an unexpected exception, which is logged (rate-limited)."""
        self.faults.report(exc)
        try:
            return self._error(query, dns.rcode.SERVFAIL, tcp)
        except Exception:  # the query's own header, then
            head = query.id.to_bytes(2, "big") + (query.flags >> 8).to_bytes(1, "big")
            return header_only(head, dns.rcode.SERVFAIL)
