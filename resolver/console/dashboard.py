"""The node admin's page: the enterprise prefixes this node hosts (and a form to allocate
one, the HTTP API's ``PUT /api/handles/0.NA/<prefix>``), the link to the top-level, and the
statistics reported to it.

The enterprise lifecycle (applications to approve or reject, suspending, withdrawing) has its
own page (:mod:`resolver.console.enterprises`), linked from here with the count waiting.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping

from aiohttp import web

from registry.authz import Principal
from registry.bootstrap import new_secret, prefix_values
from registry.errors import InsufficientPermissions, InvalidHandle
from registry.model.identifiers import check_prefix, handle_key, is_within, parse, prefix_handle
from resolver.console.context import (
    caller_of,
    done,
    field,
    node_of,
    read_form,
    session_of,
    show,
    signed_in,
)
from resolver.console.html import Html, csrf_field, fill, join
from resolver.node import Node

PAGE = """<h1>Node $node</h1>
<section aria-labelledby="ent"><h2 id="ent">Enterprise prefixes</h2>
<p><a class="button" href="/admin/node/enterprises">Lifecycle queue</a> $pending</p>
<table><thead><tr><th scope="col">Prefix</th><th scope="col" class="num">Identifiers</th>
<th scope="col">State</th></tr></thead><tbody>$rows</tbody></table>
<details><summary>Allocate an enterprise prefix</summary>
<form method="post" action="/admin/node/prefixes" class="stack">$csrf
<label for="prefix">Prefix</label>
<input id="prefix" name="prefix" placeholder="$example" required>
<label for="secret">Admin secret <small>(empty: one is generated and shown once)</small></label>
<input id="secret" name="secret" type="password" autocomplete="new-password">
<button type="submit">Allocate</button></form></details>
</section>
<section aria-labelledby="sync"><h2 id="sync">Top-level link</h2>$sync</section>
<section aria-labelledby="stats"><h2 id="stats">Statistics</h2>$stats
<h3>This process</h3>$process</section>"""


async def lifecycle_states(node: Node, who: Principal) -> dict[str, str]:
    """Each enterprise prefix's lifecycle state by key (none: ``who`` is no node admin)."""
    try:
        found = await node.enterprises.list_all(who)
    except InsufficientPermissions:
        return {}
    return {handle_key(e.prefix): e.state for e in found}


async def enterprise_rows(node: Node, states: Mapping[str, str]) -> Html:
    rows = []
    for handle in await node.listings.prefixes():
        prefix = handle.split("/", 1)[1]
        key = handle_key(prefix)
        if key in node.registry.homed_keys:
            continue  # the node's own prefix handle
        total, _ = await node.store.list_handles(key, 0, 0)
        rows.append(
            fill(
                '<tr><td><a href="/admin/prefix/$p">$p</a></td><td class="num">$n</td>'
                '<td><span class="state $css">$state</span></td></tr>',
                p=prefix,
                n=total,
                state=states.get(key, "active"),
                css="ok" if states.get(key, "active") == "active" else "off",
            )
        )
    return join(rows) or Html('<tr><td colspan="3">None yet.</td></tr>')


def sync_gauges(lines: Iterable[str]) -> dict[str, float]:
    """The unlabelled ``idnode_sync_*`` gauges among Prometheus text ``lines`` (what the
    sync agent adds to ``/metrics``)."""
    out = {}
    for line in lines:
        if line.startswith("idnode_sync_") and "{" not in line:
            name, _, value = line.partition(" ")
            try:
                out[name.removeprefix("idnode_sync_")] = float(value)
            except ValueError:
                continue
    return out


