"""The ``idnode`` command line.

Local commands (``get``, ``put``, ``delete``, ``prefix``, ``import``, ``export``) work on the
data directory directly, as its operator: whoever can read the directory (it holds the
sealing key) is trusted, so they need no Handle credentials. Remote clients use the HTTP API.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from bench.cli import add_subcommand as add_bench_subcommand
from registry.bootstrap import new_secret, prefix_values
from registry.errors import HandleError
from registry.model.identifiers import check_prefix, parse, prefix_handle
from registry.model.jsonvalues import value_to_json
from registry.model.values import Value
from registry.store.factory import (
    SQLITE_SCHEME,
    StoreConfigError,
    check_location,
    redact_location,
    sqlite_problem,
    without_password,
)
from resolver import __version__, admincmd, auditcmd, keycmds, lifecyclecmds, remotecmds, statuscmd
from resolver.cliutil import (
    data_dir,
    non_negative_int,
    opened_node,
    operator,
    positive_int,
    spec_values,
    store_flag,
)
from resolver.config import Config, ConfigError, load, store_location, write_initial
from resolver.dns.command import add_parser as add_dns_name_parser
from resolver.listeners import KINDS as LISTENER_KINDS
from resolver.listeners import Serving
from resolver.migrate import add_parser as add_migrate_parser
from sync import cli as sync_cli
from sync.toplevel import cli as toplevel_cli

if TYPE_CHECKING:
    from resolver.node import Node

# The node, the HTTP code and aiohttp are imported by the commands that use them: bulk
# import's worker processes import this (the main) module again, so it must stay cheap.

Command = Callable[[argparse.Namespace], Awaitable[int]]


def _config(args: argparse.Namespace, **flags: Any) -> Config:
    return load(data_dir(args), {"store": store_flag(args), **flags})


async def _with_node(args: argparse.Namespace, fn: Callable[[Node], Awaitable[int]]) -> int:
    async with opened_node(args) as node:
        return await fn(node)


def _print_json(obj: Any, out: TextIO = sys.stdout) -> None:
    out.write(json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


# ------------------------------------------------------------------ commands


def _create_data_dir(data: Path, prefix: str, name: str, store: str | None) -> None:
    data.mkdir(parents=True, exist_ok=True)
    if (data / "idnode.toml").exists():
        raise ConfigError(f"{data} already holds a node (idnode.toml exists)")
    os.chmod(data, 0o700)  # the directory holds the sealing key
    write_initial(data, prefix, name, store)


async def _check_new_store(location: str) -> None:
    """Refuse, before anything is written, a store that cannot be opened or that holds a
    registry already (another host's: its hosts share that host's data directory)."""
    from registry.store.factory import open_store

    try:
        store = await open_store(location, readers=1)
    except StoreConfigError as exc:
        raise ConfigError(f"store: {exc}") from None
    try:
        if await store.count():
            raise ConfigError(
                f"store {redact_location(location)} already holds a registry: to serve it from "
                "another host, copy the data directory of a host that serves it"
            )
    finally:
        await store.close()


def _in_data_dir(sqlite_location: str, data: Path) -> bool:
    """Whether the file is made in the data directory itself (made by init first)."""
    parent = os.path.dirname(os.path.abspath(sqlite_location.removeprefix(SQLITE_SCHEME)))
    return parent == os.path.abspath(data)


async def cmd_init(args: argparse.Namespace) -> int:
    data = data_dir(args)
    check_prefix(args.prefix)
    config_store = store_flag(args)
    if config_store is not None:
        location = store_location(config_store, data)
        try:
            backend = check_location(location)
        except StoreConfigError as exc:
            raise ConfigError(f"store: {exc}") from None
        if backend != "sqlite":  # a file is made with the directory
            await _check_new_store(location)
        elif (problem := sqlite_problem(location)) and not _in_data_dir(location, data):
            raise ConfigError(f"store: {problem}")  # before anything is written
    _create_data_dir(
        data, args.prefix, args.name or f"idnode {args.prefix}", without_password(config_store)
    )
    secret = args.admin_secret or new_secret()
    from resolver.node import Node

    flags = {"signing_alg": args.signing_alg, "store": config_store}
    node = await Node.open(load(data, flags), create_keys=True, serving=False)
    try:
        await node.registry.import_records(
            [(parse(prefix_handle(args.prefix)), prefix_values(args.prefix, secret))],
            operator("init"),
        )
        await node.ensure_keys_published()
        root = node.keyring.key(0)
    finally:
        await node.close()
    print(f"Initialised node for prefix {args.prefix} in {data}")
    if config_store is not None:
        print(f"Store: {redact_location(config_store)}")
        if without_password(config_store) != config_store:
            print(
                "The store's password is not written to idnode.toml: give it to later "
                "commands with PGPASSWORD or ~/.pgpass"
            )
    print(f"Node admin identity: 300:{prefix_handle(args.prefix)}")
    print(
        f"Signing keys ({root.alg}) in {data / 'keys'}; trust root {root.kid} "
        "('idnode keys show' prints it for clients)"
    )
    if not args.admin_secret:
        print(f"Node admin secret (shown once, keep it safe): {secret}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Not a coroutine: the server owns its event loop (uvloop, one per worker).

    The composition: the serving shell runs the node with the sync agent as its service
    (reporting to the top-level, configuring cross-node forwarding) and every listener the
    configuration asks for."""
    from resolver.node import require_keys
    from resolver.server import run
    from sync.agent import SyncAgent

    config = _config(
        args,
        workers=args.workers,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        redis_url=args.redis,
        dns_zone=args.dns_zone,
        log_format=args.log_format,
        access_log=True if args.access_log else None,
        ready_requires_redis=args.ready_requires_redis,
        store_replicas=args.store_replicas,
        **{kind.name: getattr(args, kind.name) for kind in LISTENER_KINDS},
    )
    require_keys(config)  # here too: refused once, before any worker starts
    if args.store:
        # Workers are started with the flags they need, not this one: they find the store
        # in the environment they inherit.
        os.environ["IDNODE_STORE"] = args.store
    if args.store_replicas:
        os.environ["IDNODE_STORE_REPLICAS"] = args.store_replicas
    run(config, services=[SyncAgent], serving=Serving(reuse_port=args.reuse_port))
    return 0


