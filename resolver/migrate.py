"""``idnode migrate``: copy a registry between stores (SQLite → PostgreSQL, and back for
backups) with :func:`registry.store.copy.copy_records` — streaming, with a progress bar,
and resumable (run it again after an interruption)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from resolver.cliutil import positive_int
from resolver.config import STORE_FILE, ConfigError


def location(text: str) -> str:
    """A store location as given, a data directory (or ``sqlite:DIR``) standing for its
    SQLite file."""
    from registry.store.factory import SQLITE_SCHEME, URL

    if URL.match(text):
        return text
    path = text[len(SQLITE_SCHEME) :] if text.startswith(SQLITE_SCHEME) else text
    if path and Path(path).is_dir():
        path = str(Path(path) / STORE_FILE)
    return SQLITE_SCHEME + path


def cmd_migrate(args: argparse.Namespace) -> Coroutine[Any, Any, int]:
    """Check the locations, then copy (the coroutine the command line runs)."""
    from registry.store.factory import StoreConfigError, check_location

    source, target = location(args.source), location(args.target)
    try:
        for where in (source, target):
            check_location(where)
    except StoreConfigError as exc:
        raise ConfigError(f"store: {exc}") from None
    if source == target:
        raise ConfigError("--from and --to name the same store")
    if check_location(source) == "sqlite" and not os.path.isfile(source[len("sqlite:") :]):
        raise ConfigError(f"{source}: no such registry file")
    return _migrate(source, target, args.batch_size, args.quiet)


async def _migrate(source: str, target: str, batch: int, quiet: bool) -> int:
    # The stores and the progress bar are imported here: the command line must stay cheap.
    from tqdm import tqdm

    from registry.store.copy import copy_records
    from registry.store.factory import StoreConfigError, open_store, redact_location

    try:
        src = await open_store(source, readers=2)
    except StoreConfigError as exc:
        raise ConfigError(f"--from: {exc}") from None
    try:
        try:
            dst = await open_store(target, readers=2)
        except StoreConfigError as exc:
            raise ConfigError(f"--to: {exc}") from None
        try:
            pending = (await src.outbox_summary()).pending
            if pending:
                print(
                    f"idnode: {pending} reports to the top-level are still pending in the "
                    "source and are not copied: let the node deliver them first",
                    file=sys.stderr,
                )
            total = await src.count()
            with tqdm(
                total=total,
                unit="rec",
                file=sys.stderr,
                disable=quiet,
                dynamic_ncols=True,
            ) as bar:
                report = await copy_records(src, dst, batch=batch, progress=bar.update)
        finally:
            await dst.close()
    finally:
        await src.close()
    print(
        f"Copied {report.copied} records from {redact_location(source)} to "
        f"{redact_location(target)} ({report.unchanged} there already) in "
        f"{report.seconds:.1f} s ({report.rate:,.0f} records/s)"
    )
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``migrate`` to the ``idnode`` subcommands."""
    p = sub.add_parser(
        "migrate",
        help="copy the registry to another store (SQLite <-> PostgreSQL)",
        description="Copy every record from one store to another, as stored (signatures "
        "and sealed secrets byte for byte), in key order, one transaction per batch. "
        "Records the target holds already, as they are, are skipped: run it again to "
        "resume an interrupted copy. Stop the nodes writing to the source first; the "
        "target's hosts keep the same data directory (keys and secrets.key).",
    )
    p.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="LOCATION",
        help="the store to copy: a data directory, a SQLite file, sqlite:PATH or "
        "postgresql://USER@HOST:PORT/DB",
    )
    p.add_argument(
        "--to", dest="target", required=True, metavar="LOCATION", help="the store to copy into"
    )
    p.add_argument(
        "--batch-size", type=positive_int, default=1000, help="records per transaction (1000)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(fn=cmd_migrate)
