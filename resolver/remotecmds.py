"""``idnode put|delete --server URL --identity ID --key FILE``: the write goes to a node's
HTTP API, signed in with the identity's key (:mod:`resolver.remotewrite`), instead of to the
local data directory."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from registry.model.values import Value
from resolver.config import ConfigError
from resolver.keycmds import LOGIN_PASSPHRASE_ENV

if TYPE_CHECKING:  # aiohttp is imported by the commands that use it: `idnode` starts fast
    from resolver.remotewrite import RemoteNode


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags that send ``put``/``delete`` to a remote node."""
    g = p.add_argument_group("remote write (instead of the local data directory)")
    g.add_argument("--server", metavar="URL", help="the node's HTTP API, e.g. https://node:8000")
    g.add_argument(
        "--identity", metavar="ID", help="who signs in, e.g. 301:0.NA/88.118.8 (with --server)"
    )
    g.add_argument(
        "--key",
        metavar="FILE",
        help="the identity's private key (PEM; its public half an HS_PUBKEY of the identity: "
        f"see 'idnode keys login'); encrypted keys take {LOGIN_PASSPHRASE_ENV}",
    )


def remote(args: argparse.Namespace) -> bool:
    """Whether the command goes to a remote node; refuses half the flags."""
    given = [name for name in ("server", "identity", "key") if getattr(args, name, None)]
    if given and len(given) < 3:
        raise ConfigError("a remote write needs --server, --identity and --key together")
    return bool(given)


@contextlib.asynccontextmanager
async def _node(args: argparse.Namespace) -> AsyncIterator[RemoteNode]:
    import aiohttp

    from registry.signing.keys import KeyFileError, SigningKey
    from resolver.remotewrite import RemoteError, RemoteNode

    passphrase = os.environ.get(LOGIN_PASSPHRASE_ENV)
    try:
        key = SigningKey.load(args.key, passphrase.encode() if passphrase else None)
    except KeyFileError as exc:
        raise ConfigError(f"--key: {exc}") from None
    timeout = aiohttp.ClientTimeout(total=60)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as http:
            yield RemoteNode(http, args.server.rstrip("/"), args.identity, key)
    except RemoteError as exc:
        raise ConfigError(f"{args.server}: {exc}") from None
    except aiohttp.ClientError as exc:
        raise ConfigError(f"{args.server}: {exc}") from None


async def put(args: argparse.Namespace, values: Sequence[Value]) -> int:
    async with _node(args) as node:
        status, body = await node.put(
            args.handle, values, add=args.add, overwrite=not args.no_overwrite
        )
    print(f"{'created' if status == 201 else 'updated'} {body.get('handle', args.handle)}")
    return 0


async def delete(args: argparse.Namespace) -> int:
    async with _node(args) as node:
        await node.delete(args.handle, args.index or ())
    print(f"deleted {args.handle}" + (f" values {args.index}" if args.index else ""))
    return 0
