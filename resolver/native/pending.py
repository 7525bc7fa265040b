"""Challenges waiting for their answer (handle-native.md §5, "Challenge and answer").

An admin request without credentials is answered rc 402 with a nonce and a session id that
names the pending challenge; the reference client answers on a *new* TCP connection, echoing
that session id. So an entry is found by its session id — random, so that nobody can answer
(or spoil) another client's challenge by guessing it — and is bound to the address it was
issued to. An entry is taken at most once (a replayed answer finds nothing), expires after
``timeout`` seconds, and the table holds at most ``max_entries``: beyond that a new challenge
takes the place of the oldest, so a client that never answers cannot grow it.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from resolver.native.messages import Message

_MAX_SESSION_ID = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Pending:
    """A challenge issued for ``request`` to ``peer``: its nonce and the raw digest of the
    request, which the answer's proof covers (``nonce ‖ digest``)."""

    request: Message
    peer: str
    nonce: bytes
    digest: bytes
    deadline: float

    @property
    def message(self) -> bytes:
        """What the answer MACs or signs."""
        return self.nonce + self.digest


class PendingChallenges:
    """The bounded table of pending challenges (see the module docstring); ``clock`` is
    injectable."""

    def __init__(
        self,
        timeout: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = timeout
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[int, Pending] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def issue(self, request: Message, peer: str, nonce: bytes, digest: bytes) -> int:
        """Record a challenge; returns the session id that names it."""
        now = self.clock()
        self._expire(now)
        while len(self._entries) >= self.max_entries:
            self._entries.popitem(last=False)
        session = secrets.randbelow(_MAX_SESSION_ID) + 1
        while session in self._entries:
            session = secrets.randbelow(_MAX_SESSION_ID) + 1
        self._entries[session] = Pending(request, peer, nonce, digest, now + self.timeout)
        return session

    def take(self, session: int, peer: str) -> Pending | None:
        """The challenge ``session`` names, if it is pending and was issued to ``peer``;
        removed once taken, so it is answered at most once."""
        self._expire(self.clock())
        entry = self._entries.get(session)
        if entry is None or entry.peer != peer:
            return None  # another peer's entry stays for its own answer
        del self._entries[session]
        return entry

    def _expire(self, now: float) -> None:
        entries = self._entries
        while entries:
            session, oldest = next(iter(entries.items()))
            if oldest.deadline > now:
                return
            del entries[session]
