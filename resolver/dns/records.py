r"""The DNS records of a resolution answer's values, and of the zone apex.

Pure: values in, dnspython rdata out (dnspython writes the wire form). DNS is anonymous, so
only publicly readable values are rendered, whatever the caller passes.

A *URL value* is one of type ``URL`` or a subtype (``URL.EPCIS``; types ignore ASCII case)
whose data is an absolute URI: UTF-8 ``scheme:rest``, with no spaces or control characters.
Each becomes

URI (RFC 7553)
    priority = the value's index (65535 for larger ones: lower indexes are tried first),
    weight 0, target = the URI.
NAPTR (RFC 3403, as GS1 ONS 2.0 writes them)
    order 0, preference = the index as for URI, flags ``u`` (the result is a URI), service
    ``http://www.gs1.org/ons/epcis`` for type ``URL.EPCIS`` and ``hdl:0.TYPE/<TYPE>`` (the
    value's type, upper case, as a Handle type) otherwise, regexp ``!^.*$!<URI>!`` with
    ``\`` and ``!`` in the URI escaped by a ``\``, replacement ``.``. A value whose service
    or regexp would be over 255 bytes has no NAPTR (its URI and TXT records carry it).

Every public value becomes one TXT record, ``<index> <type> <data>``: the index in decimal,
the type with ``%``, space and control characters percent-encoded (``%25``, ``%20``), then
the data's raw bytes as stored (a string value is its UTF-8 text; other formats are their
Handle wire encoding). The text is cut into character-strings of 255 bytes, which a client
joins. A value too large for one DNS record (text over 65,279 bytes) has no TXT record.

A record set's TTL is the smallest of its values' TTLs: a relative TTL as it is, an absolute
one (ttlType 1, an expiry time) as the seconds left at ``now``; never below 0 nor above
2^31 - 1 (RFC 2181 §8).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.NS import NS
from dns.rdtypes.ANY.SOA import SOA
from dns.rdtypes.ANY.TXT import TXT
from dns.rdtypes.ANY.URI import URI
from dns.rdtypes.IN.NAPTR import NAPTR

from registry.model.values import TTL_ABSOLUTE, URL, Value, type_key
from resolver.config import ConfigError
from resolver.dns.names import zone_name

IN = dns.rdataclass.IN
MAX_TTL = 2**31 - 1
MAX_STRING = 255  # bytes of a <character-string>
MAX_TXT = 65_279  # text whose 255-byte strings, with their length octets, fill 65,535 bytes
MAX_PRIORITY = 65_535

EPCIS = "http://www.gs1.org/ons/epcis"
ONS_SERVICES = {"URL.EPCIS": EPCIS}  # NAPTR services by type key; others: hdl:0.TYPE/<TYPE>

_URL_PREFIX = URL + "."
_ABSOLUTE_URI = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*:[^\x00-\x20\x7f]+")
_TYPE_ESCAPED = re.compile(r"[%\x00-\x20\x7f]")
_REGEXP_ESCAPED = re.compile(rb"([\\!])")


def dns_ttl(value: Value, now: float) -> int:
    """The DNS TTL of ``value`` at ``now`` (epoch seconds)."""
    ttl = int(value.ttl - now) if value.ttl_type == TTL_ABSOLUTE else value.ttl
    return min(max(ttl, 0), MAX_TTL)


def url(value: Value) -> bytes | None:
    """The URI a URL value holds, or None for any other value."""
    key = type_key(value.type)
    if key != URL and not key.startswith(_URL_PREFIX):
        return None
    data = value.data
    if not _ABSOLUTE_URI.fullmatch(data):
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return data


def uri(value: Value) -> URI | None:
    """The URI record of a URL value (None for others)."""
    target = url(value)
    if target is None:
        return None
    priority = min(value.index, MAX_PRIORITY)
    return URI(IN, dns.rdatatype.URI, priority, 0, target)  # type: ignore[no-untyped-call]


def naptr_service(value: Value) -> str:
    """The NAPTR service of a URL value: ONS's for the types ONS names, else its type."""
    key = type_key(value.type)
    return ONS_SERVICES.get(key) or f"hdl:0.TYPE/{key}"


def naptr(value: Value) -> NAPTR | None:
    """The ONS-style NAPTR record of a URL value (None for others, or when it is too long)."""
    target = url(value)
    if target is None:
        return None
    service = naptr_service(value).encode("utf-8")
    regexp = b"!^.*$!" + _REGEXP_ESCAPED.sub(rb"\\\1", target) + b"!"
    if len(service) > MAX_STRING or len(regexp) > MAX_STRING:
        return None
    return NAPTR(  # type: ignore[no-untyped-call]
        IN,
        dns.rdatatype.NAPTR,
        0,
        min(value.index, MAX_PRIORITY),
        b"u",
        service,
        regexp,
        dns.name.root,
    )


def _escape_type(value_type: str) -> str:
    return _TYPE_ESCAPED.sub(lambda m: f"%{ord(m.group()):02X}", value_type)


def txt_text(value: Value) -> bytes:
    """The TXT text of ``value``: ``<index> <type> <data>``, before it is cut in strings."""
    return f"{value.index} {_escape_type(value.type)} ".encode() + value.data


