"""One node's resources — store, sealing key, registry, resolver — opened and closed in one
place (the HTTP app's ``cleanup_ctx``, the CLI's commands), never at import time."""

from __future__ import annotations

from dataclasses import dataclass

from registry.auth import FailureThrottle
from registry.listing import Listings
from registry.secrets import Sealer
from registry.service import Registry
from registry.store.base import Store
from registry.store.sqlite import SQLiteStore
from resolver.config import Config
from resolver.core import Resolver


@dataclass
class Node:
    config: Config
    store: Store
    registry: Registry
    resolver: Resolver
    listings: Listings
    throttle: FailureThrottle

    @classmethod
    async def open(cls, config: Config) -> Node:
        sealer = Sealer.load_or_create(config.data_dir)
        store = SQLiteStore(config.store_path)
        await store.open()
        registry = Registry(store, sealer, config.prefixes)
        return cls(
            config, store, registry, Resolver(registry), Listings(registry), FailureThrottle()
        )

    async def close(self) -> None:
        await self.store.close()
