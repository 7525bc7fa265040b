"""``idnode toplevel ...``: run and administer the mock top-level node.

Errors are one line ``idnode: ...`` on standard error with exit status 2, argument errors
included. The administrative commands open the database directly and work while ``serve``
runs on the same directory.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from registry.signing.keys import ALGORITHMS, KeyFileError
from resolver.config import ConfigError, split_hostport
from sync.toplevel import admin, home, views
from sync.toplevel.admin import AdminError
from sync.toplevel.records import DEFAULT_RECORD_TTL, ROOT_IDENTITY
from sync.toplevel.store import StoreError

Command = Callable[[argparse.Namespace], int]
DEFAULT_HTTP = "127.0.0.1:8100"


class _Parser(argparse.ArgumentParser):
    """Argument errors as one line, like every other error of ``idnode``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"idnode: {self.prog.removeprefix('idnode ')}: {message} (see --help)\n")


def _command(fn: Command) -> Command:
    """``fn`` with the top-level's own errors as one line and exit status 2 (``idnode``'s
    main does the same for configuration and file errors)."""

    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except (StoreError, AdminError, KeyFileError, sqlite3.Error) as exc:
            print(f"idnode: {exc}", file=sys.stderr)
            return 2

    return run


def _data(args: argparse.Namespace) -> Path:
    if not args.data:
        raise ConfigError("give the top-level's data directory with --data DIR")
    return Path(args.data)


@contextmanager
def _db(args: argparse.Namespace) -> Iterator[sqlite3.Connection]:
    conn = home.open_db(_data(args))
    try:
        yield conn
    finally:
        conn.close()


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2))


# --- commands --------------------------------------------------------------------------------


@_command
def cmd_init(args: argparse.Namespace) -> int:
    data = _data(args)
    root, created = home.init(data, args.signing_alg)
    if created:
        print(f"Initialised the top-level node in {data}: root {ROOT_IDENTITY} ({root.key.alg})")
    else:
        print(
            f"The top-level node in {data} is already initialised: root {ROOT_IDENTITY} "
            f"({root.key.alg})"
        )
    print(f"Trust root thumbprint: {root.key.kid}")
    print(f"Trust root JWK: {json.dumps(root.jwk)}")
    print(f"('idnode toplevel root --data {data} > root.jwk' writes it for clients)")
    return 0


@_command
def cmd_root(args: argparse.Namespace) -> int:
    data = _data(args)
    with _db(args) as conn:
        root = home.load_root(data, conn)
    print(json.dumps(root.jwk))
    return 0


def _non_negative(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if not value >= 0:
            raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1: {text!r}")
    return value


@_command
def cmd_serve(args: argparse.Namespace) -> int:
    from sync.toplevel.web import Faults, serve

    data = _data(args)
    host, port = split_hostport(args.http)
    if (args.down_after is None) != (args.down_for is None):
        raise ConfigError("give --down-after and --down-for together")
    with _db(args) as conn:
        home.load_root(data, conn)  # fail here, in one line, rather than in the server
    faults = Faults(
        latency_ms=args.latency_ms,
        error_rate=args.error_rate,
        down_after=args.down_after,
        down_for=args.down_for,
        seed=args.seed,
    )
    serve(data, host, port, record_ttl=args.record_ttl, faults=faults)
    return 0


@_command
def cmd_app_create(args: argparse.Namespace) -> int:
    with _db(args) as conn:
        app_id = admin.create_app(
            conn, args.prefix, args.name or "", args.approval, int(time.time())
        )
    print(app_id)  # alone on stdout: scripts capture it
    return 0


def _listing(rows: list[dict[str, Any]], as_json: bool, line: Callable[[Any], str]) -> int:
    if as_json:
        _print_json(rows)
    else:
        for row in rows:
            print(line(row))
    return 0


@_command
def cmd_app_list(args: argparse.Namespace) -> int:
    with _db(args) as conn:
        apps = views.apps(conn)
    return _listing(
        apps,
        args.json,
        lambda a: (
            f"{a['app_id']}  {a['prefix']}  {a['approval']}  "
            f"{'registered' if a['registered'] else 'not registered'}  {a['name']}"
        ),
    )


@_command
def cmd_prefix_approve(args: argparse.Namespace) -> int:
    with _db(args) as conn:
        changed = admin.approve_prefix(conn, args.prefix, int(time.time()))
    print(f"approved {args.prefix}" if changed else f"{args.prefix} was already approved")
    return 0


@_command
def cmd_prefix_list(args: argparse.Namespace) -> int:
    with _db(args) as conn:
        prefixes = views.prefixes(conn)
    return _listing(
        prefixes, args.json, lambda p: f"{p['prefix']}  {p['status']}  {p['kind']}  {p['app_id']}"
    )


# --- parser ----------------------------------------------------------------------------------


def _data_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="DIR", help="the top-level node's data directory")


def _json_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")


