"""The ceiling: a bare aiohttp handler that answers every ``GET /api/handles/...`` with one
fixed body — a real resolution answer captured from idnode — under the same server settings
as ``idnode serve`` (uvloop, AppRunner without access log, handler cancellation, backlog,
the heap frozen after start-up).
No Python web server on aiohttp can beat it, so idnode's figures are reported as fractions
of it and compare across machines.

    python -m bench.ceiling --body FILE [--http 127.0.0.1:0]

prints ``ceiling listening on http://HOST:PORT`` once it accepts connections.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aiohttp import web

from resolver.http.listener import start_site
from resolver.server import run_loop, run_until_signalled

JSON_HEADERS = {"Content-Type": "application/json"}  # what idnode's hot path sends


def make_app(body: bytes) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=body, headers=JSON_HEADERS)

    app = web.Application()
    app.router.add_get("/api/handles/{handle:.*}", answer)
    return app


async def serve(host: str, port: int, body: bytes) -> None:
    runner = web.AppRunner(make_app(body), access_log=None, handler_cancellation=True)

    async def start() -> list[str]:
        await runner.setup()
        listener = await start_site(runner, host, port, label="ceiling")
        return list(listener.lines)

    # The same serving loop and site settings as idnode's (the heap settled after start-up).
    await run_until_signalled(start, runner.cleanup)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.ceiling",
        description="Serve a fixed resolution-sized JSON body with bare aiohttp (the ceiling).",
    )
    p.add_argument("--body", required=True, help="file holding the answer body to send")
    p.add_argument("--http", default="127.0.0.1:0", help="HOST:PORT (port 0 picks a free one)")
    args = p.parse_args(argv)
    host, _, port = args.http.rpartition(":")
    body = Path(args.body).read_bytes()
    run_loop(serve(host, int(port), body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
