"""The serving shell: one process's node, its services and its listeners, opened and closed
in one place.

:meth:`Shell.start` opens the :class:`Node` once, starts the services the composition root
hands it (the sync agent: reporting to the top-level, configuring forwarding) and then every
listener the configuration asks for (:mod:`resolver.listeners`), all over that one node.
:meth:`Shell.close` undoes it in reverse: listeners first, so no request arrives at a node
whose services are stopping, then the services (the sync agent flushes its last counts),
then the node. A start that fails half way closes what it had opened.

The shell knows the services only as :class:`Service`: resolver/ never imports sync/.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

from resolver.auditkeeper import AuditKeeper
from resolver.config import Config, split_hostport
from resolver.listeners import KINDS, Listener, ListenerKind, Serving, configured
from resolver.node import Node

if TYPE_CHECKING:
    from resolver.tracing import Tracing

log = logging.getLogger("idnode")


class Service(Protocol):
    """Something that runs beside the listeners for the node's lifetime."""

    async def start(self) -> None:
        """Start (the node is open, no listener yet)."""
        ...

    async def stop(self) -> None:
        """Stop (every listener is closed, the node still open)."""
        ...


ServiceFactory = Callable[[Node], Service]


class Shell:
    """One node served by every configured listener (see the module's documentation)."""

    def __init__(
        self,
        config: Config,
        *,
        services: Sequence[ServiceFactory] = (),
        kinds: Iterable[ListenerKind] = KINDS,
        serving: Serving | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.config = config
        self.tracing = tracing  # given: trace into it (else as the configuration says)
        self.serving = serving or Serving()
        self._wanted = configured(config, kinds)  # checked before anything opens
        self._factories = services
        self.node: Node | None = None
        self.services: list[Service] = []
        self.listeners: list[Listener] = []

    async def start(self) -> Sequence[str]:
        """Open the node, start the services and the listeners; the listeners' announce
        lines."""
        self.node = node = await Node.open(self.config, tracing=self.tracing)
        try:
            # The audit log's chores first: the configuration is recorded before serving.
            keeper = AuditKeeper(node, record=not self.serving.reuse_port)
            for service in (keeper, *(make(node) for make in self._factories)):
                await service.start()
                self.services.append(service)
            for kind, address in self._wanted:
                host, port = split_hostport(address)
                listener = await kind.start(node, self.config, host, port, self.serving)
                self.listeners.append(listener)
        except BaseException:
            await self.close()
            raise
        return [line for listener in self.listeners for line in listener.lines]

    async def close(self) -> None:
        """Close the listeners, stop the services (each in reverse order), close the node.
        Every step runs whatever an earlier one raised; the first error is raised after
        them, later ones are logged."""
        first: BaseException | None = None
        steps = [listener.close for listener in reversed(self.listeners)]
        steps += [service.stop for service in reversed(self.services)]
        if self.node is not None:
            steps.append(self.node.close)
        self.listeners, self.services, self.node = [], [], None
        for step in steps:
            try:
                await step()
            except BaseException as exc:
                if first is None:
                    first = exc
                else:
                    log.exception("closing the node's listeners and services")
        if first is not None:
            raise first
