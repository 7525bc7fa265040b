"""A bounded map whose entries expire: the caches of routes, certificates and remote answers."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any


class TtlCache:
    """At most ``entries`` entries, least recently used dropped first; each expires ``ttl``
    seconds (by ``clock``) after it was put."""

    def __init__(self, entries: int, clock: Callable[[], float]) -> None:
        self._data: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._entries = entries
        self._clock = clock

    def get(self, key: str) -> tuple[bool, Any]:
        """(True, value) for a live entry, else (False, None); a value may itself be None."""
        hit = self._data.get(key)
        if hit is None or hit[0] <= self._clock():
            return False, None
        self._data.move_to_end(key)
        return True, hit[1]

    def put(self, key: str, value: Any, ttl: float) -> None:
        self._data[key] = (self._clock() + ttl, value)
        self._data.move_to_end(key)
        while len(self._data) > self._entries:
            self._data.popitem(last=False)
