"""``idnode sync register|status``: the node's link to its top-level node."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from resolver.cliutil import opened_node
from resolver.config import ConfigError

# The node and aiohttp are imported by the commands that use them: importing the command
# line stays cheap (bulk import's worker processes import it again).


async def cmd_register(args: argparse.Namespace) -> int:
    from sync.register import RegistrationError, register

    async with opened_node(args) as node:
        try:
            reg = await register(node, args.toplevel, args.app_id, args.public_url)
        except RegistrationError as exc:
            raise ConfigError(f"registration failed: {exc}") from None
    print(f"registered {', '.join(reg.prefixes)} with {reg.toplevel} (app {reg.app_id})")
    print(f"published at {reg.public_url}; trust root {reg.root['identity']}")
    return 0


def _when(t: float | None) -> str:
    if t is None:
        return "never"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)) + f" ({time.time() - t:.0f} s ago)"


async def cmd_status(args: argparse.Namespace) -> int:
    from sync.status import status_of

    async with opened_node(args) as node:
        st = await status_of(node)
    if args.json:
        print(json.dumps(st, indent=2))
        return 0
    if st["registered"]:
        print(f"registered:     yes, app {st['app_id']} at {st['toplevel']}")
        print(f"published at:   {st['public_url']}")
    else:
        print("registered:     no (idnode sync register --toplevel URL --app-id ID)")
    age = st["oldest_pending_age"]
    print(f"pending:        {st['pending']}" + (f" (oldest {age:.0f} s)" if age else ""))
    print(f"refused:        {st['dead']}")
    print(f"delivered:      {st['delivered']}")
    print(f"last success:   {_when(st['last_success'])}")
    error = st["last_error"]
    print(f"last error:     {error + ' at ' + _when(st['last_error_at']) if error else 'none'}")
    print(f"last heartbeat: {_when(st['last_heartbeat'])}")
    for prefix, counts in st["stats"].items():
        figures = ", ".join(f"{k} {v}" for k, v in counts.items())
        print(f"stats {prefix}: {figures}")
    return 0


def add_parsers(sub: Any, data_arg: Callable[[argparse.ArgumentParser], None]) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "sync",
        help="the link to the top-level node",
        description="Register with the top-level node and see what is being reported to it.",
    )
    ssub = p.add_subparsers(dest="sync_cmd", required=True, metavar="COMMAND")
    r = ssub.add_parser(
        "register",
        help="register the node with its top-level node",
        description="Register this node's prefixes with the top-level node under an "
        "application id its operator created. The top-level certifies the node's root key; "
        "afterwards the serving node reports prefixes, statistics and heartbeats by itself.",
    )
    data_arg(r)
    r.add_argument("--toplevel", required=True, metavar="URL", help="top-level node base URL")
    r.add_argument("--app-id", required=True, help="application id from the top-level operator")
    r.add_argument(
        "--public-url",
        metavar="URL",
        help="URL other nodes reach this node at (default: public_url, else from http)",
    )
    r.set_defaults(fn=cmd_register)
    s = ssub.add_parser(
        "status",
        help="registration, outbox and statistics",
        description="Show whether the node is registered, what waits in the outbox, the "
        "last delivery and error, and the node's own statistics per prefix.",
    )
    data_arg(s)
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(fn=cmd_status)
