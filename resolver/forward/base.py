"""What the resolution core needs from forwarding, and what configures it.

The core asks a :class:`Forwarder` for the record of a foreign identifier and gets either
the record (:class:`Fetched`, with whether it verified up to the top-level root) or, with
recursion off, the node to refer the client to (:class:`Home`). A forwarded query carries
how many times it was forwarded and through which nodes (``X-Idnode-Hops``/``X-Idnode-Via``)
so loops and long chains end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from registry.model.identifiers import Identifier
from registry.model.values import Value

HOPS_HEADER = "X-Idnode-Hops"
VIA_HEADER = "X-Idnode-Via"
VERIFIED_HEADER = "X-Idnode-Verified"  # on answers from other nodes: "true" or "false"
VERIFY_ERROR_HEADER = "X-Idnode-Verify-Error"


@dataclass(frozen=True, slots=True)
class Home:
    """The node responsible for a prefix, per the top-level's record ``0.NA/<prefix>``."""

    prefix: str
    url: str
    site: tuple[Value, ...]  # the record's HS_SITE values: what a referral hands out


@dataclass(frozen=True, slots=True)
class Fetched:
    """A record another node answered: its values, and whether they verified (and why not)."""

    values: tuple[Value, ...]
    verified: bool
    reason: str | None


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where forwarding starts: the top-level node's base URL, the keys its chains must end
    at, and the id this node names itself by in ``X-Idnode-Via`` (to see loops)."""

    toplevel: str
    trust_roots: tuple[Mapping[str, Any], ...]
    node_id: str


class Forwarder(Protocol):
    """Resolves identifiers of prefixes this node is not home for."""

    async def fetch(
        self,
        ident: Identifier,
        hops: int,
        via: Sequence[str],
        bypass: bool = False,
        *,
        recursion: bool = True,
    ) -> Fetched | Home:
        """The whole record of ``ident`` from its node (or the :class:`Home` to refer the
        client to: always when ``recursion`` is False, the client's wish). ``hops``/``via``:
        how the query got here; ``bypass``: ask the node even if an answer is cached
        (``auth=true``). Raises HandleError (NotResponsible when no
        node serves the prefix, HandleNotFound, RecursionTooHigh, or a 502 ServerError when
        the other node does not answer)."""
        ...


def parse_hops(headers: Mapping[str, str]) -> tuple[int, tuple[str, ...]]:
    """The hop count and the ids of nodes already on the path, from a forwarded request."""
    raw = headers.get(HOPS_HEADER, "0")
    hops = int(raw) if raw.isdigit() and len(raw) < 4 else 0
    via = tuple(v for v in headers.get(VIA_HEADER, "").split(",") if v)[:32]
    return hops, via
