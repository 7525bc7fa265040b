"""The serving shell (resolver.shell): one node opened once, the services handed to it, and
every configured listener over that node — HTTP and, here, a dummy UDP kind registered as
the native and DNS listeners will be — closed in reverse order before the node."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import aiohttp
import pytest

from registry.model.identifiers import handle_key
from registry.store.base import StoreClosed
from resolver.config import Config, load
from resolver.listeners import KINDS, Listener, ListenerKind, Running, Serving, listening_lines
from resolver.node import Node
from resolver.shell import Shell
from tests.conftest import NODE_HANDLE, init_node
from tests.procs import LISTENING

Events = list[tuple[str, object]]


@dataclasses.dataclass(frozen=True)
class WithDummy(Config):
    """A configuration with the dummy kind's key, as a real kind adds its own field."""

    dummy: str = "127.0.0.1:0"


class Echo(asyncio.DatagramProtocol):
    """Answers each datagram with the node's name: proof it serves that node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # not a subclass of it

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(self.node.config.name.encode(), addr)


class DummyListener:
    def __init__(self, transport: asyncio.DatagramTransport, node: Node, events: Events):
        self.transport, self.node, self.events = transport, node, events
        self.addresses: Sequence[tuple[str, int]] = [transport.get_extra_info("sockname")[:2]]
        self.lines: Sequence[str] = listening_lines("dummy-udp", self.addresses)

    async def close(self) -> None:
        # The node is still open while its listeners close.
        record = await self.node.store.get(handle_key(NODE_HANDLE))
        self.events.append(("close dummy", record is not None))
        self.transport.close()


def recorded(kind: ListenerKind, events: Events) -> ListenerKind:
    """``kind`` with its starts and closes recorded in ``events``."""

    async def start(node: Node, config: Config, host: str, port: int, serving: Serving) -> Listener:
        listener = await kind.start(node, config, host, port, serving)
        events.append((f"start {kind.name}", node))

        async def closing() -> None:
            events.append((f"close {kind.name}", None))
            await listener.close()

        return Running(listener.addresses, listener.lines, closing)

    return ListenerKind(kind.name, kind.help, start)


def dummy_kind(events: Events, fail: bool = False) -> ListenerKind:
    async def start(node: Node, config: Config, host: str, port: int, serving: Serving) -> Listener:
        if fail:
            raise OSError("address already in use (as a real bind would say)")
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: Echo(node), local_addr=(host, port), reuse_port=serving.reuse_port
        )
        return DummyListener(transport, node, events)

    return ListenerKind("dummy", "a test listener", start)


class Service:
    def __init__(self, node: Node, events: Events) -> None:
        self.node, self.events = node, events

    async def start(self) -> None:
        self.events.append(("start service", self.node))

    async def stop(self) -> None:
        self.events.append(("stop service", self.node))


async def config_of(tmp_path: Path) -> WithDummy:
    data = tmp_path / "node"
    await init_node(data)
    base = load(data, {"http": "127.0.0.1:0"}, env={})
    return WithDummy(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)})


async def test_http_and_another_listener_serve_one_node_and_close_in_order(
    tmp_path: Path,
) -> None:
    config = await config_of(tmp_path)
    events: Events = []
    (http,) = [kind for kind in KINDS if kind.name == "http"]
    kinds = [recorded(http, events), recorded(dummy_kind(events), events)]
    shell = Shell(
        config,
        services=[lambda node: Service(node, events)],
        kinds=kinds,
        serving=Serving(reuse_port=True),
    )
    lines = await shell.start()
    node = shell.node
    assert node is not None
    try:
        # Services start before any listener; every listener gets the one node.
        assert [e for e, _ in events] == ["start service", "start http", "start dummy"]
        assert all(n is node for _, n in events)
        http_line, dummy_line = lines
        match = LISTENING.match(http_line)  # the line tests and the bench parse, unchanged
        assert match and match.group(1) == "http", lines
        port = int(match.group(3))
        (dummy_address,) = shell.listeners[1].addresses
        assert dummy_line == f"idnode listening on dummy-udp://127.0.0.1:{dummy_address[1]}"

        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{port}/api/handles/{NODE_HANDLE}"
            async with session.get(url) as r:
                assert r.status == 200 and (await r.json())["responseCode"] == 1
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[bytes] = loop.create_future()

        class Client(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                answered.set_result(data)

        transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=dummy_address)
        try:
            transport.sendto(b"?")
            assert await asyncio.wait_for(answered, 10) == b"test node"
        finally:
            transport.close()
    finally:
        await shell.close()
    # Listeners in reverse order (the node still open for them), then services, then the node.
    assert [e for e, _ in events[3:]] == [
        "close dummy",
        "close dummy",
        "close http",
        "stop service",
    ]
    assert events[4] == ("close dummy", True)
    with pytest.raises(StoreClosed):
        await node.store.get(handle_key(NODE_HANDLE))
    assert (shell.node, shell.listeners, shell.services) == (None, [], [])


async def test_a_listener_that_cannot_start_closes_what_was_opened(tmp_path: Path) -> None:
    config = await config_of(tmp_path)
    events: Events = []
    (http,) = [kind for kind in KINDS if kind.name == "http"]
    kinds = [recorded(http, events), dummy_kind(events, fail=True)]
    shell = Shell(config, services=[lambda node: Service(node, events)], kinds=kinds)
    with pytest.raises(OSError, match="already in use"):
        await shell.start()
    assert [e for e, _ in events] == ["start service", "start http", "close http", "stop service"]
    node = events[0][1]
    assert isinstance(node, Node)
    with pytest.raises(StoreClosed):
        await node.store.get(handle_key(NODE_HANDLE))


async def test_a_bad_address_is_refused_before_anything_opens(tmp_path: Path) -> None:
    config = dataclasses.replace(await config_of(tmp_path), dummy="nowhere")
    with pytest.raises(Exception, match="expected HOST:PORT"):
        Shell(config, kinds=[dummy_kind([])])
