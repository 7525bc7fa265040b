"""The console's sign-in sessions: a bounded server-side table of random ids.

The browser holds only the session id (an HttpOnly cookie); the table holds who signed in
and the session's CSRF token. The secret that proved the identity is never kept: a session
is the proof, and it expires — after ``idle`` seconds without a request, and ``lifetime``
seconds after sign-in whatever happens. The table is an LRU of at most ``max_sessions``: a
flood of sign-ins pushes out the oldest sessions, never grows memory. No I/O here; the clock
is injected so expiry is testable.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from registry.authz import Principal


@dataclass
class Session:
    id: str
    who: Principal
    csrf: str  # sent back in every POST form; compared in constant time
    started: float
    seen: float
    role: str  # "node" or "enterprise": which pages the console offers (not what is allowed)
    prefix: str  # the prefix the identity administers (its 0.NA/ handle's)
    flash: list[str] = field(default_factory=list)  # messages for the next page shown

    def csrf_ok(self, token: str) -> bool:
        return hmac.compare_digest(self.csrf.encode(), token.encode("utf-8", "replace"))


class SessionTable:
    def __init__(
        self,
        idle: float = 1800.0,
        lifetime: float = 43200.0,
        max_sessions: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle, self.lifetime, self._max = idle, lifetime, max_sessions
        self.clock = clock  # replaceable: tests move time on
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, who: Principal, role: str, prefix: str) -> Session:
        now = self.clock()
        sid = secrets.token_urlsafe(32)
        session = Session(sid, who, secrets.token_urlsafe(32), now, now, role, prefix)
        self._sessions[sid] = session
        while len(self._sessions) > self._max:
            self._sessions.popitem(last=False)
        return session

    def get(self, sid: str) -> Session | None:
        """The live session ``sid`` (its idle time restarts), or None: unknown or expired
        (then forgotten)."""
        session = self._sessions.get(sid)
        if session is None:
            return None
        now = self.clock()
        if now - session.seen >= self.idle or now - session.started >= self.lifetime:
            del self._sessions[sid]
            return None
        session.seen = now
        self._sessions.move_to_end(sid)
        return session

    def close(self, sid: str) -> None:
        self._sessions.pop(sid, None)
