"""The scenario table: what each scenario serves, with which settings and keys, at which
registry sizes. Later capabilities (signed import, native UDP/TCP, DNS) add rows here and,
for a new kind of run, a handler in :mod:`bench.runner`.

Every HTTP scenario runs the same method: a closed-loop run for the maximum, then open-loop
runs at fixed fractions of it for latency (see :mod:`bench.loadgen`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["ceiling", "http", "import", "datagram"]
# What a datagram scenario sends (bench.udpgen --protocol); its ceiling is bench.ceiling_udp.
Protocol = Literal["", "native-udp", "native-tcp", "dns-udp"]
Keys = Literal["hot", "cold"]
Redis = Literal["none", "up", "down"]
Sizes = Literal["none", "all", "ends", "largest"]
StoreKind = Literal["sqlite", "postgresql"]

NO_LOCAL_TIER = {"IDNODE_CACHE_ENTRIES": "0"}


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    what: str
    kind: Kind = "http"
    keys: Keys = "hot"
    env: Mapping[str, str] = field(default_factory=dict)  # IDNODE_* settings of the server
    redis: Redis = "none"
    write_fraction: float = 0.0
    workers: int = 1
    sizes: Sizes = "largest"  # which of the run's registry sizes it is measured at
    # Passes over the whole key set before measuring, so the cache tier it measures is full
    # (workers each have their own tier and get a random share of each pass: several).
    prime: int = 0
    smoke: bool = False  # part of the seconds-long smoke run
    # The registry's store: the cached SQLite registry, or a copy of it in PostgreSQL
    # (bench/pgstore.py); "-pg" scenarios mirror their SQLite namesakes.
    store: StoreKind = "sqlite"
    protocol: Protocol = ""

    def sizes_of(self, sizes: list[int]) -> list[int | None]:
        """The registry sizes this scenario runs at (None: it needs no registry)."""
        ordered = sorted(sizes)
        if self.sizes == "none" or not ordered:
            return [None]
        chosen: list[int | None] = []
        if self.sizes == "all":
            chosen.extend(ordered)
        elif self.sizes == "ends":
            chosen.extend(sorted({ordered[0], ordered[-1]}))
        else:
            chosen.append(ordered[-1])
        return chosen


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "ceiling",
        "ceiling (bare aiohttp)",
        "a fixed resolution-sized body from a bare aiohttp handler: the reference",
        kind="ceiling",
        sizes="none",
        smoke=True,
    ),
    Scenario(
        "hot",
        "HTTP hot",
        "10,000 identifiers read over and over: served from the in-process tier",
        keys="hot",
        sizes="ends",
        prime=1,
        smoke=True,
    ),
    Scenario(
        "warm",
        "HTTP warm",
        "the hot keys with the in-process tier off (cache_entries=0): served from Redis",
        env=NO_LOCAL_TIER,
        redis="up",
        prime=1,
    ),
    Scenario(
        "cold",
        "HTTP cold",
        "50,000 keys spread over the registry, no cache tier: every read hits the store",
        keys="cold",
        env=NO_LOCAL_TIER,
        sizes="all",
        # Every key resolved once first, so each size is measured in the same state: the
        # one-second warm-up covers 10 k's whole key set five times over, but only a fifth
        # of 10 M's, whose measured seconds would otherwise also pay first sight (parsing
        # each handle, the OS reading its pages) that the smaller registries do not.
        prime=1,
    ),
    Scenario(
        "redis-down",
        "HTTP, Redis down",
        "warm's settings with Redis unreachable: the breaker sends reads to the store",
        env=NO_LOCAL_TIER,
        redis="down",
    ),
    Scenario(
        "mixed",
        "HTTP 95% read / 5% write",
        "hot reads plus the enterprise admin's authenticated PUTs (each invalidates)",
        write_fraction=0.05,
        prime=1,
    ),
    Scenario(
        "workers-2",
        "HTTP hot, 2 workers",
        "the hot scenario served by --workers 2 (SO_REUSEPORT)",
        workers=2,
        prime=4,
    ),
    Scenario(
        "native-udp",
        "native UDP hot",
        "hot keys resolved over the native Handle protocol (UDP), against a bare UDP server "
        "sending a captured answer",
        kind="datagram",
        protocol="native-udp",
    ),
    Scenario(
        "native-tcp",
        "native TCP hot",
        "hot keys resolved over the native Handle protocol (TCP, one request in flight per "
        "connection), against a bare TCP server sending a captured answer",
        kind="datagram",
        protocol="native-tcp",
    ),
    Scenario(
        "dns-udp",
        "DNS UDP hot",
        "hot keys' URI records over DNS (UDP), against a bare dnspython UDP server answering "
        "a fixed record",
        kind="datagram",
        protocol="dns-udp",
    ),
    Scenario(
        "import",
        "bulk import",
        "idnode import of a JSON Lines file into a fresh embedded store",
        kind="import",
        sizes="none",
        smoke=True,
    ),
    Scenario(
        "hot-pg",
        "HTTP hot, PostgreSQL",
        "hot on the PostgreSQL copy of the registry (the tier never reads the store)",
        keys="hot",
        prime=1,
        store="postgresql",
    ),
    Scenario(
        "warm-pg",
        "HTTP warm, PostgreSQL",
        "warm on the PostgreSQL copy of the registry",
        env=NO_LOCAL_TIER,
        redis="up",
        prime=1,
        store="postgresql",
    ),
    Scenario(
        "cold-pg",
        "HTTP cold, PostgreSQL",
        "cold on the PostgreSQL copy of the registry: every read a query",
        keys="cold",
        env=NO_LOCAL_TIER,
        sizes="all",
        prime=1,
        store="postgresql",
    ),
    Scenario(
        "cold-pg-2",
        "HTTP cold, PostgreSQL, 2 serving processes",
        "cold-pg served by --workers 2: two processes' queries on one database",
        keys="cold",
        env=NO_LOCAL_TIER,
        workers=2,
        prime=1,
        store="postgresql",
    ),
    Scenario(
        "import-pg",
        "bulk import, PostgreSQL",
        "idnode import of the same file into a fresh PostgreSQL database (COPY)",
        kind="import",
        sizes="none",
        store="postgresql",
    ),
)

BY_NAME = {s.name: s for s in SCENARIOS}


def select(names: list[str] | None, smoke: bool) -> list[Scenario]:
    """The chosen scenarios in table order; the ceiling is always measured first, because
    every HTTP figure is reported as a ratio to it."""
    if names is None:
        chosen = {s.name for s in SCENARIOS if s.smoke or not smoke}
    else:
        unknown = sorted(set(names) - BY_NAME.keys())
        if unknown:
            raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; see --list")
        chosen = set(names)
    if any(BY_NAME[n].kind == "http" for n in chosen):
        chosen.add("ceiling")
    return [s for s in SCENARIOS if s.name in chosen]


def is_import(name: str) -> bool:
    """Whether the scenario called ``name`` is a bulk import (records/s, no HTTP)."""
    sc = BY_NAME.get(name)
    return sc is not None and sc.kind == "import"


def sqlite_namesake(name: str) -> str | None:
    """The SQLite scenario a PostgreSQL one mirrors (``cold-pg`` → ``cold``), if any."""
    sc = BY_NAME.get(name)
    if sc is None or sc.store != "postgresql":
        return None
    base = name.replace("-pg", "")
    return base if base in BY_NAME else None
