"""The node admin's lifecycle queue: pending applications to approve or reject, active
prefixes to suspend or withdraw, suspended ones to reactivate or withdraw — each form a call
of :meth:`registry.enterprises.Enterprises.act`, as ``POST /api/enterprises/{prefix}/{action}``
calls it, with the signed-in principal. A refusal (a stale form's wrong state, a missing
reason, a right the principal lacks) is shown on the queue as a message, with its status.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from aiohttp import web

from registry.errors import HandleError
from registry.model import enterprise as ent
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
from resolver.console.html import EMPTY, Html, csrf_field, fill, join

PATH = "/admin/node/enterprises"
# The actions offered in each state, in order (the registry decides what is allowed).
OFFERED = {
    ent.PENDING: ("approve", "reject"),
    ent.ACTIVE: ("suspend", "withdraw"),
    ent.SUSPENDED: ("reactivate", "withdraw"),
}
LABELS = {
    "approve": "Approve",
    "reject": "Reject",
    "suspend": "Suspend",
    "reactivate": "Reactivate",
    "withdraw": "Withdraw",
}
HEADINGS = (
    (ent.PENDING, "Pending applications"),
    (ent.ACTIVE, "Active prefixes"),
    (ent.SUSPENDED, "Suspended prefixes"),
)

ACTION = """<form method="post" action="$path" class="act">$csrf
<input type="hidden" name="prefix" value="$prefix"><input type="hidden" name="action"
 value="$action">$reason<button type="submit"$danger>$label</button></form>"""

REASON = """<label for="$id" class="sr">Reason to $action $prefix</label>
<input id="$id" name="reason" placeholder="reason" required maxlength="$max">"""

ROW = """<tr><th scope="row">$prefix</th><td>$name</td><td>$org</td><td>$contact</td>
<td>$industry</td><td class="nowrap">$since</td><td class="actions">$actions</td></tr>"""

TABLE = """<section aria-labelledby="q-$state"><h2 id="q-$state">$heading <small>($count)</small>
</h2><table class="queue"><thead><tr><th scope="col">Prefix</th><th scope="col">Name</th>
<th scope="col">Organisation</th><th scope="col">Contact</th><th scope="col">Industry</th>
<th scope="col">$since</th><th scope="col">Actions</th></tr></thead><tbody>$rows</tbody>
</table></section>"""


def stamp(epoch: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch)) if epoch else "—"


def applied_at(e: ent.Enterprise) -> int:
    """When ``e`` applied (its last ``apply`` step), else when its state last changed."""
    for step in reversed(e.history):
        if step.get("action") == "apply" and isinstance(step.get("at"), int):
            return int(step["at"])
    return e.updated


def action_form(csrf: str, e: ent.Enterprise, action: str) -> Html:
    reason = EMPTY
    if action in ent.NEEDS_REASON:
        reason = fill(
            REASON, id=f"reason-{action}-{e.prefix}", action=action, prefix=e.prefix,
            max=ent.MAX_REASON,
        )  # fmt: skip
    return fill(
        ACTION,
        path=PATH,
        csrf=csrf_field(csrf),
        prefix=e.prefix,
        action=action,
        reason=reason,
        label=LABELS[action],
        danger=Html(' class="danger"') if action in ("reject", "withdraw") else EMPTY,
    )


def queue_table(csrf: str, state: str, heading: str, found: Sequence[ent.Enterprise]) -> Html:
    rows = join(
        fill(
            ROW,
            prefix=e.prefix,
            name=e.name or "—",
            org=e.organisation or "—",
            contact=e.contact or "—",
            industry=e.industry or "—",
            since=stamp(applied_at(e) if state == ent.PENDING else e.updated),
            actions=join(action_form(csrf, e, a) for a in OFFERED[state]),
        )
        for e in found
    )
    return fill(
        TABLE,
        state=state,
        heading=heading,
        count=len(found),
        since="Applied" if state == ent.PENDING else "Since",
        rows=rows or Html('<tr><td colspan="7">None.</td></tr>'),
    )


async def _queue(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    session = session_of(request)
    found = await node_of(request).enterprises.list_all(session.who)
    tables = join(
        queue_table(session.csrf, state, heading, [e for e in found if e.state == state])
        for state, heading in HEADINGS
    )
    closed = [e for e in found if e.state not in OFFERED]
    ended = join(
        fill("<li><code>$p</code> $s: $r</li>", p=e.prefix, s=e.state, r=e.reason or "—")
        for e in closed
    )
    body = fill(
        """<p class="crumbs"><a href="/admin/node">Node</a></p><h1>Enterprise lifecycle</h1>
$error$tables<details><summary>Rejected and withdrawn ($n)</summary><ul>$ended</ul></details>""",
        error=fill('<p class="error" role="alert">$m</p>', m=error) if error else EMPTY,
        tables=tables,
        n=len(closed),
        ended=ended,
    )
    return show(request, "Enterprise lifecycle", body, status=status)


@signed_in
async def queue(request: web.Request) -> web.StreamResponse:
    return await _queue(request)


@signed_in
async def act(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    prefix, action, reason = field(form, "prefix"), field(form, "action"), field(form, "reason")
    node = node_of(request)
    try:
        done_ = await node.enterprises.act(
            prefix, action, reason, who=session_of(request).who, caller=caller_of(request)
        )
    except HandleError as exc:
        message = f"{LABELS.get(action, action)} {prefix}: {exc.message or exc.outcome.name}"
        return await _queue(request, message, exc.status)
    return done(request, f"{done_.prefix} is now {done_.state}.", PATH)
