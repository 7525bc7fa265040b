"""An enterprise prefix's page: its overview, and its identifiers — a page of the listing,
those whose suffix starts with some text, or those holding a URL (reverse lookup). Each
read is the HTTP API's (``GET /api/handles?prefix=``, ``/hrls/handles/?URL=``) with the
signed-in identity, so what it may not list is refused by the same rule."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from registry.model.identifiers import check_prefix, handle_key, prefix_handle
from resolver.console.context import node_of, session_of, show, signed_in
from resolver.console.html import EMPTY, Html, fill, join
from resolver.node import Node

PAGE_SIZE = 50
MAX_MATCHES = 200  # suffix search: matches shown at most

PAGE = """<h1>Prefix $prefix</h1>
<dl class="facts"><dt>Identifiers</dt><dd>$total</dd><dt>Prefix handle</dt>
<dd><a href="/admin/identifier?$prefix_q">$prefix_handle</a></dd></dl>
<form method="get" action="/admin/prefix/$prefix" class="search" role="search">
<div><label for="suffix">Suffix starts with</label>
<input id="suffix" name="suffix" value="$suffix" placeholder="PUMP-"></div>
<div><label for="url">or holds the URL <small>(* matches anything)</small></label>
<input id="url" name="url" value="$url" placeholder="https://example.com/*"></div>
<button type="submit">Search</button></form>
<p><a class="button" href="/admin/identifier/new?$new_q">New identifier</a></p>
<h2>$heading</h2>
<ul class="handles">$items</ul>$pager"""


def _item(handle: str) -> Html:
    return fill(
        '<li><a href="/admin/identifier?$q">$h</a></li>',
        q=urlencode({"handle": handle}),
        h=handle,
    )


async def _by_suffix(node: Node, request: web.Request, prefix: str, start: str) -> list[str]:
    who = session_of(request).who
    _, chunks = await node.listings.stream_handles(prefix, who)
    wanted = handle_key(f"{prefix}/{start}")
    found: list[str] = []
    async for chunk in chunks:
        found += [h for h in chunk if handle_key(h).startswith(wanted)]
        if len(found) >= MAX_MATCHES:
            break
    return found[:MAX_MATCHES]


@signed_in
async def prefix_page(request: web.Request) -> web.StreamResponse:
    node = node_of(request)
    who = session_of(request).who
    prefix = check_prefix(request.match_info["prefix"])
    q = request.query
    suffix, url = q.get("suffix", "").strip(), q.get("url", "").strip()
    raw_page = q.get("page", "")
    page = int(raw_page) if raw_page.isascii() and raw_page.isdigit() else 0
    listing = await node.listings.list_handles(prefix, who, page, PAGE_SIZE)
    pager = EMPTY
    if url:
        mine = handle_key(prefix) + "/"
        hits = await node.listings.reverse_lookup("URL", url, who, MAX_MATCHES)
        handles = [h for h in hits if handle_key(h).startswith(mine)]
        heading = f"Holding the URL {url}: {len(handles)}"
    elif suffix:
        handles = await _by_suffix(node, request, prefix, suffix)
        heading = f"Suffix starting with {suffix}: {len(handles)}"
    else:
        handles = listing.handles
        first = page * PAGE_SIZE
        heading = f"Identifiers {first + 1 if handles else 0} to {first + len(handles)}"
        links = []
        if page > 0:
            links.append(fill('<a href="?page=$p" rel="prev">Previous</a>', p=page - 1))
        if first + len(handles) < listing.total:
            links.append(fill('<a href="?page=$p" rel="next">Next</a>', p=page + 1))
        pager = fill('<nav class="pager" aria-label="pages">$l</nav>', l=join(links))
    body = fill(
        PAGE,
        prefix=prefix,
        total=listing.total,
        prefix_handle=prefix_handle(prefix),
        prefix_q=urlencode({"handle": prefix_handle(prefix)}),
        new_q=urlencode({"prefix": prefix}),
        suffix=suffix,
        url=url,
        heading=heading,
        items=join(_item(h) for h in handles) or Html("<li>None.</li>"),
        pager=pager,
    )
    return show(request, f"Prefix {prefix}", body)