async def cmd_get(args: argparse.Namespace) -> int:
    from resolver.core import Query

    async def go(node: Node) -> int:
        answer = await node.resolver.resolve(
            Query(args.handle, tuple(args.index or ()), tuple(args.type or ()))
        )
        _print_json(
            {
                "responseCode": answer.outcome.response_code,
                "handle": args.handle,
                "values": [value_to_json(v) for v in answer.values],
            }
        )
        return 0

    return await _with_node(args, go)


async def cmd_resolve(args: argparse.Namespace) -> int:
    """Resolve over the native protocol (UDP, TCP if UDP brings no whole reply)."""
    from resolver.native import client
    from resolver.native.messages import ErrorResponse, ResolutionResponse
    from resolver.native.settings import parse_address

    try:
        host, port = parse_address(args.native)
    except ValueError as exc:
        raise ConfigError(f"--native: {exc}") from None
    try:
        reply = await client.resolve(
            host,
            port,
            args.handle,
            tuple(args.index or ()),
            tuple(args.type or ()),
            certify=args.certify,
            tcp=args.tcp,
        )
        verified = None
        if args.certify:
            site = await client.site_info(host, port, tcp=args.tcp)
            key = client.server_key(getattr(site.body, "site", b""))
            verified = client.verified(reply, key)
    except client.NativeClientError as exc:
        raise ConfigError(str(exc)) from None
    rc, body = reply.header.response_code, reply.body
    if not isinstance(body, ResolutionResponse):
        text = body.message if isinstance(body, ErrorResponse) else ""
        print(f"idnode: {args.handle}: {text or 'refused'} (responseCode {rc})", file=sys.stderr)
        return 2
    out: dict[str, Any] = {"responseCode": rc, "handle": body.handle}
    out["values"] = [value_to_json(v) for v in body.values]
    if verified is not None:
        out["certified"] = verified  # signed with the key of the server's site record
    _print_json(out)
    return 0 if verified is not False else 3


def _values_arg(args: argparse.Namespace) -> list[Value]:
    """The values of ``put``: at least one (an empty record is never what an operator
    meant; the HTTP API still takes one, as the reference does)."""
    values = _json_values(args.json) if args.json is not None else spec_values(args.value)
    if not values:
        raise ConfigError("no values to put: give --value [INDEX:]TYPE=DATA or --json FILE")
    return values


def _json_values(path: str) -> list[Value]:
    text = sys.stdin.read() if path == "-" else Path(path).read_text("utf-8")
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--json: invalid JSON: {exc}") from None
    from registry.model.jsonbody import values_from_body

    values, _ = values_from_body(body)
    return values


