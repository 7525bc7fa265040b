"""What a DNS listener needs to know: where to listen, the zone it answers for, and its
limits. Built from text by the serving shell (``--dns HOST:PORT``, ``--dns-zone`` ...)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from resolver.config import ConfigError, split_hostport
from resolver.dns import DEFAULT_ZONE
from resolver.dns.records import ZoneConfig

MIN_UDP = 512  # RFC 1035: every client takes this much over UDP
# The largest UDP answer by default, and the EDNS payload advertised: DNS Flag Day 2020's
# value, which fits the IPv6 minimum MTU without fragmentation.
DEFAULT_UDP = 1232


@dataclass(frozen=True, slots=True)
class DnsConfig:
    """A DNS listener's settings; raises :class:`ConfigError` on a value out of range."""

    host: str
    port: int  # 0: any free port (UDP and TCP get the same one)
    zone: ZoneConfig
    udp_payload: int = DEFAULT_UDP  # the most a UDP answer may hold, whatever the client says
    tcp_idle: float = 10.0  # seconds a TCP connection may wait for its next query (RFC 7766)
    tcp_connections: int = 256  # TCP connections open at once; more are closed at once
    tcp_pipeline: int = 32  # queries of one connection resolving at once; more wait
    udp_pending: int = 1024  # UDP queries resolving at once; more are answered REFUSED
    reuse_port: bool = False  # share the port with other processes (--workers)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"DNS port {self.port} is not 0 to 65535")
        if not MIN_UDP <= self.udp_payload <= 65535:
            raise ConfigError(f"DNS UDP payload {self.udp_payload} is not {MIN_UDP} to 65535")
        if not self.tcp_idle > 0:
            raise ConfigError(f"DNS TCP idle timeout {self.tcp_idle} is not positive")
        for field in ("tcp_connections", "tcp_pipeline", "udp_pending"):
            if getattr(self, field) < 1:
                raise ConfigError(f"DNS {field} {getattr(self, field)} is not positive")

    @classmethod
    def from_text(
        cls,
        address: str,
        zone: str = DEFAULT_ZONE,
        ns: str | None = None,
        admin: str | None = None,
        serial: int = 1,
        **limits: Any,
    ) -> DnsConfig:
        """Settings from text: ``HOST:PORT``, the zone, its primary name server (default
        ``ns.<zone>``) and administrator (``user@domain``; default ``hostmaster.<zone>``),
        the SOA serial, and any limit by keyword."""
        host, port = split_hostport(address)
        config = cls(host, port, ZoneConfig.from_text(zone, ns, admin, serial=serial))
        return dataclasses.replace(config, **limits) if limits else config
