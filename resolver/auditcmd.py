"""``idnode audit list|export|verify``: the audit log, read from the node's store by its
operator (what it records: :mod:`registry.audit`; the chain: :mod:`registry.store.chain`).

``verify`` exits 0 when the chain holds from the retention anchor to the head, 1 when an
entry was altered or removed (naming the first), 2 when the store cannot be read.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TextIO

from registry import auditlog
from registry.audit import identity_key, parse_time
from registry.model.identifiers import handle_key
from registry.store.base import Store, StoreDamaged
from registry.store.chain import FIELDS, AuditQuery
from registry.store.factory import StoreConfigError, open_store
from resolver.cliutil import data_dir, store_flag
from resolver.config import ConfigError, load

TAMPERED = 1


@asynccontextmanager
async def _store(args: argparse.Namespace) -> AsyncIterator[Store]:
    """The node's store alone: reading the log needs no keys and writes nothing."""
    config = load(data_dir(args), {"store": store_flag(args)})
    try:
        store = await open_store(config.store_location, readers=1)
    except (StoreConfigError, StoreDamaged) as exc:
        raise ConfigError(f"store: {exc}") from None
    try:
        yield store
    finally:
        await store.close()


def _time(text: str | None, flag: str) -> float | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError:
        raise ConfigError(f"{flag}: expected seconds since the epoch or ISO 8601") from None


def _query(args: argparse.Namespace) -> AuditQuery:
    return AuditQuery(
        prefix=None if args.prefix is None else handle_key(args.prefix),
        identity=None if args.identity is None else identity_key(args.identity),
        action=args.action,
        since=_time(args.since, "--since"),
        until=_time(args.until, "--until"),
    )


async def _write(store: Store, query: AuditQuery, fmt: str, out: TextIO) -> int:
    """Write the entries ``query`` matches as JSON Lines or CSV; how many."""
    writer = csv.writer(out) if fmt == "csv" else None
    if writer is not None:
        writer.writerow(FIELDS)
    n = 0
    async for entry in auditlog.stream(store, query):
        row = entry.as_json()
        if writer is not None:
            writer.writerow(row.values())
        else:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        n += 1
    return n


async def cmd_list(args: argparse.Namespace) -> int:
    async with _store(args) as store:
        await _write(store, _query(args), args.format, sys.stdout)
    return 0


async def cmd_export(args: argparse.Namespace) -> int:
    async with _store(args) as store:
        out = await asyncio.to_thread(open, args.out, "w", encoding="utf-8", newline="")
        with out:
            n = await _write(store, AuditQuery(), args.format, out)
    print(f"exported {n} audit entries to {args.out}", file=sys.stderr)
    return 0


async def cmd_verify(args: argparse.Namespace) -> int:
    async with _store(args) as store:
        result = await auditlog.verify(store)
    head = result.head
    if result.broken is not None:
        print(
            f"audit log TAMPERED: entry {result.broken} {result.reason} "
            f"({result.checked} entries before it verified)"
        )
        return TAMPERED
    first = head.anchor_seq + 1
    print(
        f"audit log intact: {result.checked} entries ({first} to {head.seq}) verified; "
        f"head hash {head.hash}"
    )
    return 0


def add_parsers(sub: Any, data_arg: Callable[[argparse.ArgumentParser], None]) -> None:
    """``idnode audit`` and its actions on the subcommands ``sub``."""
    p = sub.add_parser(
        "audit",
        help="the audit log: list, export, verify",
        description="Read the node's audit log (every change, refusal and configuration "
        "change, chained by hash) from its store.",
    )
    asub = p.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    lp = asub.add_parser(
        "list",
        help="print entries, filtered",
        description="Print the entries matching every filter given, oldest first.",
    )
    data_arg(lp)
    lp.add_argument("--prefix", help="entries about this prefix's handles (e.g. 88.118.8)")
    lp.add_argument("--identity", help="entries made by this identity (e.g. 300:0.NA/88.118)")
    lp.add_argument("--action", help="entries of this action (create, update, delete, ...)")
    lp.add_argument("--since", metavar="TIME", help="from this time (epoch seconds or ISO 8601)")
    lp.add_argument("--until", metavar="TIME", help="before this time")
    lp.add_argument("--format", choices=("jsonl", "csv"), default="jsonl", help="(jsonl)")
    lp.set_defaults(fn=cmd_list)
    ep = asub.add_parser(
        "export",
        help="write every entry to a file",
        description="Write every entry kept (with its number and hash) to FILE.",
    )
    data_arg(ep)
    ep.add_argument("--out", required=True, metavar="FILE", help="the file to write")
    ep.add_argument("--format", choices=("jsonl", "csv"), default="jsonl", help="(jsonl)")
    ep.set_defaults(fn=cmd_export)
    vp = asub.add_parser(
        "verify",
        help="check the hash chain",
        description="Walk the chain from the retention anchor to the head. Exit status: "
        "0 intact, 1 an entry was altered or removed (the first is named), 2 no store.",
    )
    data_arg(vp)
    vp.set_defaults(fn=cmd_verify)
