"""The in-process tier: a bounded LRU (entries and bytes) of ready-to-send entries."""

from __future__ import annotations

from collections import OrderedDict

from registry.cache.entry import CacheEntry
from registry.cache.stats import CacheStats


class LocalTier:
    def __init__(self, max_entries: int, max_bytes: int, stats: CacheStats) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.stats = stats
        # Least recently used first; RecordCache.peek reads it directly.
        self.entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self.bytes = 0

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: str) -> CacheEntry | None:
        entry = self.entries.get(key)
        if entry is not None:
            self.entries.move_to_end(key)
        return entry

    def put(self, entry: CacheEntry) -> None:
        if self.max_entries <= 0:
            return
        entry.compact()  # held encoded: see CacheEntry.compact
        size = entry.size
        if size > self.max_bytes:
            return
        self.discard(entry.key)
        self.entries[entry.key] = entry
        self._sizes[entry.key] = size
        self.bytes += size
        while len(self.entries) > self.max_entries or self.bytes > self.max_bytes:
            old_key, _ = self.entries.popitem(last=False)
            self.bytes -= self._sizes.pop(old_key)
            self.stats.evictions += 1

    def resize(self, entry: CacheEntry) -> None:
        """Account for what ``entry`` grew by (a rendering memoised after insertion)."""
        old = self._sizes.get(entry.key)
        if old is not None and self.entries.get(entry.key) is entry:
            new = entry.size
            self._sizes[entry.key] = new
            self.bytes += new - old

    def discard(self, key: str) -> None:
        if self.entries.pop(key, None) is not None:
            self.bytes -= self._sizes.pop(key)

    def clear(self) -> None:
        self.entries.clear()
        self._sizes.clear()
        self.bytes = 0
