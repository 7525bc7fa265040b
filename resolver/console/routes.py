"""The console's routes under ``/admin/``, one page module each, and its static files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from resolver.config import Config
from resolver.console import dashboard, editor, enterprise, importer, signin
from resolver.console.context import SESSIONS
from resolver.console.sessions import SessionTable
from resolver.http.respond import Handler

STATIC = Path(__file__).parent / "static"
TYPES = {".css": "text/css", ".js": "text/javascript"}
Route = Callable[[tuple[str, ...], str, Handler], None]


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    path = STATIC / name
    if "/" in name or path.suffix not in TYPES or not path.is_file():
        raise web.HTTPNotFound()
    return web.Response(
        body=path.read_bytes(),  # small files, read at most once a page view
        content_type=TYPES[path.suffix],
        charset="utf-8",
        headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"},
    )


async def _close_jobs(app: web.Application) -> None:
    await app[importer.JOBS].close()


def install(app: web.Application, config: Config, route: Route) -> None:
    """Add the console to ``app`` (before the proxy's catch-all ``/{handle}``)."""
    app[SESSIONS] = SessionTable(config.console_idle, config.console_lifetime)
    app[importer.JOBS] = importer.Jobs()
    app.on_cleanup.append(_close_jobs)
    get, post = ("GET", "HEAD"), ("POST",)
    route(get, "/admin", signin.index)
    route(get, "/admin/", signin.index)
    route(get, "/admin/static/{name}", static)
    route(get, "/admin/signin", signin.signin_page)
    route(post, "/admin/signin", signin.signin)
    route(post, "/admin/signout", signin.signout)
    route(get, "/admin/node", dashboard.dashboard)
    route(post, "/admin/node/prefixes", dashboard.allocate)
    route(get, "/admin/prefix/{prefix}", enterprise.prefix_page)
    route(get, "/admin/identifier", editor.edit_page)
    route(post, "/admin/identifier", editor.save)
    route(get, "/admin/identifier/new", editor.new_page)
    route(post, "/admin/identifier/new", editor.create)
    route(post, "/admin/identifier/delete", editor.delete)
    route(get, "/admin/import", importer.import_form)
    route(post, "/admin/import", importer.upload)
    route(get, "/admin/import/{job}.json", importer.status)
    route(get, "/admin/import/{job}", importer.progress)
