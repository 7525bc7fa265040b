"""One node's resources — store, sealing key, registry, resolver — opened and closed in one
place (the HTTP app's ``cleanup_ctx``, the CLI's commands), never at import time."""

from __future__ import annotations

from dataclasses import dataclass

from registry.auth import FailureThrottle
from registry.cache.generations import GenerationTable
from registry.cache.records import RecordCache
from registry.cache.redis_tier import RedisConfigError, RedisTier
from registry.listing import Listings
from registry.secrets import Sealer
from registry.service import Registry
from registry.store.base import Store
from registry.store.sqlite import SQLiteStore
from resolver.config import Config, ConfigError
from resolver.core import Resolver


@dataclass
class Node:
    config: Config
    store: Store
    registry: Registry
    resolver: Resolver
    listings: Listings
    throttle: FailureThrottle
    cache: RecordCache

    @classmethod
    async def open(cls, config: Config) -> Node:
        sealer = Sealer.load_or_create(config.data_dir)
        store = SQLiteStore(config.store_path)
        await store.open()
        gens = GenerationTable.open(config.data_dir)
        cache = RecordCache(
            store,
            gens,
            max_entries=config.cache_entries,
            max_bytes=config.cache_bytes,
            max_ttl=config.cache_max_ttl,
            negative_ttl=config.cache_negative_ttl,
        )
        if config.redis_url:
            namespace = format(gens.epoch, "016x")
            try:
                cache.redis = RedisTier(
                    config.redis_url, namespace, config.redis_timeout, cache.stats
                )
            except RedisConfigError as exc:
                await cache.close()
                await store.close()
                raise ConfigError(f"redis: {exc}") from None
        registry = Registry(store, sealer, config.prefixes, cache)
        return cls(
            config,
            store,
            registry,
            Resolver(registry),
            Listings(registry),
            FailureThrottle(),
            cache,
        )

    async def close(self) -> None:
        await self.cache.close()
        await self.store.close()
