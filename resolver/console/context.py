"""What every console page shares: the session table and the node under typed app keys, the
signed-in session of a request (or the way to sign in), CSRF checking, reading a form, the
navigation, and the error boundary that shows a refusal as a page.

The console decides nothing about rights: it calls the same :class:`registry.service.Registry`
and :class:`registry.listing.Listings` methods as the HTTP API, with the signed-in principal,
and shows what they refuse. Its "role" only chooses which pages to offer.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiDictProxy

from registry.audit import Caller
from registry.errors import HandleError, ProtocolError
from registry.model.identifiers import NA_PREFIX, handle_key
from registry.model.values import Value
from resolver.console.html import EMPTY, Html, csrf_field, fill, join, page
from resolver.console.sessions import Session, SessionTable
from resolver.core import Query
from resolver.http.keys import NODE
from resolver.node import Node

SESSIONS = web.AppKey("console_sessions", SessionTable)
COOKIE = "idnode_console"
SESSION = web.RequestKey("console_session", Session)

ConsoleHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def node_of(request: web.Request) -> Node:
    return request.app[NODE]


def administered_prefix(identity_handle: str) -> str:
    """The prefix an identity administers: ``0.NA/88.118.8`` → ``88.118.8``; any other
    handle's own prefix (``88.118.8/alice`` → ``88.118.8``)."""
    head, _, rest = identity_handle.partition("/")
    return rest if handle_key(head) == NA_PREFIX.upper() else head


def role_of(node: Node, prefix: str) -> str:
    return "node" if handle_key(prefix) in node.registry.homed_keys else "enterprise"


def signed_in(handler: ConsoleHandler) -> ConsoleHandler:
    """``handler`` for signed-in requests only: others are sent to the sign-in page (a GET
    comes back where it was afterwards); a POST must carry the session's CSRF token
    (403 otherwise). HandleErrors the registry raises become an error page with their
    status."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        session = request.app[SESSIONS].get(request.cookies.get(COOKIE, ""))
        if session is None:
            target = request.path_qs if request.method == "GET" else "/admin/"
            return redirect("/admin/signin?" + _next_query(target))
        request[SESSION] = session
        try:
            if request.method == "POST":
                form = await read_form(request)
                if not session.csrf_ok(str(form.get("csrf", ""))):
                    message = "This form has expired: reload and try again."
                    return error_page(request, 403, message)
            return await handler(request)
        except HandleError as exc:
            return error_page(request, exc.status, exc.message or exc.outcome.name)

    return wrapped


def _next_query(target: str) -> str:
    return urlencode({"next": target})


FORM = web.RequestKey("console_form", MultiDictProxy)


async def read_form(request: web.Request) -> MultiDictProxy[Any]:
    """The request's form (urlencoded or multipart), read once and kept; a body over the
    node's ``max_body`` is a ProtocolError."""
    if FORM in request:
        return request[FORM]
    try:
        form = await request.post()
    except web.HTTPRequestEntityTooLarge:
        limit = node_of(request).config.max_body
        raise ProtocolError(f"The form is larger than {limit} bytes (max_body)") from None
    request[FORM] = form
    return form


def field(form: MultiDictProxy[Any], name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def session_of(request: web.Request) -> Session:
    return request[SESSION]


async def current_values(request: web.Request, handle: str) -> list[Value]:
    """The record's values as the signed-in identity may read them (secrets included when
    it may), as ``GET /api/handles/H`` with its credentials answers."""
    node = node_of(request)
    answer = await node.resolver.resolve(Query(handle, who=session_of(request).who))
    return list(answer.values)


def caller_of(request: web.Request) -> Caller:
    """Who the audit log names for a console write: the console and the browser's address
    (the identity is the signed-in principal's, which every console write passes)."""
    return Caller("admin-console", request.remote or "", "anonymous")


def nav(request: web.Request) -> Html:
    session = session_of(request)
    links = [("/admin/node", "Node")] if session.role == "node" else []
    links += [
        (f"/admin/prefix/{session.prefix}", "Identifiers"),
        ("/admin/import", "Import"),
    ]
    items = join(
        fill(
            '<li><a href="$href"$current>$label</a></li>',
            href=href,
            label=label,
            current=Html(' aria-current="page"') if request.path == href else EMPTY,
        )
        for href, label in links
    )
    return fill(
        NAV_TEMPLATE,
        links=items,
        csrf=csrf_field(session.csrf),
        who=str(session.who.identity),
    )


NAV_TEMPLATE = """<nav aria-label="console"><ul>$links</ul>
<form method="post" action="/admin/signout" class="signout">$csrf
<span class="who">$who</span> <button type="submit" class="link">Sign out</button></form>
</nav>"""


def show(
    request: web.Request, title: str, body: Html, *, status: int = 200, head: Html = EMPTY
) -> web.Response:
    """A page of the signed-in console (with its navigation and pending messages)."""
    session = session_of(request)
    flash, session.flash = session.flash, []
    return page(
        title,
        body,
        node=node_of(request).config.name,
        nav=nav(request),
        flash=flash,
        head=head,
        status=status,
    )


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    body = fill(
        '<h1>Not done</h1><p class="error" role="alert">$message</p>'
        '<p><a href="/admin/">Back to the console</a></p>',
        message=message,
    )
    if SESSION in request:
        return show(request, "Refused", body, status=status)
    return page("Refused", body, node=node_of(request).config.name, status=status)


def redirect(location: str) -> web.Response:
    """303 See Other: after a POST, the browser GETs ``location`` (a site-relative path)."""
    return web.Response(status=303, headers={"Location": location})


def done(request: web.Request, message: str, location: str) -> web.Response:
    """A redirect after a successful POST, with ``message`` shown on the next page."""
    session_of(request).flash.append(message)
    return redirect(location)
