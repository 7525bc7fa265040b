"""Proxy-style resolution (``GET /{handle}``, as hdl.handle.net and doi.org do) and the
landing page."""

from __future__ import annotations

import html
import time
from email.utils import formatdate
from urllib.parse import quote, urlsplit

from aiohttp import web

from registry.errors import HandleError, HandleNotFound, Outcome
from registry.model.values import URL, Value, type_key
from resolver.console.html import CSP, EMPTY, Html, fill
from resolver.core import Answer, Query
from resolver.http import recordpage
from resolver.http.api import answer_response, path_handle
from resolver.http.keys import ECHO, NODE, VERIFIER
from resolver.verification import SignatureStatus, VerifyError

HTML = "text/html"

LANDING = """<section class="landing"><h1>$name</h1>
<p>Identifier resolution for prefix$plural $prefixes.</p>
<form action="/resolve" method="get" class="resolve-box big">
<input name="handle" placeholder="$example" aria-label="identifier" autofocus>
<button type="submit">Resolve</button></form>
<p>API: <code>GET /api/handles/$example</code> · <a href="/api/site">site information</a>
· <a href="/admin/">admin console</a></p></section>"""
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}


def _page(title: str, body: Html, status: int = 200, node: str = "idnode") -> web.Response:
    doc = recordpage.layout(title, node, body)
    return web.Response(
        text=doc, status=status, content_type=HTML, charset="utf-8", headers=HEADERS
    )


async def landing(request: web.Request) -> web.Response:
    config = request.app[NODE].config
    prefixes = config.prefixes
    body = fill(
        LANDING,
        name=config.name,
        plural="es" if len(prefixes) > 1 else "",
        prefixes=", ".join(prefixes),
        example=f"{prefixes[0]}/example",
    )
    doc = recordpage.layout(config.name, config.name, body, search=False)
    return web.Response(text=doc, content_type=HTML, charset="utf-8", headers=HEADERS)


async def resolve_form(request: web.Request) -> web.Response:
    handle = request.query.get("handle", "").strip()
    if not handle:
        raise web.HTTPFound("/")
    raise web.HTTPFound(proxy_path(handle) + "?noredirect")


def proxy_path(handle: str) -> str:
    """This site's proxy path for ``handle``. Its first character is always escaped if it
    is not plain text: "/" + "/evil.example" would be ``//evil.example``, which a browser
    reads as another site."""
    return "/" + quote(handle[:1], safe="") + quote(handle[1:], safe="/:")


def redirect_target(data: bytes, schemes: tuple[str, ...]) -> str | None:
    """The URL value ``data`` if the proxy may redirect to it: an absolute URL with one of
    ``schemes`` and a host, holding nothing a header cannot carry or a reader would not see
    (control, format and space characters) and no backslash (which browsers read as a
    slash). None otherwise: the values page shows the value instead."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text.isprintable() or " " in text or "\\" in text:
        return None
    try:
        parts = urlsplit(text)
        host, _ = parts.hostname, parts.port  # port: a ValueError if it is no number
    except ValueError:
        return None
    return text if parts.scheme in schemes and host else None


def _wants_json(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


async def _values_page(
    request: web.Request,
    answer: Answer,
    schemes: tuple[str, ...],
    *,
    title: str = "Handle Proxy",
    intro: Html = EMPTY,
    status: int = 200,
    checked: bool = True,
) -> web.Response:
    """The record page (:mod:`resolver.http.recordpage`); ``checked``: with the record's
    signature status (not for a referral's site values)."""
    node = request.app[NODE]

    def url_href(v: Value) -> str | None:
        return redirect_target(v.data, schemes) if type_key(v.type) == URL else None

    line = await _signature_line(request, answer) if checked else EMPTY
    body = fill(
        recordpage.RECORD,
        handle=answer.handle,
        intro=intro,
        status=line,
        table=recordpage.values_table(answer.values, proxy_path, url_href),
        json="/api/handles/" + quote(answer.handle, safe="/:"),
    )
    return _page(f"{title} — {answer.handle}", body, status, node.config.name)


async def _signature_line(request: web.Request, answer: Answer) -> Html:
    """Whether the answer's signatures verify: another node's answer as forwarding checked
    it (up to the top-level root), this node's checked here as a client would."""
    if answer.verified is not None:
        if answer.verified:
            chain = SignatureStatus("verified", "a chain to the top-level root")
            return recordpage.status_html(chain)
        reason = answer.unverified_reason or "not verified"
        return recordpage.status_html(SignatureStatus("failed", reasons=(reason,)))
    try:
        status = await request.app[VERIFIER].status(answer.handle, answer.values)
    except (HandleError, VerifyError) as exc:
        status = SignatureStatus("failed", reasons=(f"could not be checked: {exc}",))
    return recordpage.status_html(status)


async def _referral(request: web.Request, answer: Answer, outcome: Outcome) -> web.Response:
    """A referral as the API tells it (HTTP 300): its JSON, or a page naming the prefix
    record to follow, with the site values it carries — never as the handle's own values."""
    if _wants_json(request):
        return answer_response(answer.handle, answer, outcome)
    assert answer.referral is not None
    intro = fill(
        "<p>Served by another node: follow its prefix record <b>$r</b>, whose sites are these.</p>",
        r=answer.referral,
    )
    return await _values_page(
        request, answer, (), title="Referral", intro=intro, status=outcome.http, checked=False
    )


async def proxy(request: web.Request) -> web.Response:
    node = request.app[NODE]
    handle = path_handle(request, "/")
    request[ECHO] = handle
    noredirect = "noredirect" in request.query
    try:
        answer = await node.resolver.resolve(Query(handle))
    except HandleError as exc:
        if _wants_json(request):
            raise
        title = "Error - Not Found" if isinstance(exc, HandleNotFound) else "Error"
        text = exc.message or ("Not Found" if isinstance(exc, HandleNotFound) else "Error")
        body = fill('<h1>$t</h1><p class="error">$h: $m</p>', t=title, h=handle, m=text)
        return _page(title, body, exc.status, node.config.name)
    outcome = answer.outcome
    if answer.referral is not None:
        return await _referral(request, answer, outcome)
    schemes = node.config.redirect_schemes
    if not noredirect:
        # The first URL value that can be redirected to; with none, the values page.
        for v in answer.values:
            if type_key(v.type) == URL:
                target = redirect_target(v.data, schemes)
                if target is None:
                    continue
                link = html.escape(target, quote=True)
                return web.Response(
                    status=302,
                    content_type=HTML,
                    charset="utf-8",
                    headers={
                        "Location": target,
                        "Expires": formatdate(time.time() + v.ttl, usegmt=True),
                    },
                    text=f"<html><head><title>Handle Redirect</title></head>\n"
                    f'<body><a href="{link}">{link}</a></body></html>',
                )
    if _wants_json(request):
        return answer_response(handle, answer, outcome)
    return await _values_page(request, answer, schemes)