def _usage(p: argparse.ArgumentParser) -> Command:
    def usage(_args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    return usage


def add_parsers(sub: Any) -> None:
    """Add ``toplevel`` and its subcommands to the ``idnode`` command's subparsers."""
    p: argparse.ArgumentParser = sub.add_parser(
        "toplevel",
        help="the mock national top-level node",
        description="Run and administer the mock national top-level node: it onboards "
        "secondary nodes, routes their prefixes (signed 0.NA/<prefix> records), and takes "
        "their batches of prefix changes and statistics and their heartbeats.",
    )
    p.set_defaults(fn=_usage(p))
    tsub = p.add_subparsers(dest="toplevel_command", metavar="COMMAND", parser_class=_Parser)

    c = tsub.add_parser(
        "init",
        help="create the data directory and the root key",
        description="Create DIR, its database, the root signing key (DIR/root.pem, mode 0600, "
        "encrypted with IDNODE_KEY_PASSPHRASE when set) and the root's self-issued certificate "
        f"({ROOT_IDENTITY}). Idempotent. Prints the root's public JWK: the trust anchor.",
    )
    _data_arg(c)
    c.add_argument(
        "--signing-alg",
        choices=ALGORITHMS,
        default="EdDSA",
        help="algorithm of a new root key (default EdDSA; an existing key is kept)",
    )
    c.set_defaults(fn=cmd_init)

    c = tsub.add_parser(
        "root",
        help="print the root's public JWK",
        description="Print the root's public JWK alone (for clients' --trust-root).",
    )
    _data_arg(c)
    c.set_defaults(fn=cmd_root)

    c = tsub.add_parser(
        "serve",
        help="serve the intake API, the records and the views",
        description="Serve over HTTP until SIGINT/SIGTERM; prints 'idnode-toplevel listening "
        "on http://HOST:PORT'. Failures can be injected: latency on every request; for intake "
        "requests (/intake/...), a fraction answered 503 without being recorded, and a "
        "downtime window in which they are all answered 503.",
    )
    _data_arg(c)
    c.add_argument(
        "--http",
        metavar="HOST:PORT",
        default=DEFAULT_HTTP,
        help=f"listen address (default {DEFAULT_HTTP}; port 0 picks a free port)",
    )
    c.add_argument(
        "--record-ttl",
        type=_non_negative(int),
        default=DEFAULT_RECORD_TTL,
        metavar="S",
        help=f"TTL of the published records in seconds (default {DEFAULT_RECORD_TTL})",
    )
    c.add_argument(
        "--latency-ms",
        type=_non_negative(int),
        default=0,
        metavar="N",
        help="add N milliseconds before answering any request",
    )
    c.add_argument(
        "--error-rate",
        type=_rate,
        default=0.0,
        metavar="P",
        help='answer this fraction (0-1) of intake requests 503 {"error":"injected failure"}, '
        "recording nothing",
    )
    c.add_argument(
        "--down-after",
        type=_non_negative(float),
        metavar="S",
        help="start a downtime window S seconds after starting (with --down-for)",
    )
    c.add_argument(
        "--down-for",
        type=_non_negative(float),
        metavar="S",
        help="length of the downtime window: intake requests get 503 (with Retry-After)",
    )
    c.add_argument("--seed", type=int, metavar="N", help="seed of the --error-rate draws")
    c.set_defaults(fn=cmd_serve)

    c = tsub.add_parser("app", help="onboarding applications", description="Manage apps.")
    c.set_defaults(fn=_usage(c))
    asub = c.add_subparsers(dest="app_command", metavar="ACTION", parser_class=_Parser)
    a = asub.add_parser(
        "create",
        help="create an app for a node's prefix",
        description="Create an onboarding application for the node of PREFIX and print "
        "its id alone on standard output. The node registers with it.",
    )
    _data_arg(a)
    a.add_argument("--prefix", required=True, help="the node's secondary prefix, e.g. 88.118")
    a.add_argument("--name", help="a name for the app")
    a.add_argument(
        "--approval",
        choices=admin.APPROVALS,
        default="auto",
        help="whether enterprise prefixes the node sends are routed at once (auto, the "
        "default) or after 'idnode toplevel prefix approve' (manual)",
    )
    a.set_defaults(fn=cmd_app_create)
    a = asub.add_parser("list", help="list the apps", description="List the apps.")
    _data_arg(a)
    _json_arg(a)
    a.set_defaults(fn=cmd_app_list)

    c = tsub.add_parser(
        "prefix", help="routed prefixes", description="List and approve routed prefixes."
    )
    c.set_defaults(fn=_usage(c))
    psub = c.add_subparsers(dest="prefix_command", metavar="ACTION", parser_class=_Parser)
    a = psub.add_parser(
        "approve",
        help="approve a pending enterprise prefix",
        description="Route PREFIX, an enterprise prefix a node of a manual-approval app sent.",
    )
    _data_arg(a)
    a.add_argument("prefix", help="e.g. 88.118.8")
    a.set_defaults(fn=cmd_prefix_approve)
    a = psub.add_parser(
        "list",
        help="list routed and pending prefixes",
        description="List the prefixes: PREFIX STATUS KIND APP.",
    )
    _data_arg(a)
    _json_arg(a)
    a.set_defaults(fn=cmd_prefix_list)