def txt(value: Value) -> TXT | None:
    """The TXT record of ``value`` (None when it is too large for one)."""
    text = txt_text(value)
    if len(text) > MAX_TXT:
        return None
    strings = [text[i : i + MAX_STRING] for i in range(0, len(text), MAX_STRING)]
    return TXT(IN, dns.rdatatype.TXT, strings)


_BUILDERS: dict[dns.rdatatype.RdataType, Callable[[Value], dns.rdata.Rdata | None]] = {
    dns.rdatatype.URI: uri,
    dns.rdatatype.NAPTR: naptr,
    dns.rdatatype.TXT: txt,
}
RECORD_TYPES = frozenset(_BUILDERS)


def rrset(
    name: dns.name.Name, rdtype: dns.rdatatype.RdataType, values: Iterable[Value], now: float
) -> dns.rrset.RRset | None:
    """The records of type ``rdtype`` (one of :data:`RECORD_TYPES`) that the public ones of
    ``values`` make, owned by ``name``, or None when they make none (NODATA)."""
    build = _BUILDERS[rdtype]
    rdatas = []
    ttl = MAX_TTL
    for value in values:
        if not value.public_read:
            continue
        rdata = build(value)
        if rdata is not None:
            rdatas.append(rdata)
            ttl = min(ttl, dns_ttl(value, now))
    if not rdatas:
        return None
    return dns.rrset.from_rdata_list(name, ttl, rdatas)


# ---------------------------------------------------------------- zone apex


@dataclass(frozen=True, slots=True)
class ZoneConfig:
    """What the zone apex answers: its SOA (RFC 1035 §3.3.13) and NS records.

    ``minimum`` is also the negative-caching TTL (RFC 2308); ``ttl`` is that of the SOA and
    NS records themselves. Raises :class:`ConfigError` on a value out of range."""

    zone: dns.name.Name
    primary: dns.name.Name  # the primary name server: the SOA's MNAME and the NS record
    admin: dns.name.Name  # the administrator's mailbox, as a name (RNAME)
    serial: int = 1
    refresh: int = 3600
    retry: int = 600
    expire: int = 1_209_600
    minimum: int = 300
    ttl: int = 3600

    def __post_init__(self) -> None:
        for field in ("zone", "primary", "admin"):
            if not getattr(self, field).is_absolute():
                raise ConfigError(f"DNS {field} {getattr(self, field)} is not an absolute name")
        if not 0 <= self.serial <= 2**32 - 1:
            raise ConfigError(f"DNS serial {self.serial} is not a 32-bit unsigned number")
        for field in ("refresh", "retry", "expire", "minimum", "ttl"):
            if not 0 <= getattr(self, field) <= MAX_TTL:
                raise ConfigError(f"DNS {field} {getattr(self, field)} is not 0 to {MAX_TTL}")

    @classmethod
    def from_text(
        cls, zone: str, primary: str | None = None, admin: str | None = None, **numbers: Any
    ) -> ZoneConfig:
        """A configuration from text: the zone, the primary server (default ``ns.<zone>``),
        the administrator as ``user@domain`` or a name (default ``hostmaster.<zone>``), and
        any of the numbers by keyword."""
        apex = zone_name(zone)
        ns = zone_name(primary) if primary else dns.name.Name([b"ns", *apex.labels])
        mailbox = mailbox_name(admin) if admin else dns.name.Name([b"hostmaster", *apex.labels])
        return dataclasses.replace(cls(apex, ns, mailbox), **numbers)


def mailbox_name(text: str) -> dns.name.Name:
    """A mailbox as an SOA RNAME: ``host.master@example.org`` → ``host\\.master.example.org.``
    (the local part is one label); text without ``@`` is taken as a name already."""
    local, at, domain = text.rpartition("@")
    if not at:
        return zone_name(text)
    if not local:
        raise ConfigError(f"mailbox {text!r} has no local part")
    try:
        return dns.name.Name([local.encode("utf-8"), *zone_name(domain).labels])
    except dns.exception.DNSException as exc:
        raise ConfigError(f"invalid mailbox {text!r}: {exc}") from None


def soa(config: ZoneConfig, *, negative: bool = False) -> dns.rrset.RRset:
    """The apex's SOA record; ``negative``: as the authority section of an NXDOMAIN or
    NODATA answer carries it, its TTL capped by ``minimum`` (RFC 2308 §3)."""
    rdata = SOA(  # type: ignore[no-untyped-call]
        IN,
        dns.rdatatype.SOA,
        config.primary,
        config.admin,
        config.serial,
        config.refresh,
        config.retry,
        config.expire,
        config.minimum,
    )
    ttl = min(config.ttl, config.minimum) if negative else config.ttl
    return dns.rrset.from_rdata_list(config.zone, ttl, [rdata])


def ns(config: ZoneConfig) -> dns.rrset.RRset:
    """The apex's NS record: the primary server."""
    rdata = NS(IN, dns.rdatatype.NS, config.primary)  # type: ignore[no-untyped-call]
    return dns.rrset.from_rdata_list(config.zone, config.ttl, [rdata])
