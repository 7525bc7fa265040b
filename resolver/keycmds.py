"""``idnode keys show|rotate|login`` and ``idnode verify``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resolver.cliutil import opened_node, operator, positive_int
from resolver.config import ConfigError

LOGIN_PASSPHRASE_ENV = "IDNODE_LOGIN_KEY_PASSPHRASE"  # encrypts/decrypts a login key file

if TYPE_CHECKING:
    from registry.signing.verify import Report

# aiohttp, the store and the verifier are imported by the commands that use them: `idnode`
# builds its parser from this module, and bulk import's worker processes import `idnode`'s
# main module again, so importing it must stay cheap.


async def cmd_keys_show(args: argparse.Namespace) -> int:
    async with opened_node(args) as node:
        ring = node.keyring
        state = ring.load_state()
        root = ring.key(0)
        if args.root:
            print(json.dumps(root.public_jwk()))
            return 0
        out = {
            "root": {
                "identity": ring.root_identity,
                "alg": root.alg,
                "kid": root.kid,
                "jwk": root.public_jwk(),
            },
            "current": {"identity": ring.identity(state.current), "n": state.current},
            "retired": [{"identity": ring.identity(r["n"]), **r} for r in state.retired],
            "rotation": state.rotation,
        }
        print(json.dumps(out, indent=2))
        return 0


async def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from registry.rotation import rotate

    async with opened_node(args) as node:
        report = await rotate(
            node.registry,
            node.keyring,
            node.ensure_keys_published,
            batch=args.batch_size,
            progress=not args.quiet,
            validity=node.config.signature_validity,
            caller=operator(),
        )
    how = "resumed and finished" if report.resumed else "done"
    print(
        f"rotation {how}: signing with {node.keyring.identity(report.new_key)}; "
        f"{report.resigned} records re-signed"
    )
    return 0


def cmd_keys_login(args: argparse.Namespace) -> int:
    """A key pair for signing in with ``Authorization: Handle``: the private key to
    ``--out``, and its public half printed as the HS_PUBKEY value to publish. (Not a
    coroutine: there is nothing to wait for.)"""
    import os

    from registry.model.jsonvalues import value_to_json
    from registry.model.pubkey import pubkey_from_jwk
    from registry.model.values import HS_PUBKEY, Value
    from registry.signing.keys import SigningKey

    out = Path(args.out)
    if out.exists():
        raise ConfigError(f"{out} exists: not overwriting a key")
    key = SigningKey.generate(args.alg)
    passphrase = os.environ.get(LOGIN_PASSPHRASE_ENV)
    key.save(out, passphrase.encode() if passphrase else None)
    value = Value(args.index, HS_PUBKEY, pubkey_from_jwk(key.public_jwk()))
    print(json.dumps({"values": [value_to_json(value)]}))
    return 0


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def _print_report(handle: str, report: Report) -> None:
    print(f"{handle}: {'VERIFIED' if report.ok else 'NOT VERIFIED'}")
    for index, status in sorted(report.values.items()):
        print(f"  value {index}: {status}")
    for sig in report.signatures:
        print(f"  signature: {sig}")
    for reason in report.reasons:
        print(f"  ! {reason}")


async def cmd_verify(args: argparse.Namespace) -> int:
    import aiohttp

    from resolver.verification import (
        VerifyError,
        homed_or,
        http_fetch,
        load_trust_root,
        local_fetch,
        verify_with,
    )
    from sync.state import load_registration

    try:
        roots = [load_trust_root(Path(p)) for p in args.trust_root or ()]
        if args.server:
            if not roots:
                raise ConfigError(
                    "give the trust root with --trust-root FILE "
                    "(e.g. the output of 'idnode keys show --root')"
                )
            async with aiohttp.ClientSession() as session:
                report = await verify_with(http_fetch(session, args.server), args.handle, roots)
        else:
            async with opened_node(args) as node, aiohttp.ClientSession() as session:
                fetch = local_fetch(node)
                reg = load_registration(node.config.data_dir)
                if reg is not None:
                    # Registered: the chain ends at the top-level root, whose records (and
                    # other nodes' prefix handles) the top-level serves.
                    roots = roots or [reg.trust_root]
                    fetch = homed_or(node, fetch, http_fetch(session, reg.toplevel))
                elif not roots:  # verifying our own node: its root is the anchor
                    roots = [node.keyring.key(0).public_jwk()]
                report = await verify_with(fetch, args.handle, roots)
    except VerifyError as exc:
        print(f"idnode: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"handle": args.handle, **_plain(report)}, indent=2, default=str))
    else:
        _print_report(args.handle, report)
    return 0 if report.ok else 1


def add_parsers(sub: Any, data_arg: Any) -> None:
    p = sub.add_parser(
        "keys",
        help="the node's signing keys; login keys",
        description="Show or rotate the node's signing keys, or make a key pair to sign "
        "in with (login).",
    )
    ksub = p.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    ks = ksub.add_parser(
        "show",
        help="show the root and signing keys",
        description="Print the trust root and signing keys (public parts).",
    )
    data_arg(ks)
    ks.add_argument(
        "--root",
        action="store_true",
        help="print only the root's public JWK (a client's --trust-root file)",
    )
    ks.set_defaults(fn=cmd_keys_show)
    kr = ksub.add_parser(
        "rotate",
        help="new signing key; re-sign every record",
        description="Create a signing key, publish its certificate, switch "
        "writes to it and re-sign every record. Resumable: run it again "
        "after an interruption.",
    )
    data_arg(kr)
    kr.add_argument(
        "--batch-size", type=positive_int, default=500, help="records per transaction (500)"
    )
    kr.add_argument("--quiet", action="store_true", help="no progress bar")
    kr.set_defaults(fn=cmd_keys_rotate)
    kl = ksub.add_parser(
        "login",
        help="new key pair for signing in as an identity (HS_PUBKEY)",
        description="Write a new private key to --out (PEM, mode 0600; encrypted when "
        f"{LOGIN_PASSPHRASE_ENV} is set) and print its public half as an HS_PUBKEY value in "
        "the HTTP API's JSON. Publish it in the identity's handle, e.g. "
        "'idnode put 0.NA/88.118.8 --add --json FILE', then write remotely with "
        "'--server URL --identity 301:0.NA/88.118.8 --key KEYFILE'.",
    )
    kl.add_argument("--out", required=True, metavar="FILE", help="where to write the private key")
    kl.add_argument(
        "--alg",
        choices=("RS256", "ES256", "EdDSA"),
        default="RS256",
        help="key type: RS256 (RSA-2048, the one Handle.Net servers also check; default), "
        "ES256 (P-256) or EdDSA (Ed25519)",
    )
    kl.add_argument(
        "--index", type=positive_int, default=301, help="the HS_PUBKEY value's index (301)"
    )
    kl.set_defaults(fn=cmd_keys_login)

    p = sub.add_parser(
        "verify",
        help="verify a record's signatures",
        description="Resolve HANDLE (from --server, or the local node in "
        "--data) and check every digest, signature, validity period, "
        "certificate permission and the trust root. Exit 1 unless every "
        "value is verified.",
    )
    data_arg(p)
    p.add_argument("handle")
    p.add_argument("--server", metavar="URL", help="resolve over HTTP from this node")
    p.add_argument(
        "--trust-root",
        action="append",
        metavar="KEYFILE",
        help="a trusted root public key (JWK or PEM); repeatable. Default with "
        "--data: the local node's root",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(fn=cmd_verify)
