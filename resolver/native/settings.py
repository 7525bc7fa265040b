"""What an operator configures about the native listener: its address and its limits.

The serving shell reads these from the node's configuration (keys ``native`` = HOST:PORT and
``native_<field>`` for each field of :class:`NativeLimits`) and passes them to
:func:`resolver.native.listener.start_native`.
"""

from __future__ import annotations

from dataclasses import dataclass

from resolver.native.limits import DEFAULT_LIMITS, Limits

DEFAULT_PORT = 2641  # the Handle protocol's registered port


@dataclass(frozen=True, slots=True)
class NativeLimits:
    """Bounds on what peers can make the listener hold.

    ``max_message_length``: the largest message accepted (the reference's 256 KiB).
    ``max_connections``: TCP connections held at once; at the cap a new connection takes the
    place of the one idle longest, or is closed at once if none is idle, so a flood of
    half-open connections cannot lock clients out.
    ``idle_timeout``: seconds a TCP connection may wait for its next request (or for the peer
    to read a reply) before it is closed.
    ``reassembly_timeout``, ``max_pending_messages``, ``max_pending_bytes``: multi-datagram
    UDP requests still missing fragments (the reference waits 5 s).
    ``max_in_flight``: UDP requests being answered at once (beyond the cache's fast path);
    beyond it a request is answered "server too busy".
    ``max_signing_queue``: certified replies waiting for an RSA signature (signed off the event
    loop); beyond it a certified request is answered "server too busy".
    ``challenge_timeout``: seconds an admin request's challenge (rc 402) waits for its answer.
    ``max_pending_challenges``: challenges waiting for an answer; beyond it a new challenge
    takes the place of the oldest, so a client that never answers cannot grow the table.
    """

    max_message_length: int = DEFAULT_LIMITS.max_message_length
    max_connections: int = 1024
    idle_timeout: float = 60.0
    reassembly_timeout: float = 5.0
    max_pending_messages: int = 1024
    max_pending_bytes: int = 16 * 2**20
    max_in_flight: int = 1024
    max_signing_queue: int = 256
    challenge_timeout: float = 60.0
    max_pending_challenges: int = 4096

    def __post_init__(self) -> None:
        for name in (
            "max_message_length",
            "max_connections",
            "max_pending_messages",
            "max_in_flight",
            "max_pending_challenges",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_message_length > DEFAULT_LIMITS.max_message_length:
            raise ValueError(
                f"max_message_length may not exceed {DEFAULT_LIMITS.max_message_length}"
            )
        for name in ("idle_timeout", "reassembly_timeout", "challenge_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.max_pending_bytes < 0 or self.max_signing_queue < 0:
            raise ValueError("max_pending_bytes and max_signing_queue must not be negative")

    @property
    def codec(self) -> Limits:
        """The codec's limits for these settings."""
        return Limits(max_message_length=self.max_message_length)


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``HOST`` (port 2641), ``[V6]:PORT`` or ``:PORT`` (all interfaces)."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else rest
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not port_text:
        port = DEFAULT_PORT
    elif port_text.isdigit() and int(port_text) <= 65535:
        port = int(port_text)
    else:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host or "0.0.0.0", port
