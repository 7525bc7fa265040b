"""Signing in and out: a Handle identity and its secret, checked as HTTP Basic checks them
(the node's :class:`~registry.auth.Authenticator` behind its
:class:`~registry.auth.FailureThrottle`, over a transport that may carry credentials), then a
session; the secret is dropped once checked."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from registry.auth import parse_identity
from registry.authz import Principal
from registry.errors import AuthenticationFailed, Throttled
from registry.model.admin import AdminRef
from resolver.console.context import (
    COOKIE,
    SESSIONS,
    administered_prefix,
    node_of,
    read_form,
    redirect,
    role_of,
    session_of,
    signed_in,
)
from resolver.console.html import EMPTY, fill, page
from resolver.http.credentials import transport_allows

FORM = """<section class="signin">
<h1>Sign in</h1>
<p>With a Handle identity <code>index:handle</code> and its secret (HS_SECKEY).</p>
$error
<form method="post" action="/admin/signin">
<input type="hidden" name="next" value="$next">
<label for="identity">Identity</label>
<input id="identity" name="identity" value="$identity" placeholder="300:0.NA/88.118.8"
 autocomplete="username" required autofocus>
<label for="secret">Secret</label>
<input id="secret" name="secret" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form></section>"""


def _form(
    request: web.Request, *, identity: str = "", error: str = "", status: int = 200, next_: str = ""
) -> web.Response:
    shown = fill('<p class="error" role="alert">$e</p>', e=error) if error else EMPTY
    body = fill(FORM, error=shown, identity=identity, next=next_ or request.query.get("next", ""))
    return page("Sign in", body, node=node_of(request).config.name, status=status)


def home(role: str, prefix: str) -> str:
    return "/admin/node" if role == "node" else f"/admin/prefix/{prefix}"


def _safe_next(target: str) -> str | None:
    """Only console pages of this site are returned to after signing in."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/admin/") or "\\" in target:
        return None
    return target


async def signin_page(request: web.Request) -> web.StreamResponse:
    session = request.app[SESSIONS].get(request.cookies.get(COOKIE, ""))
    if session is not None:
        return redirect(home(session.role, session.prefix))
    return _form(request)


def _cross_site(request: web.Request) -> bool:
    """A sign-in posted from another site's page (login CSRF): the browser says so."""
    origin = request.headers.get("Origin")
    return origin is not None and urlsplit(origin).netloc != request.host


async def signin(request: web.Request) -> web.StreamResponse:
    node = node_of(request)
    form = await read_form(request)
    text = str(form.get("identity", "")).strip()
    secret = str(form.get("secret", "")).encode("utf-8", "replace")
    next_ = str(form.get("next", ""))
    if _cross_site(request):
        return _form(request, identity=text, error="Sign in from this site's page.", status=403)
    if not transport_allows(request, node.config.plain_credentials):
        return _form(request, error="Secrets are accepted only over HTTPS here.", status=403)
    identity = parse_identity(text) if text else None

    async def prove(identity: AdminRef) -> Principal:
        return await node.registry.authenticator.verify_secret(identity, secret)

    try:
        who = await node.throttle.attempt(request.remote or "?", identity, prove)
    except Throttled as exc:
        response = _form(
            request,
            identity=text,
            error=f"Too many failed attempts: try again in {exc.retry_after} s.",
            status=429,
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except AuthenticationFailed:
        return _form(
            request, identity=text, error="Wrong identity or secret.", status=401, next_=next_
        )
    prefix = administered_prefix(who.identity.handle)
    role = role_of(node, prefix)
    session = request.app[SESSIONS].open(who, role, prefix)
    response = redirect(_safe_next(next_) or home(role, prefix))
    response.set_cookie(
        COOKIE,
        session.id,
        path="/admin",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )
    return response


@signed_in
async def signout(request: web.Request) -> web.StreamResponse:
    request.app[SESSIONS].close(session_of(request).id)
    response = redirect("/admin/signin")
    response.del_cookie(COOKIE, path="/admin")
    return response


async def index(request: web.Request) -> web.StreamResponse:
    session = request.app[SESSIONS].get(request.cookies.get(COOKIE, ""))
    if session is None:
        return redirect("/admin/signin")
    return redirect(home(session.role, session.prefix))