def ago(epoch: float, now: float) -> str:
    if not epoch:
        return "never"
    seconds = max(0, int(now - epoch))
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{stamp} ({seconds // size} {unit} ago)"
    return f"{stamp} ({seconds} s ago)"


async def sync_section(node: Node) -> Html:
    lines: list[str] = []
    for source in node.metrics:
        lines += await source()
    gauges = sync_gauges(lines)
    summary = await node.store.outbox_summary()
    now = time.time()
    registered = bool(gauges.get("registered"))
    upstream = node.forwarding.upstream
    items = [
        ("Registered", "yes" if registered else "no"),
        ("Top-level", upstream.toplevel if upstream else "—"),
        ("Outbox: waiting", f"{summary.pending}"),
        ("Oldest waiting", ago(summary.oldest, now) if summary.oldest else "—"),
        ("Refused for good", f"{summary.dead}"),
        ("Delivered", f"{int(gauges.get('delivered_items', 0))}"),
        ("Last delivery", ago(gauges.get("last_success_timestamp_seconds", 0), now)),
        ("Last error", ago(gauges.get("last_error_timestamp_seconds", 0), now)),
    ]
    if not gauges:
        items.insert(1, ("Sync agent", "not running in this process"))
    return definitions(items)


def definitions(items: Iterable[tuple[str, str]]) -> Html:
    rows = join(fill("<dt>$k</dt><dd>$v</dd>", k=k, v=v) for k, v in items)
    return fill('<dl class="facts">$rows</dl>', rows=rows)


def stats_table(totals: Mapping[str, Mapping[str, int]]) -> Html:
    if not totals:
        return Html("<p>No resolutions or writes counted yet.</p>")
    names = sorted({n for counts in totals.values() for n in counts})
    head = join(fill('<th scope="col" class="num">$n</th>', n=n) for n in names)
    rows = join(
        fill(
            '<tr><th scope="row">$p</th>$cells</tr>',
            p=prefix,
            cells=join(fill('<td class="num">$v</td>', v=counts.get(n, 0)) for n in names),
        )
        for prefix, counts in sorted(totals.items())
    )
    return fill(
        '<table><thead><tr><th scope="col">Prefix</th>$head</tr></thead>'
        "<tbody>$rows</tbody></table>",
        head=head,
        rows=rows,
    )


def process_figures(node: Node, now: float) -> Html:
    """What ``/metrics`` says of this serving process: uptime, requests per transport, the
    record cache's hit ratio."""
    by_transport: dict[str, int] = {}
    for series in node.telemetry.requests.series():
        found = TRANSPORT.search(series.labels)
        name = found.group(1) if found else "?"
        by_transport[name] = by_transport.get(name, 0) + series.count
    stats = node.cache.stats
    hits = stats.local_hits + stats.redis_hits
    looked = hits + stats.misses
    items = [("Up since", ago(node.telemetry.started, now))]
    items += [(f"Requests ({name})", str(n)) for name, n in sorted(by_transport.items())]
    items.append(("Cache hit ratio", f"{hits / looked:.1%} of {looked} lookups" if looked else "—"))
    return definitions(items)


TRANSPORT = re.compile(r'transport="([^"]*)"')


@signed_in
async def dashboard(request: web.Request) -> web.StreamResponse:
    node = node_of(request)
    session = session_of(request)
    states = await lifecycle_states(node, session.who)
    waiting = sum(1 for s in states.values() if s == "pending")
    body = fill(
        PAGE,
        pending=f"{waiting} application{'s' if waiting != 1 else ''} waiting",
        node=", ".join(node.config.prefixes),
        rows=await enterprise_rows(node, states),
        csrf=csrf_field(session.csrf),
        example=f"{node.config.prefixes[0]}.9",
        sync=await sync_section(node),
        stats=stats_table(await node.store.stats_totals()),
        process=process_figures(node, time.time()),
    )
    return show(request, "Node", body)


@signed_in
async def allocate(request: web.Request) -> web.StreamResponse:
    """A new enterprise prefix handle, written as ``PUT /api/handles/0.NA/<prefix>`` writes
    it: the registry decides whether the signed-in identity may."""
    node = node_of(request)
    form = await read_form(request)
    prefix = field(form, "prefix")
    check_prefix(prefix)
    if not any(is_within(handle_key(prefix), h) for h in node.registry.homed_keys):
        raise InvalidHandle(f"{prefix} is not under this node's prefixes")
    secret = field(form, "secret")
    shown = "" if secret else new_secret()
    values = prefix_values(prefix, secret or shown)
    who = session_of(request).who
    await node.registry.put_record(
        parse(prefix_handle(prefix)), values, overwrite=False, who=who, caller=caller_of(request)
    )
    message = f"Allocated {prefix}: its admin is 300:{prefix_handle(prefix)}."
    if shown:
        message += f" Its secret (shown once): {shown}"
    return done(request, message, "/admin/node")
