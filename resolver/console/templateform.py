"""The identifier form by metadata template: one input per template field (an enum's a
select), built into values with the ``TEMPLATE`` value and written through the same
``put_record`` as every console write. The registry checks the template
(:class:`registry.errors.TemplateViolation`); each field it names is shown beside its input.

Creating: ``/admin/identifier/new?template=NAME`` (the plain form offers the choice).
Editing a record that declares a template shows this form too; its other values (HS_ADMIN,
secrets, values of types the template does not name) are kept as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import urlencode

from aiohttp import web

from registry.errors import HandleError, InvalidHandle, TemplateViolation
from registry.model import templates as tpl
from registry.model.identifiers import parse
from registry.model.values import Value, type_key
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

FORM = """<p class="crumbs"><a href="/admin/prefix/$prefix">$prefix</a></p>
<h1>$title</h1><p class="hint">Template <code>$ref</code>$description$plain</p>
<form method="post" action="/admin/identifier/template" class="stack templated" novalidate>
$csrf<input type="hidden" name="prefix" value="$prefix"><input type="hidden" name="template"
 value="$name"><input type="hidden" name="mode" value="$mode">$summary$suffix$inputs
<button type="submit">$submit</button></form>"""

SUFFIX = """<div class="field"><label for="suffix">Identifier</label>
<span class="affix">$prefix/</span><input id="suffix" name="suffix" value="$suffix"
 $readonly required>$error</div>"""

FIELD = """<div class="field"><label for="f_$n">$type$required</label>$control
<small id="hint-$n">$hint</small>$error</div>"""

Errors = dict[str, str]  # type key (or "suffix") → message


def hint(f: tpl.Field) -> str:
    parts = [f.datatype]
    if f.pattern is not None:
        parts.append(f"pattern {f.pattern.pattern}")
    if f.index is not None:
        parts.append(f"index {f.index}")
    return ", ".join(parts)


def _error(key: str, errors: Errors) -> Html:
    if key not in errors:
        return EMPTY
    return fill('<p class="field-error" id="err-$k">$m</p>', k=key, m=errors[key])


def control(n: int, f: tpl.Field, value: str, errors: Errors) -> Html:
    key = type_key(f.type)
    aria = fill(' aria-describedby="hint-$n"', n=n)
    if key in errors:
        aria = fill(' aria-invalid="true" aria-describedby="err-$k hint-$n"', k=key, n=n)
    if f.datatype == "enum":
        selected = Html(" selected")
        options = join(
            fill('<option value="$v"$s>$v</option>', v=v, s=selected if v == value else EMPTY)
            for v in ("", *f.enum)
        )
        return fill('<select id="f_$n" name="f_$n"$aria>$o</select>', n=n, aria=aria, o=options)
    kind = {"int": "text", "date": "date", "url": "url"}.get(f.datatype, "text")
    return fill(
        '<input id="f_$n" name="f_$n" type="$kind" value="$v"$aria>',
        n=n,
        kind=kind,
        v=value,
        aria=aria,
    )


def template_form(
    request: web.Request,
    template: tpl.Template,
    prefix: str,
    suffix: str,
    texts: Sequence[str],
    errors: Errors,
    mode: str,
    status: int = 200,
) -> web.Response:
    inputs = join(
        fill(
            FIELD,
            n=n,
            type=f.type,
            required=Html(" <small>(required)</small>") if f.required else EMPTY,
            control=control(n, f, texts[n] if n < len(texts) else "", errors),
            hint=hint(f),
            error=_error(type_key(f.type), errors),
        )
        for n, f in enumerate(template.fields)
    )
    summary = EMPTY
    if errors:
        count = len(errors.keys() - {""})
        said = f"{count} field{'s' if count > 1 else ''} to correct: see below." if count else ""
        general = errors.get("", "")  # what the registry said of no field of the form
        summary = fill(
            '<p class="error" role="alert">$m</p>', m=" ".join(filter(None, (general, said)))
        )
    suffix_html = fill(
        SUFFIX,
        prefix=prefix,
        suffix=suffix,
        readonly=Html("readonly") if mode == "edit" else EMPTY,
        error=_error("suffix", errors),
    )
    title = f"{prefix}/{suffix}" if mode == "edit" else f"New {template.name} under {prefix}"
    body = fill(
        FORM,
        prefix=prefix,
        title=title,
        ref=template.ref,
        description=f": {template.description}" if template.description else "",
        csrf=csrf_field(session_of(request).csrf),
        name=template.name,
        mode=mode,
        summary=summary,
        suffix=suffix_html,
        inputs=inputs,
        submit="Save" if mode == "edit" else "Create",
        plain=fill(
            ' · <a href="/admin/identifier?$q">plain editor</a>', q=plain_query(prefix, suffix)
        )
        if mode == "edit"
        else EMPTY,
    )
    return show(request, title, body, status=status)


def plain_query(prefix: str, suffix: str) -> str:
    return urlencode({"handle": f"{prefix}/{suffix}", "plain": "1"})


def texts_of(template: tpl.Template, values: Sequence[Value]) -> list[str]:
    """Each field's current text in ``values`` (the first value of its type)."""
    by_type: dict[str, str] = {}
    for v in values:
        by_type.setdefault(type_key(v.type), v.data.decode("utf-8", "replace"))
    return [by_type.get(type_key(f.type), "") for f in template.fields]


