"""An identifier's page: its values in the plain value editor, its signature status, and
creating, saving and deleting it — each a call of the write service the HTTP API calls
(``put_record`` as ``PUT /api/handles/H``, ``delete_record`` as ``DELETE``) with the
signed-in identity, so the registry alone decides what is allowed."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode

from aiohttp import web

from registry.errors import InvalidHandle
from registry.model.identifiers import parse
from registry.model.values import HS_SECKEY, Value, type_key
from resolver.console.context import (
    caller_of,
    current_values,
    done,
    field,
    node_of,
    read_form,
    session_of,
    show,
    signed_in,
)
from resolver.console.html import EMPTY, Html, csrf_field, fill, join
from resolver.console.templateform import chooser, declared_template, template_form, texts_of
from resolver.console.valueform import Errors, Row, rows_from_form, rows_of, values_of
from resolver.http.keys import VERIFIER
from resolver.http.proxy import proxy_path
from resolver.verification import SignatureStatus

ROW = """<tr>
<td>$index$index_error</td><td>$type$type_error</td><td>$data$data_error</td>
<td>$perm$perm_error</td><td>$ttl$ttl_error</td></tr>"""

EDITOR = """<form method="post" action="$action" class="editor" novalidate>$csrf$hidden
$summary
<table class="values"><caption>Values</caption><thead><tr>
<th scope="col">Index</th><th scope="col">Type</th><th scope="col">Data</th>
<th scope="col">Permissions</th><th scope="col">TTL (s)</th></tr></thead>
<tbody>$rows</tbody></table>
<p class="hint">Empty a row to remove that value; fill an empty row to add one. Structured
data (HS_ADMIN, HS_SITE, ...) is JSON as the API writes it. A secret left empty is kept.</p>
<button type="submit">$submit</button></form>"""


def _input(n: int, name: str, value: str, label: str, errors: Errors, **attrs: str) -> Html:
    error = (n, name) in errors
    extra = join(fill(' $k="$v"', k=k, v=v) for k, v in attrs.items())
    described = fill(' aria-invalid="true" aria-describedby="err-$name-$n"', name=name, n=n)
    tag = "textarea" if name == "data" else "input"
    common = fill(
        'name="${name}_$n" id="${name}_$n" aria-label="$label"$extra$described',
        name=name,
        n=n,
        label=f"{label}, row {n + 1}",
        extra=extra,
        described=described if error else EMPTY,
    )
    if tag == "textarea":
        rows = str(min(12, max(1, value.count("\n") + 1)))
        return fill(
            '<textarea $common rows="$rows">$value</textarea>',
            common=common,
            rows=rows,
            value=value,
        )
    return fill('<input $common value="$value">', common=common, value=value)


def _error(n: int, name: str, errors: Errors) -> Html:
    message = errors.get((n, name))
    if message is None:
        return EMPTY
    return fill('<p class="field-error" id="err-$name-$n">$m</p>', name=name, n=n, m=message)


def editor(
    action: str, csrf: str, rows: Sequence[Row], errors: Errors, submit: str, hidden: Html
) -> Html:
    cells = []
    for n, row in enumerate(rows):
        secret = row.secret
        cells.append(
            fill(
                ROW,
                index=_input(n, "index", row.index, "Index", errors, inputmode="numeric", size="5"),
                type=_input(n, "type", row.type, "Type", errors, size="12"),
                data=_input(
                    n,
                    "data",
                    row.data,
                    "Data",
                    errors,
                    **({"placeholder": "secret: empty keeps it"} if secret else {}),
                ),
                perm=_input(
                    n, "perm", row.permissions, "Permissions", errors, size="4", placeholder="1110"
                ),
                ttl=_input(n, "ttl", row.ttl, "TTL", errors, size="6", placeholder="86400"),
                **{
                    f"{k}_error": _error(n, k, errors)
                    for k in ("index", "type", "data", "perm", "ttl")
                },
            )
        )
    summary = EMPTY
    if errors:
        count = len(errors)
        summary = fill(
            '<p class="error" role="alert">$m</p>',
            m=f"{count} field{'s' if count > 1 else ''} to correct: see below.",
        )
    return fill(
        EDITOR,
        action=action,
        csrf=csrf_field(csrf),
        hidden=hidden,
        summary=summary,
        rows=join(cells),
        submit=submit,
    )


def signature_panel(status: SignatureStatus) -> Html:
    if status.state == "verified":
        text = fill("Verified: signed by <code>$s</code>", s=status.signer)
    elif status.state == "unsigned":
        text = Html("Unsigned: this record carries no signature.")
    else:
        text = fill("Signature check failed: $r", r="; ".join(status.reasons))
    return fill('<p class="sig sig-$state">$text</p>', state=status.state, text=text)


def _client_values(values: Sequence[Value]) -> list[Value]:
    return [v for v in values if type_key(v.type) != "HS_SIGNATURE"]


def _secrets(values: Sequence[Value]) -> dict[int, bytes]:
    return {v.index: v.data for v in values if type_key(v.type) == HS_SECKEY}


async def _edit_page(
    request: web.Request, handle: str, rows: Sequence[Row], errors: Errors, status: int = 200
) -> web.Response:
    values = await current_values(request, handle)
    verifier = request.app[VERIFIER]
    session = session_of(request)
    body = fill(
        """<p class="crumbs"><a href="/admin/prefix/$prefix">$prefix</a></p>
