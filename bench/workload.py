"""The requests a run sends, precomputed once as raw HTTP/1.1 bytes and shared by both
generators (JSON for the project's own, NUL-separated for ``wrk``'s Lua script).

Keys: a *hot* set (10,000 identifiers: fits the in-process tier, as a busy product line
would) or a *cold* spread (up to 50,000 drawn from the whole registry: store lookups all
over it). Writes are the enterprise admin's authenticated PUTs of a whole record of the
same size, each changing its description, spread evenly through the sequence.
"""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from bench import dataset

HOT_KEYS = 10_000
COLD_KEYS = 50_000
WRITE_KEYS = 500  # identifiers written, each several times per cycle: every PUT changes it
SEED = 4  # a fixed seed: the same keys on every run and machine
HOST = "Host: localhost\r\n"


@dataclass
class Workload:
    kinds: list[str]
    requests: list[tuple[int, str]]  # (kind, raw request)

    def write_json(self, path: Path) -> Path:
        path.write_text(json.dumps({"kinds": self.kinds, "requests": self.requests}))
        return path

    def write_raw(self, path: Path) -> Path:
        """NUL-terminated requests, for the wrk script (HTTP requests hold no NUL)."""
        path.write_bytes(b"".join(text.encode("latin-1") + b"\0" for _, text in self.requests))
        return path


def get(handle: str) -> str:
    return f"GET /api/handles/{handle} HTTP/1.1\r\n{HOST}\r\n"


def put(handle: str, values: str, prefix: str) -> str:
    body = f'{{"values":{values}}}'
    user = quote(f"300:0.NA/{prefix}", safe="")
    token = base64.b64encode(f"{user}:{dataset.enterprise_secret(prefix)}".encode()).decode()
    return (
        f"PUT /api/handles/{handle} HTTP/1.1\r\n{HOST}Authorization: Basic {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    )


def key_sample(size: int, n: int, seed: int = SEED) -> list[int]:
    rng = random.Random(seed)
    return rng.sample(range(size), min(n, size))


def probe_key(size: int) -> int:
    """A hot key that is never written: the answer the ceiling copies."""
    return key_sample(size, HOT_KEYS)[-1]


def reads(size: int, keys: str) -> Workload:
    """GETs of the hot set or the cold spread of a registry of ``size``."""
    sample = key_sample(size, HOT_KEYS if keys == "hot" else COLD_KEYS)
    return Workload(["read"], [(0, get(dataset.identifier(i))) for i in sample])


def mixed(size: int, write_fraction: float) -> Workload:
    """Hot-set GETs with a write every ``1 / write_fraction`` requests."""
    hot = key_sample(size, HOT_KEYS)
    writers = hot[: min(WRITE_KEYS, len(hot) - 1)]  # never probe_key
    every = round(1 / write_fraction)
    out: list[tuple[int, str]] = []
    writes = 0
    for n, i in enumerate(hot * 2):  # twice through: each writer gets several versions
        if n % every == every - 1:
            w = writers[writes % len(writers)]
            prefix = dataset.ENTERPRISES[w % len(dataset.ENTERPRISES)]
            # Batch numbers never equal the registry's own: every PUT really changes data.
            values = dataset.record_values(w, batch=writes + w % 9000 + 1)
            out.append((1, put(dataset.identifier(w), values, prefix)))
            writes += 1
        else:
            out.append((0, get(dataset.identifier(i))))
    return Workload(["read", "write"], out)
