"""A circuit breaker: after repeated Redis failures stop calling it, probe again later."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("idnode.cache")


class Breaker:
    """Closed → (``threshold`` consecutive failures) → open for an exponentially growing
    delay → one probe (half-open) → closed on success, open again on failure."""

    def __init__(
        self,
        name: str,
        threshold: int = 3,
        base: float = 0.25,
        cap: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        on_open: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.threshold, self.base, self.cap = threshold, base, cap
        self._clock = clock
        self._on_open = on_open
        self._failures = 0
        self._opens = 0
        self._retry_at = 0.0
        self._probing = False

    @property
    def is_open(self) -> bool:
        return self._failures >= self.threshold

    def allow(self) -> bool:
        if not self.is_open:
            return True
        if self._probing or self._clock() < self._retry_at:
            return False
        self._probing = True  # exactly one caller probes
        return True

    def success(self) -> None:
        if self.is_open:
            log.warning("%s reachable again; cache tier back in use", self.name)
        self._failures = 0
        self._opens = 0
        self._probing = False

    def failure(self, exc: BaseException | None = None) -> None:
        was_open = self.is_open
        self._failures += 1
        self._probing = False
        if self.is_open:
            delay = min(self.cap, self.base * 2.0**self._opens)
            self._opens += 1
            self._retry_at = self._clock() + delay
            if not was_open:
                log.warning(
                    "%s failing (%s); serving from the store, retrying in %.2fs",
                    self.name,
                    exc or "error",
                    delay,
                )
                if self._on_open:
                    self._on_open()
