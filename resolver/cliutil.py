"""What every ``idnode`` command shares: finding the data directory and opening its node."""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resolver.config import ConfigError, load

if TYPE_CHECKING:
    from resolver.node import Node


def data_dir(args: argparse.Namespace) -> Path:
    raw = args.data or os.environ.get("IDNODE_DATA")
    if not raw:
        raise ConfigError("give the data directory with --data DIR (or IDNODE_DATA)")
    return Path(raw)


@asynccontextmanager
async def opened_node(args: argparse.Namespace, **flags: Any) -> AsyncIterator[Node]:
    """The node of ``--data``, closed again however the command ends."""
    from resolver.node import Node  # here: importing the command line stays cheap

    node = await Node.open(load(data_dir(args), flags))
    try:
        yield node
    finally:
        await node.close()
