"""The id of the request being answered, for logs and for the queries it makes of other nodes.

A transport sets :data:`REQUEST_ID` when a request brings an id (``X-Request-Id``) or when
the operator asked for access logs (then every request gets one). It is a context variable:
aiohttp answers each request in a task of its own, which copies the context, so the id is
the request's alone and everything that request runs sees it — the log formatter
(:mod:`resolver.logs`) and the forwarder's outgoing queries (:mod:`resolver.forward.peer`),
which carry it on to the next node.
"""

from __future__ import annotations

import itertools
import os
import re
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)

# What an incoming id may be: short, and nothing a log line or a header could trip on.
_SANE = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
# Made ids: this process's random tag and a counter, unique across workers and restarts
# without a random draw per request.
_TAG = os.urandom(6).hex()
_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """A fresh id (a process tag and a sequence number)."""
    return f"{_TAG}-{next(_COUNTER):x}"


def sane(incoming: str) -> bool:
    """Whether an id a client or another node sent can be used as it is."""
    return _SANE.fullmatch(incoming) is not None


def adopt(incoming: str | None, always: bool = False) -> str | None:
    """Make the request's id current: ``incoming`` if sane, a new one if it is not or
    (``always``) if none came; None (and nothing set) when none came and none is wanted."""
    if incoming is None and not always:
        return None
    rid = incoming if incoming is not None and sane(incoming) else new_request_id()
    REQUEST_ID.set(rid)
    return rid
