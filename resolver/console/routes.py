"""The console's routes under ``/admin/``, one page module each, and its static files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from resolver.config import Config
from resolver.console import (
    dashboard,
    editor,
    enterprise,
    enterprises,
    importer,
    signin,
    templateform,
)
from resolver.console.context import SESSIONS
from resolver.console.sessions import SessionTable
from resolver.http.respond import Handler

STATIC = Path(__file__).parent / "static"
TYPES = {".css": "text/css", ".js": "text/javascript"}
Route = Callable[[tuple[str, ...], str, Handler], None]
GET, POST = ("GET", "HEAD"), ("POST",)


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


ROUTES: tuple[tuple[tuple[str, ...], str, Handler], ...] = (
    (GET, "/admin", signin.index),
    (GET, "/admin/", signin.index),
    (GET, "/admin/static/{name}", static),
    (GET, "/admin/signin", signin.signin_page),
    (POST, "/admin/signin", signin.signin),
    (POST, "/admin/signout", signin.signout),
    (GET, "/admin/node", dashboard.dashboard),
    (POST, "/admin/node/prefixes", dashboard.allocate),
    (GET, enterprises.PATH, enterprises.queue),
    (POST, enterprises.PATH, enterprises.act),
    (GET, "/admin/prefix/{prefix}", enterprise.prefix_page),
    (GET, "/admin/identifier", editor.edit_page),
    (POST, "/admin/identifier", editor.save),
    (GET, "/admin/identifier/new", editor.new_page),
    (POST, "/admin/identifier/new", editor.create),
    (POST, "/admin/identifier/delete", editor.delete),
    (POST, "/admin/identifier/template", templateform.submit),
    (GET, "/admin/import", importer.import_form),
    (POST, "/admin/import", importer.upload),
    (GET, "/admin/import/{job}.json", importer.status),
    (GET, "/admin/import/{job}", importer.progress),
)


async def _close_jobs(app: web.Application) -> None:
    await app[importer.JOBS].close()


def install(app: web.Application, config: Config, route: Route) -> None:
    """Add the console to ``app`` (before the proxy's catch-all ``/{handle}``)."""
    app[SESSIONS] = SessionTable(config.console_idle, config.console_lifetime)
    app[importer.JOBS] = importer.Jobs()
    app.on_cleanup.append(_close_jobs)
    for methods, path, handler in ROUTES:
        route(methods, path, handler)