def build(
    template: tpl.Template, texts: Sequence[str], kept: Sequence[Value], current: Sequence[Value]
) -> list[Value]:
    """The record's values: ``kept`` as they are, a value per filled field (at the template's
    index, else the index its type had in ``current``, else the lowest free one) and the
    TEMPLATE value."""
    had = {type_key(v.type): v.index for v in current}
    used = {v.index for v in kept} | {f.index for f in template.fields if f.index is not None}
    out = list(kept)

    def free() -> int:
        n = 1
        while n in used:
            n += 1
        used.add(n)
        return n

    for f, text in zip(template.fields, texts, strict=True):
        if not text:
            continue  # a required field left empty: the registry names it
        index = f.index or had.get(type_key(f.type))
        if index is None or (f.index is None and index in used):
            index = free()
        used.add(index)
        out.append(Value(index, f.type, text.encode("utf-8")))
    index = had.get(tpl.TEMPLATE)
    if index is None or index in used:
        index = free()
    out.append(Value(index, tpl.TEMPLATE, template.name.encode("utf-8")))
    return out


def violations(exc: TemplateViolation, template: tpl.Template) -> Errors:
    """The registry's per-field errors by the field's type key (others under "")."""
    fields = {type_key(f.type) for f in template.fields}
    errors: Errors = {}
    for e in exc.errors:
        key = type_key(str(e.get("type", "")))
        key = key if key in fields else ""
        message = str(e.get("message", ""))
        errors[key] = f"{errors[key]}; {message}" if key in errors else message
    return errors


async def declared_template(request: web.Request, values: Sequence[Value]) -> tpl.Template | None:
    """The template a record's values declare (None: none, or one this node lacks)."""
    declared = tpl.declared(values)
    if not declared:
        return None
    try:
        name, version = tpl.parse_ref(declared[0].data.decode("utf-8", "replace"))
        return await node_of(request).templates.get(name, version)
    except HandleError:  # an unknown template: the plain editor shows the record
        return None


def chooser(prefix: str, names: Mapping[str, str]) -> Html:
    """The GET form choosing a template for a new identifier (empty: no templates)."""
    if not names:
        return EMPTY
    options = join(fill('<option value="$n">$t</option>', n=n, t=t) for n, t in names.items())
    return fill(
        """<form method="get" action="/admin/identifier/new" class="search">
<input type="hidden" name="prefix" value="$prefix"><div><label for="template">Fill in by
template</label><select id="template" name="template">$options</select></div>
<button type="submit">Use template</button></form>""",
        prefix=prefix,
        options=options,
    )


@signed_in
async def submit(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    node = node_of(request)
    template = await node.templates.get(field(form, "template"))
    prefix, suffix, mode = field(form, "prefix"), field(form, "suffix"), field(form, "mode")
    texts = [field(form, f"f_{n}") for n in range(len(template.fields))]
    errors: Errors = {}
    try:
        ident = parse(f"{prefix}/{suffix}")
    except InvalidHandle as exc:
        errors["suffix"] = exc.message or "Not a valid identifier."
        return template_form(request, template, prefix, suffix, texts, errors, mode, 400)
    who = session_of(request).who
    current: list[Value] = []
    if mode == "edit":
        current = await current_values(request, ident.text)
    names = {type_key(f.type) for f in template.fields} | {tpl.TEMPLATE, "HS_SIGNATURE"}
    kept = [v for v in current if type_key(v.type) not in names]
    values = build(template, texts, kept, current)
    try:
        await node.registry.put_record(
            ident, values, overwrite=mode == "edit", who=who, caller=caller_of(request)
        )
    except TemplateViolation as exc:
        errors = violations(exc, template)
        return template_form(request, template, prefix, suffix, texts, errors, mode, 400)
    verb = "Saved" if mode == "edit" else "Created"
    target = "/admin/identifier?" + urlencode({"handle": ident.text})
    return done(request, f"{verb} {ident.text}.", target)
