"""The transports a node serves over, one entry each in :data:`KINDS`.

A transport is a small adapter — decode a request, ask the node's core, encode the answer —
that the serving shell (:mod:`resolver.shell`) starts over the one open :class:`Node`. Each
kind of them is one :class:`ListenerKind`: its name is both its configuration key (a
``HOST:PORT``; empty or absent: not served) and its ``idnode serve --NAME`` flag, and its
``start`` binds it and returns a :class:`Listener`. With ``--workers N`` every worker starts
every configured listener on the same port with SO_REUSEPORT (:attr:`Serving.reuse_port`;
asyncio's ``create_server`` and ``create_datagram_endpoint`` take ``reuse_port`` alike), so
the kernel spreads clients over them.

This module is imported by the command line to build its flags: a kind's ``start`` imports
its transport's code when called, never here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from resolver.config import split_hostport

if TYPE_CHECKING:
    from resolver.config import Config
    from resolver.node import Node


class Listener(Protocol):
    """A started transport: bound, serving the node, until closed."""

    @property
    def addresses(self) -> Sequence[tuple[str, int]]:
        """The (host, port) pairs it is bound to."""
        ...

    @property
    def lines(self) -> Sequence[str]:
        """What the shell prints once every listener is up, one line per address:
        ``idnode listening on SCHEME://HOST:PORT`` (:func:`listening_lines`); tests and the
        bench read the ``http``/``https`` ones to find the port when serving on port 0."""
        ...

    async def close(self) -> None:
        """Stop taking requests and finish or drop those in progress; the node stays open
        (the shell closes it after every listener)."""
        ...


@dataclass(frozen=True, slots=True)
class Running:
    """A :class:`Listener` made of what a transport's own start gave: the addresses it is
    bound to, its announce lines and how it is closed."""

    addresses: Sequence[tuple[str, int]]
    lines: Sequence[str]
    close: Callable[[], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class Serving:
    """How this process serves: ``reuse_port``, a worker of ``--workers N`` sharing its ports
    with the others (SO_REUSEPORT). What is logged is configuration (``log_format``,
    ``access_log``), set up once by :func:`resolver.logs.configure`."""

    reuse_port: bool = False


Start = Callable[["Node", "Config", str, int, Serving], Awaitable[Listener]]


@dataclass(frozen=True, slots=True)
class ListenerKind:
    """One transport the shell can start: ``start(node, config, host, port, serving)``."""

    name: str  # its configuration key (a Config field) and its `idnode serve --NAME` flag
    help: str  # the flag's --help
    start: Start


def listening_lines(
    scheme: str, addresses: Iterable[tuple[str, int]], label: str = "idnode"
) -> list[str]:
    """The announce lines of a listener bound to ``addresses``."""
    return [f"{label} listening on {scheme}://{host}:{port}" for host, port in addresses]


async def _http(node: Node, config: Config, host: str, port: int, serving: Serving) -> Listener:
    from resolver.http.listener import start_http

    return await start_http(node, config, host, port, serving)


async def _native(node: Node, config: Config, host: str, port: int, serving: Serving) -> Listener:
    from resolver.native.listener import start_native

    listener = await start_native(node, host, port, reuse_port=serving.reuse_port)
    address = [listener.address]
    lines = listening_lines("hdl-udp", address) + listening_lines("hdl-tcp", address)
    return Running(address, lines, listener.close)


async def _dns(node: Node, config: Config, host: str, port: int, serving: Serving) -> Listener:
    from resolver.dns.config import DnsConfig
    from resolver.dns.listener import start_dns
    from resolver.dns.records import ZoneConfig

    zone = ZoneConfig.from_text(config.dns_zone)
    listener = await start_dns(node, DnsConfig(host, port, zone, reuse_port=serving.reuse_port))
    address = [(listener.host, listener.port)]
    lines = listening_lines("dns-udp", address) + listening_lines("dns-tcp", address)
    return Running(address, lines, listener.close)


# Started in this order (and closed in the reverse one).
KINDS: tuple[ListenerKind, ...] = (
    ListenerKind(
        "http",
        "HTTP listen address (default from config: 127.0.0.1:8000; port 0 picks a free port)",
        _http,
    ),
    ListenerKind(
        "native",
        "native Handle protocol listen address, UDP and TCP (HOST alone: port 2641; "
        "default from config: off)",
        _native,
    ),
    ListenerKind(
        "dns",
        "DNS listen address, UDP and TCP (default from config: off; zone: --dns-zone)",
        _dns,
    ),
)


def configured(
    config: Config, kinds: Iterable[ListenerKind] = KINDS
) -> list[tuple[ListenerKind, str]]:
    """The kinds ``config`` asks to serve, each with its ``HOST:PORT``."""
    wanted = []
    for kind in kinds:
        address = getattr(config, kind.name, None)  # the name is a Config field by contract
        if address:
            split_hostport(address)  # a ConfigError, before anything is opened
            wanted.append((kind, str(address)))
    return wanted
