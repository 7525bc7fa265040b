"""Registries of N identifiers for the bench, built with idnode's own bulk importer and
cached per size (``bench/.data/n<N>/``) for later runs: a directory is reused only when its
manifest says it was completed with the current record format.

Identifier i is ``88.118.<1..4>/SN<i, 10 digits>`` (round-robin over four enterprise
prefixes) with a URL, a description and an HS_ADMIN naming its enterprise's admin, like
the demo's products. Every answer has the same length, so the ceiling can mimic it. (The
mixed scenario rewrites a few hundred descriptions in place, lengths unchanged.)
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bench.procs import PYTHON, ROOT, ProcError, clean_env, run_measured

FORMAT = 1  # bump whenever the records' shape changes: cached registries are then rebuilt
NODE_PREFIX = "88.118"
ENTERPRISES = ("88.118.1", "88.118.2", "88.118.3", "88.118.4")
NODE_SECRET = "bench-node-secret"
DEFAULT_ROOT = ROOT / "bench" / ".data"
IMPORTED = re.compile(r"imported (\d+) records .*\(([\d,.]+) records/s\)")
CHUNK = 10_000  # lines written to the importer at a time
IMPORT_BATCH = 5_000  # records per import transaction when building (faster than 1,000)


def enterprise_secret(prefix: str) -> str:
    return f"bench-secret-{prefix}"


def identifier(i: int) -> str:
    return f"{ENTERPRISES[i % len(ENTERPRISES)]}/SN{i:010d}"


def record_values(i: int, batch: int | None = None) -> str:
    """The values of identifier ``i`` as a JSON array; ``batch`` varies the description
    (writes use it) without changing any length."""
    suffix = f"SN{i:010d}"
    prefix = ENTERPRISES[i % len(ENTERPRISES)]
    b = (i % 9000 + 1000) if batch is None else batch % 9000 + 1000
    return (
        f'[{{"index":1,"type":"URL","data":"https://example.com/products/{suffix}"}},'
        f'{{"index":2,"type":"DESC","data":"Motor controller, batch {b}"}},'
        '{"index":100,"type":"HS_ADMIN","data":{"format":"admin","value":'
        f'{{"handle":"0.NA/{prefix}","index":300,"permissions":"111111111111"}}}}}}]'
    )


def line(i: int) -> str:
    return f'{{"handle":"{identifier(i)}","values":{record_values(i)}}}\n'


def lines(n: int) -> Iterator[str]:
    for start in range(0, n, CHUNK):
        yield "".join(line(i) for i in range(start, min(n, start + CHUNK)))


@dataclass
class Dataset:
    size: int
    path: Path
    reused: bool
    import_rate: float  # records/s the importer reported when it was built
    build_seconds: float
    disk_mb: float


def idnode(*args: str) -> list[str]:
    """The command line of ``idnode ARGS`` in this Python environment."""
    return [PYTHON, "-m", "resolver.cli", *args]


def _cli(*args: str, timeout: float = 120.0) -> str:
    done = run_measured(idnode(*args), timeout=timeout)
    if done.returncode != 0:
        raise ProcError(f"idnode {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def init_node(data: Path, store: str | None = None) -> None:
    """``idnode init`` plus the enterprise prefixes, with the bench's known secrets
    (``store``: the node's store, else the SQLite file in ``data``)."""
    import subprocess

    at = ["--store", store] if store else []
    _cli("init", "--data", str(data), "--prefix", NODE_PREFIX, "--admin-secret", NODE_SECRET, *at)
    # The prefixes are independent writes: create them concurrently (SQLite serialises them).
    procs = [
        subprocess.Popen(
            idnode(
                "prefix",
                "create",
                prefix,
                "--data",
                str(data),
                "--admin-secret",
                enterprise_secret(prefix),
                *at,
            ),
            cwd=ROOT,
            env=clean_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for prefix in ENTERPRISES
    ]
    try:
        errors = [err for p in procs if (err := p.communicate(timeout=120)[1]) and p.returncode]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    if errors:
        raise ProcError(f"idnode prefix create failed: {errors[0].strip()}")


def import_stream(
    data: Path, n: int, *, batch: int, progress: bool, timeout: float
) -> tuple[int, float]:
    """Pipe n generated records into ``idnode import -``; the importer's count and rate."""
    import subprocess
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        cmd = idnode("import", "-", "--data", str(data), "--batch-size", str(batch))
        cmd += [] if progress else ["--quiet"]
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=clean_env(),
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=None if progress else err,  # progress: the importer's own bar shows
            text=True,
        )
        try:
            assert proc.stdin is not None
            _feed(proc.stdin, lines(n))  # blocks while the importer catches up
            code = proc.wait(timeout)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        out.seek(0)
        err.seek(0)
        if code != 0:
            raise ProcError(f"idnode import failed ({code}): {err.read().decode()}")
        return parse_import(out.read().decode())


def _feed(stdin: IO[str], chunks: Iterator[str]) -> None:
    try:
        for chunk in chunks:
            stdin.write(chunk)
    except BrokenPipeError:
        pass  # the importer stopped early; its exit status tells why
    finally:
        with contextlib.suppress(BrokenPipeError):
            stdin.close()


def parse_import(out: str) -> tuple[int, float]:
    m = IMPORTED.search(out)
    if not m:
        raise ProcError(f"unexpected idnode import output: {out!r}")
    return int(m.group(1)), float(m.group(2).replace(",", ""))


def _schema_current(path: Path) -> bool:
    """Whether the registry's store schema is this code's (a newer one rebuilds it: a
    migration may mean records are stored, or must be imported, differently)."""
    import sqlite3

    from registry.store.migrations import SCHEMA_VERSION, schema_version

    try:
        conn = sqlite3.connect(f"file:{path / 'registry.sqlite3'}?mode=ro", uri=True)
    except sqlite3.Error:
        return False
    try:
        return schema_version(conn) == SCHEMA_VERSION
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def stored_values(path: Path) -> list[str]:
    """``index:type`` of identifier 0's values as the registry in ``path`` holds them."""
    values = json.loads(_cli("get", identifier(0), "--data", str(path)))["values"]
    return [f"{v['index']}:{v['type']}" for v in values]


def fingerprint(work: Path) -> list[str]:
    """What the current importer makes of a record (e.g. ``400:HS_SIGNATURE`` once records
    are signed on import): a cached registry built by an importer that did otherwise no
    longer shows what idnode serves, and is rebuilt."""
    node = work / "fingerprint"
    init_node(node)
    import_stream(node, 1, batch=1, progress=False, timeout=120)
    return stored_values(node)


def _manifest_ok(path: Path, size: int, values: list[str]) -> dict[str, object] | None:
    try:
        manifest: dict[str, object] = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if (
        manifest.get("format") == FORMAT
        and manifest.get("size") == size
        and manifest.get("values") == values
    ):
        return manifest if _schema_current(path) else None
    return None


def _disk_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file()) / 2**20