async def cmd_put(args: argparse.Namespace) -> int:
    values = _values_arg(args)
    if remotecmds.remote(args):
        return await remotecmds.put(args, values)

    async def go(node: Node) -> int:
        ident = parse(args.handle)
        overwrite, caller = not args.no_overwrite, operator()
        if args.add:
            result = await node.registry.put_values(
                ident, values, overwrite=overwrite, caller=caller
            )
        else:
            result = await node.registry.put_record(
                ident, values, overwrite=overwrite, caller=caller
            )
        print(f"{'created' if result.created else 'updated'} {result.handle}")
        return 0

    return await _with_node(args, go)


async def cmd_delete(args: argparse.Namespace) -> int:
    if remotecmds.remote(args):
        return await remotecmds.delete(args)

    async def go(node: Node) -> int:
        ident = parse(args.handle)
        if args.index:
            await node.registry.delete_values(ident, args.index, caller=operator())
        else:
            await node.registry.delete_record(ident, caller=operator())
        print(f"deleted {args.handle}" + (f" values {args.index}" if args.index else ""))
        return 0

    return await _with_node(args, go)


async def cmd_prefix_create(args: argparse.Namespace) -> int:
    check_prefix(args.prefix)
    secret = args.admin_secret or new_secret()

    async def go(node: Node) -> int:
        ident = parse(prefix_handle(args.prefix))
        values = prefix_values(args.prefix, secret)
        await node.registry.put_record(ident, values, overwrite=False, caller=operator())
        print(f"Created prefix {args.prefix}; admin identity 300:{ident.text}")
        if not args.admin_secret:
            print(f"Admin secret (shown once, keep it safe): {secret}")
        return 0

    return await _with_node(args, go)


async def cmd_prefix_list(args: argparse.Namespace) -> int:
    async def go(node: Node) -> int:
        for handle in await node.listings.prefixes():
            print(handle.split("/", 1)[1])
        return 0

    return await _with_node(args, go)


def _count_lines(path: str) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def _open_output(path: str | None) -> TextIO:
    return sys.stdout if path in (None, "-") else open(path, "w", encoding="utf-8")


def _lines(path: str) -> Iterator[bytes]:
    # Bytes: the JSON parser checks the UTF-8, so a bad byte is a bad line, with its number.
    if path == "-":
        yield from sys.stdin.buffer
    else:
        with open(path, "rb") as f:
            yield from f


async def cmd_import(args: argparse.Namespace) -> int:
    async def go(node: Node) -> int:
        total = _count_lines(args.file) if args.file != "-" and not args.quiet else None
        from resolver.transfer import import_lines

        result = await import_lines(
            node.registry,
            _lines(args.file),
            batch=args.batch_size,
            progress=not args.quiet,
            total=total,
            workers=args.workers,
            caller=operator("import"),
        )
        print(
            f"imported {result.lines} records in {result.batches} batches: "
            f"{result.created} created, {result.replaced} replaced, "
            f"{result.unchanged} unchanged ({result.rate:,.0f} records/s)"
        )
        return 0

    return await _with_node(args, go)


async def cmd_export(args: argparse.Namespace) -> int:
    async def go(node: Node) -> int:
        out = _open_output(args.output)
        try:
            from resolver.transfer import export_records

            n = await export_records(node.store, out)
        finally:
            if out is not sys.stdout:
                out.close()
        print(f"exported {n} records", file=sys.stderr)
        return 0

    return await _with_node(args, go)


async def cmd_demo(args: argparse.Namespace) -> int:
    from resolver.demo import make_demo

    return await make_demo(data_dir(args), store_flag(args))


# ------------------------------------------------------------------ parser