<h1>$handle</h1>
<p class="links"><a href="$page">Record page</a> · <a href="$json">JSON</a></p>
$sig$editor
<form method="post" action="/admin/identifier/delete" class="danger">$csrf
<input type="hidden" name="handle" value="$handle">
<label><input type="checkbox" name="confirm" value="yes" required> Delete $handle and all its
values</label> <button type="submit" class="danger">Delete</button></form>""",
        prefix=parse(handle).prefix,
        handle=handle,
        page=proxy_path(handle) + "?noredirect",
        json="/api/handles/" + handle,
        sig=signature_panel(await verifier.status(handle, values)),
        editor=editor(
            "/admin/identifier",
            session.csrf,
            rows,
            errors,
            "Save",
            fill('<input type="hidden" name="handle" value="$h">', h=handle),
        ),
        csrf=csrf_field(session.csrf),
    )
    return show(request, handle, body, status=status)


@signed_in
async def edit_page(request: web.Request) -> web.StreamResponse:
    handle = request.query.get("handle", "").strip()
    ident = parse(handle)
    values = await current_values(request, handle)
    template = None if request.query.get("plain") else await declared_template(request, values)
    if template is not None:
        texts = texts_of(template, values)
        return template_form(request, template, ident.prefix, ident.local, texts, {}, "edit")
    return await _edit_page(request, handle, rows_of(_client_values(values)), {})


@signed_in
async def save(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    handle = field(form, "handle")
    ident = parse(handle)
    rows = rows_from_form(form)
    current = await current_values(request, handle)
    values, errors = values_of(rows, _secrets(current))
    if errors:
        return await _edit_page(request, handle, rows, errors, status=400)
    if not values:
        raise InvalidHandle("A record needs at least one value: delete it instead")
    node = node_of(request)
    await node.registry.put_record(
        ident, values, overwrite=True, who=session_of(request).who, caller=caller_of(request)
    )
    return done(request, f"Saved {handle}.", "/admin/identifier?" + _q(handle))


def _q(handle: str) -> str:
    return urlencode({"handle": handle})


NEW = """<p class="crumbs"><a href="/admin/prefix/$prefix">$prefix</a></p>
<h1>New identifier under $prefix</h1>$chooser$editor"""


def _new_page(
    request: web.Request,
    prefix: str,
    suffix: str,
    rows: Sequence[Row],
    errors: Errors,
    suffix_error: str = "",
    status: int = 200,
    chooser: Html = EMPTY,
) -> web.Response:
    session = session_of(request)
    error = (
        fill('<p class="field-error" id="err-suffix">$m</p>', m=suffix_error)
        if suffix_error
        else EMPTY
    )
    hidden = fill(
        """<input type="hidden" name="prefix" value="$prefix">
<div class="field"><label for="suffix">Identifier</label>
<span class="affix">$prefix/</span><input id="suffix" name="suffix" value="$suffix" required
 $invalid>$error</div>""",
        prefix=prefix,
        suffix=suffix,
        error=error,
        invalid=Html('aria-invalid="true" aria-describedby="err-suffix"')
        if suffix_error
        else EMPTY,
    )
    body = fill(
        NEW,
        prefix=prefix,
        chooser=chooser,
        editor=editor("/admin/identifier/new", session.csrf, rows, errors, "Create", hidden),
    )
    return show(request, f"New identifier — {prefix}", body, status=status)


@signed_in
async def new_page(request: web.Request) -> web.StreamResponse:
    prefix = request.query.get("prefix", "").strip() or session_of(request).prefix
    templates = node_of(request).templates
    name = request.query.get("template", "").strip()
    if name:
        template = await templates.get(name)
        return template_form(request, template, prefix, "", [], {}, "new")
    names = {
        t.name: f"{t.name} — {t.description}" if t.description else t.name
        for t in await templates.list_all()
    }
    rows = [Row("1", "URL", "", "", ""), *rows_of([])]
    return _new_page(request, prefix, "", rows, {}, chooser=chooser(prefix, names))


@signed_in
async def create(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    prefix, suffix = field(form, "prefix"), field(form, "suffix")
    rows = rows_from_form(form)
    values, errors = values_of(rows, {})
    suffix_error = ""
    if not suffix:
        suffix_error = "Give the identifier's suffix, the part after the prefix."
    else:
        try:
            parse(f"{prefix}/{suffix}")
        except InvalidHandle as exc:
            suffix_error = exc.message or "Not a valid identifier."
    if not values and not errors:
        errors[(0, "data")] = "Give at least one value."
    if errors or suffix_error:
        return _new_page(request, prefix, suffix, rows, errors, suffix_error, status=400)
    handle = f"{prefix}/{suffix}"
    node = node_of(request)
    await node.registry.put_record(
        parse(handle),
        values,
        overwrite=False,
        who=session_of(request).who,
        caller=caller_of(request),
    )
    return done(request, f"Created {handle}.", "/admin/identifier?" + _q(handle))


@signed_in
async def delete(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    handle = field(form, "handle")
    ident = parse(handle)
    if field(form, "confirm") != "yes":
        raise InvalidHandle("Tick the box to confirm the deletion")
    await node_of(request).registry.delete_record(
        ident, session_of(request).who, caller=caller_of(request)
    )
    return done(request, f"Deleted {handle}.", f"/admin/prefix/{ident.prefix}")