def ensure(
    size: int,
    values: list[str],
    root: Path = DEFAULT_ROOT,
    *,
    progress: bool = False,
    note: Callable[[str], None] = print,
) -> Dataset:
    """The registry of ``size`` identifiers, reused from ``root`` or built there; ``values``
    is the current importer's :func:`fingerprint`."""
    path = root / f"n{size}"
    manifest = _manifest_ok(path, size, values)
    if manifest is not None:
        return Dataset(
            size,
            path,
            True,
            float(str(manifest["import_rate"])),
            float(str(manifest["build_seconds"])),
            _disk_mb(path),
        )
    note(f"building a registry of {size:,} identifiers in {path} (cached for later runs)")
    tmp = root / f"n{size}.building"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(path, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    init_node(tmp)
    # Generous: a slow disk may import at a few thousand records/s.
    count, rate = import_stream(
        tmp, size, batch=IMPORT_BATCH, progress=progress, timeout=120 + size / 2_000
    )
    if count != size:
        raise ProcError(f"imported {count} records, expected {size}")
    seconds = time.perf_counter() - started
    manifest = {
        "format": FORMAT,
        "size": size,
        "values": stored_values(tmp),
        "node_prefix": NODE_PREFIX,
        "enterprises": list(ENTERPRISES),
        "import_rate": rate,
        "build_seconds": round(seconds, 1),
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.rename(path)  # only a finished registry ever has the cached name
    return Dataset(size, path, False, rate, seconds, _disk_mb(path))


def write_file(path: Path, n: int, offset: int = 0) -> None:
    """n records as a JSON Lines file (the import scenario reads a file, as operators do)."""
    with path.open("w", encoding="utf-8") as f:
        for start in range(offset, offset + n, CHUNK):
            f.write("".join(line(i) for i in range(start, min(offset + n, start + CHUNK))))
