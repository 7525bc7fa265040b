"""``idnode status``: a serving node's readiness (``GET /readyz``), check by check.

Exits 0 when the node is ready, 1 when it answers that it is not, 2 when it cannot be asked
(no answer, or an answer that is not a readiness report).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from resolver.cliutil import data_dir
from resolver.config import ConfigError, load

FETCH_TIMEOUT = 10.0  # seconds: the node bounds each check itself, by ready_timeout
NOT_READY = 1


def add_parser(sub: Any, data_arg: Callable[[argparse.ArgumentParser], None]) -> None:
    """``idnode status`` on the subcommands ``sub``."""
    p = sub.add_parser(
        "status",
        help="is a serving node ready? (its /readyz, check by check)",
        description="Ask a serving node whether it is ready (GET /readyz) and print each "
        "check. Exit status: 0 ready, 1 not ready, 2 no readiness answer.",
    )
    p.add_argument(
        "--server",
        metavar="URL",
        help="the node's base URL, e.g. http://127.0.0.1:8000 (default: the URL of the "
        "node in --data)",
    )
    data_arg(p)
    p.add_argument("--json", action="store_true", help="print the node's JSON answer as it is")
    p.set_defaults(fn=cmd_status)


def _base(args: argparse.Namespace) -> str:
    if args.server:
        if not args.server.startswith(("http://", "https://")):
            raise ConfigError("--server must be an http:// or https:// URL")
        return str(args.server).rstrip("/")
    if not (args.data or os.environ.get("IDNODE_DATA")):
        raise ConfigError("give the node's URL with --server URL (or its --data DIR)")
    return load(data_dir(args)).base_url


async def cmd_status(args: argparse.Namespace) -> int:
    import aiohttp

    base = _base(args)
    url = f"{base}/readyz"
    try:
        timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as resp:
            status = resp.status
            raw = await resp.read()
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise ConfigError(f"{url}: no answer ({type(exc).__name__}: {exc})") from None
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if status not in (200, 503) or not isinstance(body, dict) or "checks" not in body:
        raise ConfigError(f"{url}: HTTP {status}, not a readiness report")
    if args.json:
        sys.stdout.write(json.dumps(body, indent=2) + "\n")
    else:
        sys.stdout.write(report(base, body))
    return 0 if status == 200 else NOT_READY


def report(base: str, body: dict[str, Any]) -> str:
    """The readiness answer ``body`` as lines for a person."""
    ready = body.get("status") == "ready"
    lines = [f"{base}: {'ready' if ready else 'NOT READY'}"]
    checks = body.get("checks")
    for name, check in (checks if isinstance(checks, dict) else {}).items():
        facts = dict(check) if isinstance(check, dict) else {}
        ok = facts.pop("ok", False) is True
        required = facts.pop("required", True) is not False
        told = _facts(facts)
        if not required:  # reported, but readiness does not depend on it
            told = f"{told} (not required)" if told else "(not required)"
        lines.append(f"  {name:<14}{'ok' if ok else 'FAIL':<6}{told}".rstrip())
    return "\n".join(lines) + "\n"


def _facts(facts: dict[str, Any]) -> str:
    if "error" in facts:
        backend = facts.get("backend")
        return f"{backend}: {facts['error']}" if backend else str(facts["error"])
    parts = []
    if "seconds" in facts:
        parts.append(f"{float(facts.pop('seconds')) * 1000:.1f} ms")
    if "pending" in facts:
        limit = facts.pop("max", None)
        parts.append(
            f"{facts.pop('pending')} pending" + (f" (max {limit})" if limit is not None else "")
        )
    parts += [str(v) if k in ("state", "backend") else f"{k}={v}" for k, v in facts.items()]
    return ", ".join(parts)
