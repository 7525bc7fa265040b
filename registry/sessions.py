"""Login sessions of the ``Authorization: Handle`` scheme: the server's challenges and the
identities they proved.

A session starts as a challenge — an id and a 16-byte nonce — handed out in a 401's
``WWW-Authenticate: Handle`` header or by ``POST /api/sessions``. The client signs
``nonce ‖ cnonce`` with the key of an HS_PUBKEY and sends the signature naming the session;
once it verifies, the session id alone authenticates that identity until the session has
been idle for ``ttl`` seconds (or is ended). A nonce answers one signed attempt only: each
attempt, right or wrong, takes it and the session gets a fresh one, so a replayed answer is
checked against a nonce it did not sign and fails.

The table lives in this process's memory. Challenges and authenticated sessions are kept
apart, each an LRU of bounded size, so that a flood of anonymous 401s (each mints a
challenge) can push out only other challenges, never a signed-in client's session. Every
worker (``--workers N``) and host has its own table: a session is good on the worker that
created it, and a client that reaches another one gets a 401 with a fresh challenge and
signs in again there (keeping one connection open keeps a client on one worker).
"""

from __future__ import annotations

import base64
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from registry.authz import Principal

NONCE_BYTES = 16
SESSION_ID_BYTES = 18


@dataclass(slots=True)
class Session:
    """One session: ``who`` is None until a signature proved an identity."""

    id: str
    nonce: bytes
    expires: float
    who: Principal | None = None


def _new_id() -> str:
    return base64.urlsafe_b64encode(os.urandom(SESSION_ID_BYTES)).decode("ascii")


class Sessions:
    """The session table (see the module doc); ``clock`` is injectable for tests."""

    def __init__(
        self,
        ttl: float = 1800.0,
        challenge_ttl: float = 300.0,
        max_challenges: int = 10_000,
        max_sessions: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl, self.challenge_ttl = ttl, challenge_ttl
        self._max_challenges, self._max_sessions = max_challenges, max_sessions
        self._clock = clock
        self._challenges: OrderedDict[str, Session] = OrderedDict()
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._challenges) + len(self._sessions)

    def challenge(self) -> Session:
        """A new session, not yet authenticated, with a fresh nonce."""
        now = self._clock()
        session = Session(_new_id(), os.urandom(NONCE_BYTES), now + self.challenge_ttl)
        self._challenges[session.id] = session
        self._trim(self._challenges, self._max_challenges, now)
        return session

    def get(self, session_id: str) -> Session | None:
        """The live session ``session_id`` (an authenticated one's idle time restarts)."""
        now = self._clock()
        session = self._sessions.get(session_id)
        if session is not None:
            if session.expires <= now:
                del self._sessions[session_id]
                return None
            session.expires = now + self.ttl
            self._sessions.move_to_end(session_id)
            return session
        session = self._challenges.get(session_id)
        if session is not None and session.expires <= now:
            del self._challenges[session_id]
            return None
        return session

    def take_nonce(self, session: Session) -> bytes:
        """The nonce a signed attempt on ``session`` answers; it is never good again."""
        nonce, session.nonce = session.nonce, os.urandom(NONCE_BYTES)
        return nonce

    def authenticate(self, session: Session, who: Principal) -> None:
        """``who`` proved itself in ``session``: from now on its id alone stands for them."""
        now = self._clock()
        self._challenges.pop(session.id, None)
        session.who = who
        session.expires = now + self.ttl
        self._sessions[session.id] = session
        self._sessions.move_to_end(session.id)
        self._trim(self._sessions, self._max_sessions, now)

    def end(self, session_id: str) -> bool:
        """Forget ``session_id`` (logging out); False if there was no such session."""
        found = self._sessions.pop(session_id, None) or self._challenges.pop(session_id, None)
        return found is not None

    @staticmethod
    def _trim(table: OrderedDict[str, Session], limit: int, now: float) -> None:
        # Oldest first: expired entries, then whatever is over the limit.
        while table:
            oldest = next(iter(table.values()))
            if oldest.expires > now and len(table) <= limit:
                break
            table.popitem(last=False)
