"""Cache counters, read by the metrics endpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class CacheStats:
    local_hits: int = 0
    redis_hits: int = 0
    negative_hits: int = 0  # hits (either tier) on a cached "not found"
    misses: int = 0  # store reads made for the cache
    coalesced: int = 0  # misses that waited for another request's store read
    bypasses: int = 0  # auth=true reads straight from the store
    stale: int = 0  # entries found but refused: their key was written since
    expired: int = 0
    evictions: int = 0
    redis_errors: int = 0
    redis_fills: int = 0
    breaker_opens: int = 0
    suspensions: int = 0  # times the cache stopped: the host may have missed other hosts' writes

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @property
    def hit_ratio(self) -> float:
        hits = self.local_hits + self.redis_hits
        total = hits + self.misses + self.coalesced
        return hits / total if total else 0.0
