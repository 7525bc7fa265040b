"""A serving process's cache as a listener of a store several hosts share
(:class:`registry.store.base.SharedStore`): other hosts' writes bump this host's generations,
and while the process may miss some the cache is suspended."""

from __future__ import annotations

from collections.abc import Sequence

from registry.cache.records import RecordCache


class HostCache:
    """:class:`registry.store.base.CacheListener` over ``cache``."""

    def __init__(self, cache: RecordCache) -> None:
        self.cache = cache

    def invalidate(self, hashes: Sequence[int] | None) -> None:
        if hashes is None:
            self.cache.gens.bump_all()
        else:
            self.cache.gens.bump_hashes(hashes)

    def coherent(self, yes: bool) -> None:
        if yes:
            self.cache.resume()
        else:
            self.cache.suspend()
