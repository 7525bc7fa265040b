"""Exact caches on several hosts sharing one database: write notices over LISTEN/NOTIFY.

Each host caches records against its own generation table (:mod:`registry.cache`); a
write on one host must reach every other host's table before it is acknowledged. So:

- A write's transaction sends ``I <host> <nonce> <key hashes|*>`` (``pg_notify``; a write of
  many keys, several): it is delivered if and only if the write commits, in commit order, to
  every listening session.
- A *member* (a serving process) bumps the hashes' generations as each notice arrives and
  answers ``A <host> <nonces>``; members of one host share a table, so one answer covers it.
- The writer, once committed, asks which other hosts hold a lease (``cache_members``) and
  waits until each has answered or its lease has run out. A host whose lease ran out serves
  nothing from its cache (below), so it cannot serve what the write replaced.
- A member renews its lease every quarter lease, in one statement with a notice to itself
  (``B <member> <n>``). The notice comes back after every notice committed before it, all
  of them applied by then: only then may the member use its cache, until three quarters of
  a lease after it sent the renewal (the database's lease is a full one from later: the
  quarter is the margin for a late timer). Past that, or when its connection is lost, it
  suspends its cache (every generation bumped; reads go to the store) until a renewal comes
  back again.

With read replicas (:mod:`.replicas`), each write also raises the host's write position
before its generations are bumped: the writer's by the primary's position once committed
(read with the live hosts), a member's by the primary's position as the notices arrive
(read before it bumps and answers; a notice is only delivered once its write committed),
and by the position at each renewal (covering what it missed while away).

A process that is not a member (a command of the CLI) only sends notices and waits for the
answers; its cache never serves anything. Writes are waited for only as long as the hosts
are alive: a host killed with ``kill -9`` delays writes by at most one lease, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from registry.store.base import CacheListener, StoreUnavailable, WritePositions

log = logging.getLogger("idnode.store")

CHANNEL = "idnode_cache"
# Key hashes per notice (a notice holds up to 8000 bytes); a write of more keys sends
# several, and one of more than MAX_PARTS notices' worth sends '*' (everything) instead.
MAX_HASHES = 700
MAX_PARTS = 8
CONNECT_TIMEOUT = 5.0

# The write position: the end of the WAL written so far, every committed write's included.
_POSITION = "SELECT pg_current_wal_insert_lsn()"
_RENEW = (
    "WITH renewed AS (INSERT INTO cache_members (member, host, lease_until)"
    " VALUES ($1, $2, now() + $3 * interval '1 second')"
    " ON CONFLICT (member) DO UPDATE SET host = excluded.host, lease_until = excluded.lease_until"
    " RETURNING 1) SELECT pg_notify($4, $5), pg_current_wal_insert_lsn() FROM renewed"
)
_LIVE = (
    "WITH live AS (SELECT host, extract(epoch FROM max(lease_until) - clock_timestamp())::float8"
    " AS left_ FROM cache_members WHERE lease_until > clock_timestamp() AND host <> $1"
    " GROUP BY host) SELECT pg_current_wal_insert_lsn(), array_agg(host), array_agg(left_)"
    " FROM live"
)
_NOTIFY = "SELECT pg_notify($1, $2)"
# Rows of members gone for good (killed, or their host retired) are dropped after a day.
_FORGET = "DELETE FROM cache_members WHERE lease_until < now() - interval '1 day'"
_LEAVE = "DELETE FROM cache_members WHERE member = $1"


@dataclass(slots=True)
class Notice:
    """A write's notice (in parts, each its own nonce), between its transaction and the
    answers to it: a host has it once it answered every part."""

    nonces: list[int]
    payloads: list[str]
    answers: dict[int, set[int]] = field(default_factory=dict)  # host → nonces answered
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def answered(self, host: int) -> bool:
        return len(self.answers.get(host, ())) == len(self.nonces)


class ChangeChannel:
    """The channel of one process (see the module). ``host``: its generation table's id;
    ``listener``: its cache (None: not a member, a writer only); ``positions``: the host's
    write position, raised as notices arrive (None: no replica is read from)."""

    def __init__(
        self,
        dsn: str,
        host: int,
        lease: float,
        listener: CacheListener | None,
        positions: WritePositions | None = None,
    ) -> None:
        self.dsn = dsn
        self.host = host
        self.lease = lease
        self.listener = listener
        self.positions = positions
        self.member = secrets.token_hex(8)
        self._notices: dict[int, Notice] = {}
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()  # one statement at a time on the connection
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._connected = asyncio.Event()
        self._barrier: tuple[str, asyncio.Future[None]] | None = None
        self._rounds = 0
        self._timer: asyncio.TimerHandle | None = None
        self._coherent = False
        self._acks: list[str] = []  # nonces of notices heard, not answered yet
        # With replicas: the hashes those notices name, to bump once the position is known.
        self._unapplied: list[list[int] | None] = []
        self._ack_task: asyncio.Task[None] | None = None

    @property
    def is_coherent(self) -> bool:
        return self._coherent

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening; returns once connected (or having tried: it keeps trying). The
        listener's cache must not be in use yet: it is told when it may be."""
        self._task = asyncio.create_task(self._run(), name="idnode-pg-channel")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), CONNECT_TIMEOUT)

    async def stop(self) -> None:
        """Leave (writers stop waiting for this member at once) and disconnect."""
        self._stop.set()
        if self._task is not None:
            await self._task
        if self._ack_task is not None:
            await asyncio.gather(self._ack_task, return_exceptions=True)

    async def _run(self) -> None:
        delay = 0.1
        while not self._stop.is_set():
            lost = asyncio.Event()
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self.dsn,
                    timeout=CONNECT_TIMEOUT,
                    server_settings={"application_name": "idnode-channel"},
                )
                conn.add_termination_listener(functools.partial(_set, lost))
                await conn.add_listener(CHANNEL, self._heard)
                self._conn = conn
                self._connected.set()
                delay = 0.1
                if self.listener is None:
                    await _first(self._stop.wait(), lost.wait())
                else:
                    await self._serve(conn, lost)
            except Exception as exc:  # the server is away: suspend, try again
                if not self._stop.is_set():
                    log.warning("cache channel to the registry database: %s", exc or repr(exc))
            finally:
                self._conn = None
                self._lapse()
                if conn is not None:
                    await self._leave(conn)
            if not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                delay = min(delay * 2, self.lease / 2)

    async def _leave(self, conn: asyncpg.Connection) -> None:
        with contextlib.suppress(Exception):
            if self.listener is not None and self._stop.is_set() and not conn.is_closed():
                async with self._lock:
                    await asyncio.wait_for(conn.execute(_LEAVE, self.member), CONNECT_TIMEOUT)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.close(), CONNECT_TIMEOUT)
        if not conn.is_closed():
            conn.terminate()

    # -- membership --------------------------------------------------------------------------

    async def _serve(self, conn: asyncpg.Connection, lost: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        async with self._lock:
            await conn.execute(_FORGET)
        while not self._stop.is_set() and not lost.is_set():
            self._rounds += 1
            tag = f"{self.member} {self._rounds}"
            came_back: asyncio.Future[None] = loop.create_future()
            self._barrier = (tag, came_back)
            sent = loop.time()
            async with self._lock:
                position = await conn.fetchval(
                    _RENEW, self.member, self.host, self.lease, CHANNEL, f"B {tag}", column=1
                )
            if self.positions is not None:  # what it missed while away, if it was
                self.positions.advance(int(position))
            # Every notice committed before the renewal has been applied when it is back.
            await asyncio.wait_for(_first(came_back, lost.wait()), self.lease / 2)
            if lost.is_set():
                return
            self._extend(sent + self.lease * 0.75)
            await _first(self._stop.wait(), lost.wait(), within=self.lease / 4)

    def _extend(self, until: float) -> None:
        loop = asyncio.get_running_loop()
        if until <= loop.time():
            return  # the renewal came back too late to be of use
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(until, self._lapse)
        if not self._coherent and self.listener is not None:
            self._coherent = True
            self.listener.coherent(True)
            log.info("cache channel: in step with the other hosts, caching")

    def _lapse(self) -> None:
        """The lease ran out (or the connection is gone): stop using the cache."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._coherent and self.listener is not None and not self._stop.is_set():
            self._coherent = False
            self.listener.coherent(False)
            log.warning("cache channel: out of step with the other hosts, cache suspended")

    # -- what arrives ------------------------------------------------------------------------

    def _heard(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        kind, _, rest = payload.partition(" ")
        try:
            if kind == "I":
                self._invalidated(rest)
            elif kind == "A":
                host, _, nonces = rest.partition(" ")
                answered = int(host)
                for text in nonces.split(","):
                    nonce = int(text, 16)
                    notice = self._notices.get(nonce)
                    if notice is not None:
                        notice.answers.setdefault(answered, set()).add(nonce)
                        notice.event.set()
            elif kind == "B" and self._barrier is not None and rest == self._barrier[0]:
                came_back = self._barrier[1]
                if not came_back.done():
                    came_back.set_result(None)
        except ValueError:
            log.debug("cache channel: ignored %r", payload[:80])

    def _invalidated(self, rest: str) -> None:
        host, nonce, hashes = rest.split(" ", 2)
        if self.listener is None or int(host) == self.host or self._stop.is_set():
            return  # not caching; or this host's own write, bumped by its writer
        named = None if hashes == "*" else [int(h, 16) for h in hashes.split(",")]
        if self.positions is None:
            self.listener.invalidate(named)
        else:  # bumped once the position is raised (_answer)
            self._unapplied.append(named)
        self._acks.append(nonce)
        if self._ack_task is None:
            self._ack_task = asyncio.get_running_loop().create_task(self._answer())

    async def _answer(self) -> None:
        """Apply and answer the notices heard so far (those of one event-loop pass
        together); with replicas, the host's write position is raised first."""
        unapplied: list[list[int] | None] = []
        try:
            while self._acks and self._conn is not None:
                # Every notice answered here is among those applied here: both lists are
                # taken at once.
                acks, self._acks = self._acks, []
                unapplied, self._unapplied = self._unapplied, []
                conn = self._conn
                if unapplied:
                    async with self._lock:
                        position = await conn.fetchval(_POSITION)
                    assert self.positions is not None
                    self.positions.advance(int(position))
                    self._apply(unapplied)
                for i in range(0, len(acks), 400):
                    async with self._lock:
                        await conn.execute(
                            _NOTIFY, CHANNEL, f"A {self.host} {','.join(acks[i : i + 400])}"
                        )
        except Exception as exc:  # lost: writers wait for the lease to run out instead
            log.debug("cache channel: answer not sent: %s", exc)
            self._acks.clear()
        finally:
            # Unanswered, yet bumped: an invalidation is never wrong.
            self._apply(unapplied + self._unapplied)
            self._unapplied.clear()
            self._ack_task = None

    def _apply(self, unapplied: list[list[int] | None]) -> None:
        assert self.listener is not None
        for named in unapplied:
            self.listener.invalidate(named)
        unapplied.clear()

    # -- writing -----------------------------------------------------------------------------

    def notice(self, keys: Sequence[int]) -> Notice:
        """A notice of a write of the keys of these hashes, to send in its transaction."""
        hashes = sorted(set(keys))
        parts = [hashes[i : i + MAX_HASHES] for i in range(0, len(hashes), MAX_HASHES)]
        named = (
            ["*"]
            if len(parts) > MAX_PARTS
            else [",".join(format(h, "x") for h in part) for part in parts]
        )
        nonces = [secrets.randbits(63) for _ in named]
        notice = Notice(
            nonces, [f"I {self.host} {n:x} {text}" for n, text in zip(nonces, named, strict=True)]
        )
        for nonce in nonces:
            self._notices[nonce] = notice
        return notice

    async def send(self, conn: asyncpg.Connection, notice: Notice) -> None:
        """In the write's transaction (delivered if and only if it commits)."""
        for payload in notice.payloads:
            await conn.execute(_NOTIFY, CHANNEL, payload)

    def drop(self, notice: Notice) -> None:
        for nonce in notice.nonces:
            self._notices.pop(nonce, None)

    async def hosts(self, conn: asyncpg.Connection) -> tuple[dict[int, float], int]:
        """After the commit: every other host holding a lease, and when (loop time) its
        lease runs out at the latest; and the write position, the write's included."""
        loop = asyncio.get_running_loop()
        try:
            position, hosts, left = await conn.fetchrow(_LIVE, self.host)
        except Exception as exc:
            raise StoreUnavailable(
                "The write was committed, but whether every host has seen it is unknown: "
                "read it back before retrying"
            ) from exc
        now = loop.time()  # after the answer: the leases end no later than this says
        live = {int(h): now + float(t) for h, t in zip(hosts or (), left or (), strict=True)}
        return live, int(position)

    async def settle(self, notice: Notice, hosts: dict[int, float]) -> None:
        """Wait until each of ``hosts`` has answered the notice or its lease has run out."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                now = loop.time()
                waiting = [t for h, t in hosts.items() if not notice.answered(h) and t > now]
                if not waiting:
                    return
                notice.event.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(notice.event.wait(), min(waiting) - now)
        finally:
            self.drop(notice)


def _set(event: asyncio.Event, _conn: object) -> None:
    event.set()


async def _first(*aws: object, within: float | None = None) -> None:
    """Wait until the first of ``aws`` (coroutines or futures) is done, or ``within``
    seconds have passed."""
    tasks = [asyncio.ensure_future(a) for a in aws]  # type: ignore[call-overload]
    try:
        await asyncio.wait(tasks, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
