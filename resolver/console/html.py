"""Escaping and the page layout: the console's only "template engine".

Text is escaped by default: :func:`fill` escapes every value it puts into a template unless
the value is :class:`Html` (markup built by this package, from escaped parts). A page is the
layout around a body; there are no scripts in it but the small progress poller of the
import page (``static/console.js``), so a strict Content-Security-Policy holds.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from string import Template
from typing import Any

from aiohttp import web


class Html(str):
    """Markup that is safe to put into a page as it is."""

    __slots__ = ()


EMPTY = Html("")


def esc(value: Any) -> Html:
    """``value`` as page text: escaped (quotes too, so it is safe in an attribute)."""
    if isinstance(value, Html):
        return value
    return Html(html.escape(str(value), quote=True))


def fill(template: str, **values: Any) -> Html:
    """``template`` (``$name`` placeholders) with ``values`` escaped unless :class:`Html`."""
    return Html(Template(template).substitute({k: esc(v) for k, v in values.items()}))


def join(parts: Iterable[Html]) -> Html:
    return Html("".join(parts))


def csrf_field(token: str) -> Html:
    return fill('<input type="hidden" name="csrf" value="$token">', token=token)


# Every console page: no inline script or style, nothing from other origins.
CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; connect-src 'self'"
)

LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title — $node</title>
<link rel="stylesheet" href="/admin/static/console.css">$head
</head><body>
<header class="top"><a class="brand" href="/admin/">$node <span>console</span></a>$nav</header>
<main id="main">$flash$body</main>
</body></html>
"""


def page(
    title: str,
    body: Html,
    *,
    node: str,
    nav: Html = EMPTY,
    flash: Iterable[str] = (),
    head: Html = EMPTY,
    status: int = 200,
) -> web.Response:
    notes = join(fill('<p class="flash" role="status">$m</p>', m=m) for m in flash)
    doc = fill(LAYOUT, title=title, node=node, nav=nav, flash=notes, body=body, head=head)
    return web.Response(
        text=doc,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={
            "Content-Security-Policy": CSP,
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        },
    )
