"""The record page (``GET /{handle}?noredirect``) for people: each value rendered by its
type — HS_ADMIN as who may do what in words, HS_SITE as servers, addresses, ports and
protocols, HS_PUBKEY as a key summary, signatures and certificates as their claims, long
base64 wrapped — with readable TTLs and timestamps, and the record's signature status at the
top (a failed check is never shown as verified). Rendering only: no I/O."""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping, Sequence
from typing import Any

from registry.errors import InvalidValue
from registry.model import admin as adm
from registry.model.jsonvalues import data_to_json
from registry.model.site import site_from_bytes
from registry.model.values import (
    HS_ADMIN,
    HS_PUBKEY,
    HS_VLIST,
    PERM_DEFAULT,
    TTL_ABSOLUTE,
    URL,
    Value,
    permissions_to_text,
    type_key,
)
from registry.signing import jws
from registry.signing.keys import JwkError, jwk_thumbprint
from resolver.console.html import EMPTY, Html, esc, fill, join
from resolver.verification import SignatureStatus

SIGNED_TYPES = ("HS_SIGNATURE", "HS_CERT")


def duration(seconds: int) -> str:
    """``86400`` → ``1 day``; ``90`` → ``1 min 30 s``."""
    if seconds <= 0:
        return f"{seconds} s"
    parts = []
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'s' if unit == 'day' and count > 1 else ''}")
    return " ".join(parts[:2])


def when(epoch: int) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))
    except (OverflowError, OSError, ValueError):
        return str(epoch)


def _kv(items: Sequence[tuple[str, Html | str]]) -> Html:
    return fill(
        '<dl class="kv">$rows</dl>',
        rows=join(fill("<dt>$k</dt><dd>$v</dd>", k=k, v=v) for k, v in items),
    )


def _record_link(handle: str, index: int, link: Any) -> Html:
    text = f"{index}:{handle}"
    return fill('<a href="$href"><code>$t</code></a>', href=link(handle), t=text)


def admin_html(data: bytes, link: Any) -> Html:
    a = adm.decode_admin(data)
    rights = [name for bit, name in adm.RIGHT_NAMES.items() if a.permissions & bit]
    shown = (
        Html("every right")
        if a.permissions == adm.ALL_RIGHTS
        else fill(
            '<ul class="rights">$items</ul>',
            items=join(fill("<li>$r</li>", r=r) for r in rights) or Html("<li>none</li>"),
        )
    )
    return _kv(
        [
            ("admin", _record_link(a.admin.handle, a.admin.index, link)),
            ("may", shown),
            ("bits", fill("<code>$b</code>", b=adm.rights_to_text(a.permissions))),
        ]
    )


def key_summary(jwk: Mapping[str, Any]) -> str:
    kty = jwk.get("kty")
    if kty == "OKP" or kty == "EC":
        kind = f"{jwk.get('crv')} ({'EdDSA' if kty == 'OKP' else 'ECDSA'})"
    elif kty == "RSA":
        n = str(jwk.get("n", ""))
        kind = f"RSA {len(base64.urlsafe_b64decode(n + '=' * (-len(n) % 4))) * 8} bit"
    elif kty == "DSA":
        kind = "DSA"
    else:
        kind = str(kty)
    try:
        return f"{kind}, thumbprint {jwk_thumbprint(jwk)}"
    except (JwkError, ValueError):
        return kind


def pubkey_html(data: bytes) -> Html:
    shown = data_to_json(HS_PUBKEY, data)
    if shown["format"] == "key":
        return fill("$s", s=key_summary(shown["value"]))
    return wrapped(str(shown["value"]))


def site_html(data: bytes) -> Html:
    site = site_from_bytes(data)
    servers = []
    for server in site["servers"]:
        interfaces = ", ".join(
            f"{i['protocol']} {i['port']}"
            + f" ({'+'.join(k for k in ('query', 'admin') if i[k]) or 'none'})"
            for i in server["interfaces"]
        )
        key = server["publicKey"]
        servers.append(
            fill(
                "<li>server $id at <code>$addr</code>: $ifs<br><small>key: $key</small></li>",
                id=server["serverId"],
                addr=server["address"],
                ifs=interfaces or "no interfaces",
                key=key_summary(key["value"]) if key["format"] == "key" else "none",
            )
        )
    attributes = ", ".join(f"{a['name']}={a['value']}" for a in site["attributes"])
    role = "primary" if site["primarySite"] else "mirror"
    if site["multiPrimary"]:
        role += ", multi-primary"
    return _kv(
        [
            ("site", f"{role}, protocol {site['protocolVersion']}, serial {site['serialNumber']}"),
            ("servers", fill('<ul class="rights">$s</ul>', s=join(servers))),
            *([("attributes", attributes)] if attributes else []),
        ]
    )


