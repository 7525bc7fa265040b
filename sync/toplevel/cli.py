"""``idnode toplevel ...``: run and administer the mock top-level node."""

from __future__ import annotations

import argparse
from typing import Any


def add_parsers(sub: Any) -> None:
    """Add ``toplevel`` and its subcommands to the ``idnode`` command's subparsers."""
    p: argparse.ArgumentParser = sub.add_parser(
        "toplevel",
        help="the mock national top-level node",
        description="Run and administer the mock national top-level node.",
    )

    def usage(_args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(fn=usage)
