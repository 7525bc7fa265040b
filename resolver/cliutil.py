"""What every ``idnode`` command shares: finding the data directory and opening its node."""

from __future__ import annotations

import argparse
import getpass
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.audit import Caller
from resolver.config import ConfigError, load

if TYPE_CHECKING:
    from registry.model.values import Value
    from resolver.node import Node


def operator(transport: str = "cli") -> Caller:
    """Who the audit log names for a command run here: the trusted local operator, by the
    system user running it."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name (a container with an unnamed uid)
        user = str(os.getuid())
    return Caller(transport, "local", f"operator:{user}")


def positive_int(text: str) -> int:
    """An argparse type for counts and indexes: a whole number from 1."""
    return _int_from(text, 1)


def non_negative_int(text: str) -> int:
    """An argparse type for counts where 0 means none: a whole number from 0."""
    return _int_from(text, 0)


def _int_from(text: str, low: int) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
    return value


def data_dir(args: argparse.Namespace) -> Path:
    raw = args.data or os.environ.get("IDNODE_DATA")
    if not raw:
        raise ConfigError("give the data directory with --data DIR (or IDNODE_DATA)")
    return Path(raw)


def store_flag(args: argparse.Namespace) -> str | None:
    """``--store``, for the commands that have it (see resolver/cli.py's data options)."""
    store: str | None = getattr(args, "store", None)
    return store or None


@asynccontextmanager
async def opened_node(args: argparse.Namespace, **flags: Any) -> AsyncIterator[Node]:
    """The node of ``--data``, closed again however the command ends; a damaged store is a
    :class:`ConfigError` (one line from the command line, not a traceback)."""
    from registry.store.base import StoreDamaged  # here: the command line stays cheap
    from resolver.node import Node

    node = await Node.open(
        load(data_dir(args), {"store": store_flag(args), **flags}), serving=False
    )
    try:
        yield node
    except StoreDamaged as exc:  # found by the command's reads or writes
        raise ConfigError(str(exc)) from None
    finally:
        await node.close()


def spec_values(specs: list[str] | None) -> list[Value]:
    """Values from ``--value [INDEX:]TYPE=DATA`` flags (index: the flag's position if
    omitted)."""
    from registry.model.jsonvalues import value_from_json

    out = []
    for n, spec in enumerate(specs or (), start=1):
        index_type, sep, data = spec.partition("=")
        if not sep:
            raise ConfigError(f"--value {spec!r}: expected [INDEX:]TYPE=DATA")
        index_text, colon, vtype = index_type.partition(":")
        if not colon:
            index, vtype = n, index_type
        elif index_text.isdigit():
            index = int(index_text)
        else:
            raise ConfigError(f"--value {spec!r}: the index before ':' must be a number")
        out.append(value_from_json({"index": index, "type": vtype, "data": data}))
    return out