def _data_arg(p: argparse.ArgumentParser) -> None:
    """The options of every command that opens a node: its data directory and its store."""
    p.add_argument("--data", metavar="DIR", help="the node's data directory (or IDNODE_DATA)")
    p.add_argument(
        "--store",
        metavar="LOCATION",
        help="the registry store: postgresql://USER@HOST:PORT/DB, or a SQLite file path "
        "(default: the store setting, else DIR/registry.sqlite3); init writes it to the "
        "config file, without any password",
    )


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="idnode",
        description="idnode: a secondary node of the industrial internet "
        "identifier resolution system (Handle-compatible).",
    )
    root.add_argument("--version", action="version", version=f"idnode {__version__}")
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "init",
        help="create a node for a secondary prefix",
        description="Create a node in DIR: config file, sealing key, store and "
        "the prefix handle 0.NA/PREFIX with its admin (300:0.NA/PREFIX).",
    )
    _data_arg(p)
    p.add_argument("--prefix", required=True, help="the node's secondary prefix, e.g. 88.118")
    p.add_argument(
        "--admin-secret", help="the node admin's secret (default: generate and print it once)"
    )
    p.add_argument("--name", help="a name for the node (shown on its pages)")
    p.add_argument(
        "--signing-alg",
        choices=("EdDSA", "ES256", "RS256"),
        help="algorithm of the node's signing keys (default EdDSA; see README)",
    )
    p.set_defaults(fn=cmd_init)

    p = sub.add_parser(
        "serve",
        help="serve the node over HTTP",
        description="Serve the Handle HTTP JSON API, reverse lookup and "
        "proxy-style resolution until SIGINT/SIGTERM.",
    )
    _data_arg(p)
    for kind in LISTENER_KINDS:  # one flag per transport: --http HOST:PORT, ...
        p.add_argument(f"--{kind.name}", metavar="HOST:PORT", help=kind.help)
    p.add_argument(
        "--dns-zone",
        metavar="ZONE",
        help="the DNS zone identifiers are named under (default from config: id.example.)",
    )
    p.add_argument(
        "--workers", type=positive_int, help="worker processes sharing the listeners' ports"
    )
    p.add_argument(
        "--store-replicas",
        metavar="URL,URL",
        help="PostgreSQL read replicas (streaming standbys) that resolution reads may use, "
        "held to every write this host heard of (default from config: none)",
    )
    p.add_argument(
        "--redis",
        metavar="URL",
        help="shared cache: redis://, rediss://, redis+cluster://h:p,h:p, "
        "redis+sentinel://h:p,h:p/service (default: in-process cache only)",
    )
    p.add_argument("--tls-cert", help="PEM certificate: serve HTTPS")
    p.add_argument("--tls-key", help="PEM private key for --tls-cert")
    p.add_argument(
        "--ready-requires-redis",
        action=argparse.BooleanOptionalAction,
        help="whether Redis being down makes /readyz answer 503 (default: yes; "
        "ready_requires_redis in the config; see README 'Operations')",
    )
    p.add_argument(
        "--access-log",
        action="store_true",
        help="log a line per request (or a sample of them: access_log_sample in the config)",
    )
    p.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="text (default) or json: one JSON object per line",
    )
    p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(fn=cmd_serve)

    p = sub.add_parser(
        "get",
        help="resolve an identifier from the local store",
        description="Resolve HANDLE from the data directory (public values).",
    )
    _data_arg(p)
    p.add_argument("handle")
    p.add_argument("--type", action="append", help="only values of this type (repeatable)")
    p.add_argument(
        "--index", type=positive_int, action="append", help="only this index (repeatable)"
    )
    p.set_defaults(fn=cmd_get)

    p = sub.add_parser(
        "resolve",
        help="resolve an identifier from a server over the native protocol",
        description="Resolve HANDLE at a Handle server's native interface (UDP, then TCP "
        "if the reply does not arrive whole over UDP); public values, as JSON.",
    )
    p.add_argument("handle")
    p.add_argument(
        "--native", required=True, metavar="HOST:PORT", help="the server (port 2641 if omitted)"
    )
    p.add_argument("--type", action="append", help="only values of this type (repeatable)")
    p.add_argument(
        "--index", type=positive_int, action="append", help="only this index (repeatable)"
    )
    p.add_argument(
        "--certify",
        action="store_true",
        help="ask for a signed reply and check it with the key of the server's site record "
        "(exit 3 if it does not verify)",
    )
    p.add_argument("--tcp", action="store_true", help="use TCP only")
    p.set_defaults(fn=cmd_resolve)
    admincmd.add_parser(sub)  # `idnode admin`: administration over the native protocol

    p = sub.add_parser(
        "put",
        help="create or replace an identifier",
        description="Create HANDLE or replace its values, as the local operator, or on "
        "a remote node with --server/--identity/--key. Values come from --value or --json.",
    )
    _data_arg(p)
    p.add_argument("handle")
    given = p.add_mutually_exclusive_group()
    given.add_argument(
        "--value",
        action="append",
        metavar="[INDEX:]TYPE=DATA",
        help="a string value, e.g. 1:URL=https://example.org/x (repeatable)",
    )
    given.add_argument(
        "--json",
        metavar="FILE",
        help="values as the HTTP API takes them "
        '({"values":[...]} or an array); - reads standard input',
    )
    p.add_argument("--add", action="store_true", help="add/replace only these values")
    p.add_argument("--no-overwrite", action="store_true", help="fail if it already exists")
    remotecmds.add_arguments(p)
    p.set_defaults(fn=cmd_put)

    p = sub.add_parser(
        "delete",
        help="delete an identifier or some of its values",
        description="Delete HANDLE, or only the values at --index, as the local operator "
        "or on a remote node with --server/--identity/--key.",
    )
    _data_arg(p)
    p.add_argument("handle")
    p.add_argument(
        "--index", type=positive_int, action="append", help="delete only this value (repeatable)"
    )
    remotecmds.add_arguments(p)
    p.set_defaults(fn=cmd_delete)

    p = sub.add_parser("prefix", help="enterprise prefixes", description="Manage prefixes.")
    psub = p.add_subparsers(dest="prefix_command", required=True, metavar="ACTION")
    pc = psub.add_parser(
        "create",
        help="allocate an enterprise prefix (active at once)",
        description="Create 0.NA/PREFIX with its own admin (300:0.NA/PREFIX) and secret.",
    )
    _data_arg(pc)
    pc.add_argument("prefix", help="e.g. 88.118.8")
    pc.add_argument("--admin-secret", help="the enterprise admin's secret (default: generate)")
    pc.set_defaults(fn=cmd_prefix_create)
    pl = psub.add_parser("list", help="list prefixes", description="List the node's prefixes.")
    _data_arg(pl)
    pl.set_defaults(fn=cmd_prefix_list)

    p = sub.add_parser(
        "import",
        help="import records from JSON Lines",
        description='Import {"handle":..., "values":[...]} lines; one '
        "transaction per batch; re-running the same file changes nothing.",
    )
    _data_arg(p)
    p.add_argument("file", help="JSON Lines file, or - for standard input")
    p.add_argument(
        "--batch-size", type=positive_int, default=1000, help="records per transaction (1000)"
    )
    p.add_argument(
        "--workers",
        type=non_negative_int,
        help="processes parsing and signing records (default: one per core; 0: none, "
        "all in the importing process)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(fn=cmd_import)

    p = sub.add_parser(
        "export",
        help="export every record as JSON Lines",
        description="Write every record as JSON Lines (secrets stay sealed).",
    )
    _data_arg(p)
    p.add_argument("-o", "--output", help="file to write (default: standard output)")
    p.set_defaults(fn=cmd_export)

    p = sub.add_parser(
        "demo",
        help="create a demo node with sample identifiers",
        description="Initialise DIR (if needed) as a demo node for 88.118 with "
        "enterprise prefix 88.118.8 and a few product identifiers.",
    )
    _data_arg(p)
    p.set_defaults(fn=cmd_demo)

    keycmds.add_parsers(sub, _data_arg)
    lifecyclecmds.add_parsers(sub, _data_arg)  # `idnode enterprise`, `idnode template`
    statuscmd.add_parser(sub, _data_arg)  # `idnode status`: a serving node's readiness
    auditcmd.add_parsers(sub, _data_arg)  # `idnode audit`: list, export, verify
    add_dns_name_parser(sub)  # `idnode dns-name`: handle <-> DNS name (resolver/dns/)
    add_migrate_parser(sub)  # `idnode migrate`: copy the registry between stores
    sync_cli.add_parsers(sub, _data_arg)  # `idnode sync`: register, status (sync/)
    toplevel_cli.add_parsers(sub)  # `idnode toplevel`: the mock top-level node (sync/)
    add_bench_subcommand(sub)  # `idnode bench`: the benchmark harness (bench/)
    return root


async def _awaited(result: Awaitable[int]) -> int:
    return await result


def said(exc: ConfigError | HandleError, handle: str | None = None) -> str:
    """What the CLI says of a failure: its message, or for a Handle error that has none
    (``HandleNotFound``) its name in words and its responseCode; a Handle error is
    prefixed by the handle the command was given, if any."""
    if not isinstance(exc, HandleError):
        return str(exc)  # the configuration or data directory, not the handle
    text = str(exc)
    if exc.message is None:
        words = re.sub(r"(?<!^)(?=[A-Z])", " ", type(exc).__name__).lower()
        text = f"{words} (responseCode {exc.response_code})"
    return f"{handle}: {text}" if handle else text


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    fn: Command | Callable[[argparse.Namespace], int] = args.fn
    try:
        result = fn(args)
        if isinstance(result, int):
            return result
        return asyncio.run(_awaited(result))
    except (ConfigError, HandleError) as exc:
        print(f"idnode: {said(exc, getattr(args, 'handle', None))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `idnode export | head`: the reader left, nothing to say
        sys.stderr.close()
        return 141
    except OSError as exc:  # a file that cannot be read or written, a port already taken
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"idnode: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