def jws_html(data: bytes) -> Html:
    text = data.decode("utf-8", "replace")
    try:
        token = jws.decode(text)
    except jws.JwsError:
        return wrapped(text)
    claims = token.payload
    items: list[tuple[str, Html | str]] = [("algorithm", token.alg)]
    for name, label in (("iss", "issuer"), ("sub", "subject")):
        if isinstance(claims.get(name), str):
            items.append((label, fill("<code>$v</code>", v=claims[name])))
    for name, label in (("nbf", "valid from"), ("exp", "expires")):
        if isinstance(claims.get(name), int):
            items.append((label, when(claims[name])))
    digests = claims.get("digests")
    if isinstance(digests, Mapping) and isinstance(digests.get("digests"), list):
        indexes = [str(d.get("index")) for d in digests["digests"] if isinstance(d, Mapping)]
        items.append(("covers", "indexes " + ", ".join(indexes)))
    return join(
        [
            _kv(items),
            fill("<details><summary>JWS</summary>$w</details>", w=wrapped(text)),
        ]
    )


def vlist_html(data: bytes, link: Any) -> Html:
    refs = adm.decode_vlist(data)
    return join(Html(_record_link(r.handle, r.index, link) + "<br>") for r in refs)


def wrapped(text: str) -> Html:
    return fill('<code class="wrap">$t</code>', t=text)


def data_html(value: Value, link: Any, url_href: str | None) -> Html:
    """A value's data for people."""
    kind = type_key(value.type)
    try:
        if kind == HS_ADMIN:
            return admin_html(value.data, link)
        if kind == HS_VLIST:
            return vlist_html(value.data, link)
        if kind in ("HS_SITE", "HS_SITE.PREFIX"):
            return site_html(value.data)
        if kind == HS_PUBKEY:
            return pubkey_html(value.data)
        if kind in SIGNED_TYPES:
            return jws_html(value.data)
    except (InvalidValue, ValueError):
        pass  # shown as the JSON API shows it
    shown = data_to_json(value.type, value.data)
    text = shown["value"] if isinstance(shown["value"], str) else str(shown["value"])
    if kind == URL and url_href is not None:
        return fill('<a class="wrap" href="$h">$t</a>', h=url_href, t=text)
    if shown["format"] != "string" or len(text) > 80:
        return wrapped(text)
    return esc(text)


def ttl_text(value: Value) -> str:
    if value.ttl_type == TTL_ABSOLUTE:
        return f"until {when(value.ttl)}"
    return duration(value.ttl)


def status_html(status: SignatureStatus | None) -> Html:
    """The record's signature status; None: not checked (shown as such, never as verified)."""
    if status is None:
        return Html('<p class="sig sig-unsigned">Signature not checked.</p>')
    if status.state == "verified":
        until = f", valid until {when(status.expires)}" if status.expires else ""
        return fill(
            '<p class="sig sig-verified">✔ Signature verified: signed by <code>$s</code>$u.</p>',
            s=status.signer,
            u=until,
        )
    if status.state == "unsigned":
        return Html('<p class="sig sig-unsigned">Unsigned: this record carries no signature.</p>')
    return fill(
        '<p class="sig sig-failed">✘ Signature check failed: $r</p>', r="; ".join(status.reasons)
    )


def values_table(values: Sequence[Value], link: Any, url_href: Any) -> Html:
    """``link(handle)``: the page of another record; ``url_href(value)``: where a URL value
    may link to (None: shown as text)."""
    rows = []
    for v in values:
        perms = (
            EMPTY
            if v.permissions == PERM_DEFAULT
            else fill(
                '<br><span class="perm">permissions $p</span>', p=permissions_to_text(v.permissions)
            )
        )
        rows.append(
            fill(
                '<tr><td class="num">$i</td><td><code>$t</code>$perms</td>'
                '<td class="data">$d</td><td class="nowrap">$ttl</td><td>$ts</td></tr>',
                i=v.index,
                t=v.type,
                perms=perms,
                d=data_html(v, link, url_href(v)),
                ttl=ttl_text(v),
                ts=when(v.timestamp) if v.timestamp else "—",
            )
        )
    return fill(
        '<table class="record"><thead><tr><th scope="col">Index</th><th scope="col">Type</th>'
        '<th scope="col">Data</th><th scope="col">TTL</th><th scope="col">Timestamp</th>'
        "</tr></thead><tbody>$rows</tbody></table>",
        rows=join(rows),
    )


# The public pages (landing, record, errors): the console's stylesheet, no script at all.
LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title><link rel="stylesheet" href="/admin/static/console.css"></head>
<body><header class="top"><a class="brand" href="/">$node</a>$search</header>
<main>$body</main></body></html>
"""

SEARCH = """<form action="/resolve" method="get" class="resolve-box" role="search">
<input name="handle" aria-label="identifier" placeholder="identifier">
<button type="submit">Resolve</button></form>"""

RECORD = """<h1>$handle</h1>$intro$status
<section>$table</section>
<p><a href="$json">This record as JSON</a></p>"""


def layout(title: str, node: str, body: Html, *, search: bool = True) -> str:
    """A public page: ``body`` under the header (with the resolve box when ``search``)."""
    return fill(LAYOUT, title=title, node=node, body=body, search=Html(SEARCH) if search else EMPTY)
