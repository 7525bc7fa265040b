"""The node's forwarding switch (resolver.forward.link): off until an Upstream configures it,
then foreign prefixes go through the resolver's forwarder; off again, they are not this
node's business."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from registry.errors import HandleNotFound, NotResponsible, ServerError
from resolver.config import load
from resolver.core import Query
from resolver.forward.base import Upstream
from resolver.forward.remote import Remote
from resolver.node import Node
from tests.conftest import free_port, init_node


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    data = tmp_path / "node"
    await init_node(data)
    n = await Node.open(load(data, env={"IDNODE_RECURSION": "off", "IDNODE_MAX_HOPS": "2"}))
    yield n
    await n.close()


async def test_foreign_prefixes_are_forwarded_only_while_configured(node: Node) -> None:
    resolver = node.resolver
    with pytest.raises(NotResponsible):  # never configured
        await resolver.resolve(Query("99.1/x"))
    with pytest.raises(HandleNotFound):  # a bare foreign prefix: not ours to name
        await resolver.resolve(Query("99.1"))

    # A top-level where nothing listens: the forwarder is asked, and its failure to reach
    # the top-level is a bad gateway for the client.
    toplevel = f"http://127.0.0.1:{free_port()}"
    node.forwarding.configure(Upstream(toplevel, ({"kty": "OKP"},), "node-a"))
    forward = resolver.forward
    assert isinstance(forward, Remote)
    assert (forward.toplevel, forward.node_id) == (toplevel, "node-a")
    assert (forward.recursion, forward.max_hops) == (False, 2)  # the node's own settings
    assert forward.max_ttl == node.config.cache_max_ttl
    for handle in ("99.1/x", "99.1"):
        with pytest.raises(ServerError) as caught:
            await resolver.resolve(Query(handle))
        assert caught.value.status == 502 and "0.NA/99.1" in caught.value.message

    node.forwarding.configure(None)
    assert resolver.forward is None
    with pytest.raises(NotResponsible):
        await resolver.resolve(Query("99.1/x"))


async def test_closing_the_node_stops_forwarding_and_its_session(node: Node) -> None:
    node.forwarding.configure(Upstream("http://127.0.0.1:1", (), "node-a"))
    forward = node.resolver.forward
    assert isinstance(forward, Remote)
    session = forward.session
    await node.forwarding.close()
    await node.forwarding.close()  # idempotent
    assert node.resolver.forward is None
    assert session.closed
