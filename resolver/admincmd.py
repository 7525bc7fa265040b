"""``idnode admin``: administer a Handle server over the native protocol (TCP), as an
identity proven by its HS_SECKEY secret or its HS_PUBKEY private key (challenge-response).

Prints the outcome as JSON; exits 0 on success, 2 when the server refuses (its responseCode
and message on stderr) or cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from registry.auth import parse_identity
from resolver.cliutil import positive_int, spec_values
from resolver.config import ConfigError

ACTIONS = ("create", "delete", "add", "modify", "remove", "list")


def add_parser(sub: Any) -> None:
    """``idnode admin`` on the subcommands ``sub``."""
    p = sub.add_parser(
        "admin",
        help="administer identifiers at a server over the native protocol",
        description="Create, delete, add / modify / remove values of, or list identifiers at "
        "a Handle server's native interface (TCP), authenticating by challenge-response as "
        "--identity with its HS_SECKEY secret (--secret-file) or the private key of its "
        "HS_PUBKEY (--key, a PEM file: RSA or DSA).",
    )
    p.add_argument(
        "--native", required=True, metavar="HOST:PORT", help="the server (port 2641 if omitted)"
    )
    p.add_argument(
        "--identity", required=True, metavar="INDEX:HANDLE", help="e.g. 300:0.NA/88.118.8"
    )
    proof = p.add_mutually_exclusive_group(required=True)
    proof.add_argument("--secret-file", metavar="FILE", help="a file holding the secret")
    proof.add_argument("--key", metavar="FILE", help="a PEM private key file")
    p.add_argument(
        "--key-passphrase-file", metavar="FILE", help="a file holding the --key's passphrase"
    )
    p.add_argument("action", choices=ACTIONS, help="what to do")
    p.add_argument("handle", help="the identifier (for list: the prefix, e.g. 0.NA/88.118.8)")
    p.add_argument(
        "--value",
        action="append",
        metavar="[INDEX:]TYPE=DATA",
        help="a value for create, add, modify (repeatable)",
    )
    p.add_argument(
        "--index", type=positive_int, action="append", help="an index to remove (repeatable)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="create: replace an existing identifier; add: replace values at the same index",
    )
    p.set_defaults(fn=cmd_admin)


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise ConfigError(f"{what}: {exc}") from None


def _body(args: argparse.Namespace) -> Any:
    from resolver.native.messages import (
        AddValueRequest,
        CreateHandleRequest,
        DeleteHandleRequest,
        ListHandlesRequest,
        ModifyValueRequest,
        RemoveValueRequest,
    )

    handle, action = args.handle, args.action
    if action in ("create", "add", "modify"):
        values = tuple(spec_values(args.value))
        if not values:
            raise ConfigError(f"{action}: give the values with --value [INDEX:]TYPE=DATA")
        cls = {"create": CreateHandleRequest, "add": AddValueRequest}.get(
            action, ModifyValueRequest
        )
        return cls(handle, values)
    if action == "remove":
        if not args.index:
            raise ConfigError("remove: give the indexes with --index N")
        return RemoveValueRequest(handle, tuple(args.index))
    if action == "list":
        return ListHandlesRequest(handle)
    return DeleteHandleRequest(handle)


async def cmd_admin(args: argparse.Namespace) -> int:
    from resolver.native.adminclient import PrivateKey, Proof, SecretKey, administer
    from resolver.native.client import NativeClientError
    from resolver.native.codes import OVRW, ResponseCode
    from resolver.native.messages import ErrorResponse, ListHandlesResponse
    from resolver.native.settings import parse_address

    try:
        host, port = parse_address(args.native)
    except ValueError as exc:
        raise ConfigError(f"--native: {exc}") from None
    identity = parse_identity(args.identity)
    proof: Proof
    try:
        if args.secret_file:
            proof = SecretKey(identity, _read(args.secret_file, "--secret-file"))
        else:
            passphrase = None
            if args.key_passphrase_file:
                passphrase = _read(args.key_passphrase_file, "--key-passphrase-file")
            proof = PrivateKey.load(identity, Path(args.key), passphrase)
        flags = OVRW if args.overwrite else 0
        replies = await administer(host, port, _body(args), proof, flags=flags)
    except NativeClientError as exc:
        raise ConfigError(str(exc)) from None
    last = replies[-1]
    rc = last.header.response_code
    if rc != ResponseCode.SUCCESS:
        text = last.body.message if isinstance(last.body, ErrorResponse) else ""
        print(f"idnode: {args.handle}: {text or 'refused'} (responseCode {rc})", file=sys.stderr)
        return 2
    out: dict[str, Any] = {"responseCode": rc, "handle": args.handle}
    if args.action == "list":
        out["handles"] = [
            h for r in replies if isinstance(r.body, ListHandlesResponse) for h in r.body.handles
        ]
    print(json.dumps(out, ensure_ascii=False, indent=2))
    return 0
