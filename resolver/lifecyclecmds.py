"""``idnode enterprise apply|list|show|approve|reject|suspend|reactivate|withdraw`` and
``idnode template put|get|list``: the enterprise prefix lifecycle and metadata templates on
the local node (``--data``), as the local operator — what the HTTP API does for a node admin
(:mod:`resolver.http.lifecycle`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from resolver.cliutil import opened_node, positive_int

DataArg = Callable[[argparse.ArgumentParser], None]
ACTIONS = {
    "approve": "approve a pending application: its prefix handle is created",
    "reject": "reject a pending application (with --reason)",
    "suspend": "suspend an active prefix (with --reason): its identifiers stop resolving",
    "reactivate": "make a suspended prefix active again",
    "withdraw": "withdraw a prefix for good (with --reason): its prefix handle is deleted",
}


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False))


async def cmd_apply(args: argparse.Namespace) -> int:
    from registry.bootstrap import new_secret

    body: dict[str, Any] = {
        "prefix": args.prefix,
        "name": args.name,
        "organisation": args.organisation,
        "contact": args.contact,
        "industry": args.industry,
    }
    generated = None
    if args.public_key:
        body["publicKey"] = _key_file(Path(args.public_key))
    else:
        generated = None if args.secret else new_secret()
        body["secret"] = args.secret or generated
    async with opened_node(args) as node:
        made = await node.enterprises.apply(body)
    _print(made.public())
    if generated:
        print(f"Admin secret (shown once, keep it safe): {generated}", file=sys.stderr)
    return 0


def _key_file(path: Path) -> Any:
    """A public key file: a JWK (JSON) or an HS_PUBKEY blob in base64."""
    text = path.read_text("utf-8").strip()
    if text.startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
    return text


async def cmd_list(args: argparse.Namespace) -> int:
    async with opened_node(args) as node:
        found = await node.enterprises.list_all(None, args.state)
    if args.json:
        _print([e.public() for e in found])
        return 0
    for e in found:
        print(f"{e.prefix}\t{e.state}\t{e.organisation or '-'}\t{e.reason}".rstrip())
    return 0


async def cmd_show(args: argparse.Namespace) -> int:
    async with opened_node(args) as node:
        _print((await node.enterprises.show(args.prefix)).public())
    return 0


async def cmd_act(args: argparse.Namespace) -> int:
    async with opened_node(args) as node:
        made = await node.enterprises.act(args.prefix, args.action, args.reason or "")
    print(f"{made.prefix}: {made.state}")
    return 0


def cmd_template_put(args: argparse.Namespace) -> Coroutine[Any, Any, int]:
    """The file is read here, before the event loop runs."""
    from registry.errors import ProtocolError

    text = Path(args.file).read_text("utf-8") if args.file != "-" else sys.stdin.read()
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"{args.file}: not JSON ({exc})") from None
    return _template_put(args, body)


async def _template_put(args: argparse.Namespace, body: Any) -> int:
    async with opened_node(args) as node:
        made = await node.templates.put(args.name, body)
        print(f"{node.templates.handle(made.name)}: version {made.version}")
    return 0


async def cmd_template_get(args: argparse.Namespace) -> int:
    async with opened_node(args) as node:
        _print((await node.templates.get(args.name, args.version)).to_json())
    return 0


async def cmd_template_list(args: argparse.Namespace) -> int:
    async with opened_node(args) as node:
        for t in await node.templates.list_all():
            print(f"{t.name}\t{t.version}\t{t.description}".rstrip())
    return 0


def add_parsers(sub: Any, data_arg: DataArg) -> None:
    p = sub.add_parser(
        "enterprise",
        help="the enterprise prefix lifecycle",
        description="Applications for enterprise prefixes and the node admin's decisions: "
        "pending -> approve|reject; active -> suspend -> reactivate; active|suspended -> "
        "withdraw. Works on the local node in --data, as its operator. ('idnode prefix "
        "create' is the node admin's shortcut: an active prefix at once.)",
    )
    esub = p.add_subparsers(dest="enterprise_command", required=True, metavar="ACTION")
    a = esub.add_parser(
        "apply",
        help="file an application for a prefix",
        description="File an application (state pending) for an enterprise prefix under "
        "the node's. The enterprise admin's credential is a secret (given, or made and "
        "shown once) or a public key file.",
    )
    data_arg(a)
    a.add_argument("--prefix", required=True, help="e.g. 88.118.20")
    for name in ("name", "organisation", "contact", "industry"):
        a.add_argument(f"--{name}", required=True)
    cred = a.add_mutually_exclusive_group()
    cred.add_argument("--secret", help="the enterprise admin's secret (default: made)")
    cred.add_argument(
        "--public-key", metavar="FILE", help="the admin's public key: a JWK or HS_PUBKEY base64"
    )
    a.set_defaults(fn=cmd_apply)
    ls = esub.add_parser(
        "list", help="list enterprises", description="List the enterprises and their states."
    )
    data_arg(ls)
    ls.add_argument("--state", choices=("pending", "active", "suspended", "rejected", "withdrawn"))
    ls.add_argument("--json", action="store_true", help="print JSON with the history")
    ls.set_defaults(fn=cmd_list)
    sh = esub.add_parser(
        "show", help="show one enterprise", description="Print one enterprise as JSON."
    )
    data_arg(sh)
    sh.add_argument("prefix")
    sh.set_defaults(fn=cmd_show)
    for action, text in ACTIONS.items():
        ap = esub.add_parser(action, help=text, description=text[0].upper() + text[1:] + ".")
        data_arg(ap)
        ap.add_argument("prefix")
        ap.add_argument("--reason", help="why (required to reject, suspend, withdraw)")
        ap.set_defaults(fn=cmd_act, action=action)

    p = sub.add_parser(
        "template",
        help="metadata templates",
        description="Metadata templates: each put makes a new version, published in the "
        "record PREFIX/TEMPLATE.NAME.",
    )
    tsub = p.add_subparsers(dest="template_command", required=True, metavar="ACTION")
    tp = tsub.add_parser(
        "put",
        help="add a template version",
        description='Add a version of template NAME from FILE (JSON: {"fields": [...]}; '
        "'-' reads standard input).",
    )
    data_arg(tp)
    tp.add_argument("name")
    tp.add_argument("file")
    tp.set_defaults(fn=cmd_template_put)
    tg = tsub.add_parser(
        "get", help="print a template", description="Print a template version as JSON."
    )
    data_arg(tg)
    tg.add_argument("name")
    tg.add_argument("--version", type=positive_int, help="that version (default: the newest)")
    tg.set_defaults(fn=cmd_template_get)
    tl = tsub.add_parser(
        "list", help="list templates", description="List templates, newest versions."
    )
    data_arg(tl)
    tl.set_defaults(fn=cmd_template_list)
