"""The node's forwarding switch: off until told where the top-level is, then a
:class:`~resolver.forward.remote.Remote` in the resolver, built with the node's settings
(recursion, hop limit, cache TTL cap) over one HTTP session the switch owns.

Whoever knows the node's registration (the sync agent) calls :meth:`Forwarding.configure`;
the resolver only sees ``resolver.forward`` set or not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from resolver.config import Config
from resolver.core import Resolver
from resolver.forward.base import Upstream
from resolver.forward.remote import Remote

if TYPE_CHECKING:
    import aiohttp


class Forwarding:
    """Sets ``resolver.forward`` from an :class:`Upstream` (or clears it)."""

    def __init__(
        self,
        resolver: Resolver,
        config: Config,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
    ) -> None:
        self._resolver = resolver
        self._config = config
        self._trace_configs = trace_configs  # tracing's, when on (resolver.tracing)
        self._session: aiohttp.ClientSession | None = None
        self.upstream: Upstream | None = None

    def configure(self, upstream: Upstream | None) -> None:
        """Forward through ``upstream`` from now on (None: no forwarding; foreign prefixes
        are then not this node's business). Call on the node's event loop."""
        self.upstream = upstream
        if upstream is None:
            self._resolver.forward = None
            return
        if self._session is None:
            # Imported here: aiohttp's client loads the system's CA certificates (~0.1 s),
            # which commands that never forward should not pay.
            import aiohttp

            self._session = aiohttp.ClientSession(trace_configs=list(self._trace_configs) or None)
        config = self._config
        self._resolver.forward = Remote(
            self._session,
            upstream.toplevel,
            upstream.trust_roots,
            node_id=upstream.node_id,
            recursion=config.recursion,
            max_hops=config.max_hops,
            max_ttl=config.cache_max_ttl,
        )

    async def close(self) -> None:
        """Stop forwarding and close the HTTP session. Idempotent."""
        self.configure(None)
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
