"""The top-level's HTML page (``GET /``): plain tables, no JavaScript."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

import orjson

from registry.model.jsonvalues import iso_time
from sync.protocol import STATS_COUNTS

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 2em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
code { font-size: .9em; }
.muted { color: #777; }
"""
MAX_STATUS_CHARS = 300


def _cell(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="n">{value:,}</td>'
    return f"<td>{value}</td>"  # already escaped HTML


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], empty: str) -> str:
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="muted">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return f"<table><tr>{head}</tr>{body}</table>"


def _age(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def _heartbeat(hb: dict[str, Any] | None) -> str:
    if hb is None:
        return '<span class="muted">none yet</span>'
    status = orjson.dumps(hb["status"]).decode()
    if len(status) > MAX_STATUS_CHARS:
        status = status[:MAX_STATUS_CHARS] + "…"
    return f"{iso_time(hb['time'])} ({_age(hb['age'])})<br><code>{escape(status)}</code>"


def _site(site: dict[str, Any]) -> str:
    url = escape(site["http"])
    parts = [f'<a href="{url}">{url}</a>', escape(site["address"])]
    for proto in ("tcp", "udp"):
        if site.get(f"{proto}_port") is not None:
            parts.append(f"{proto.upper()} {site[f'{proto}_port']}")
    return "<br>".join(parts)


def render(data: dict[str, Any], now: int) -> str:
    """The page for :func:`sync.toplevel.views.everything`'s ``data``."""
    nodes = _table(
        ("app id", "name", "prefixes", "site", "registered", "last heartbeat"),
        (
            (
                f"<code>{escape(n['app_id'])}</code>",
                escape(n["name"]),
                escape(", ".join(n["prefixes"])),
                _site(n["site"]),
                iso_time(n["registered"]),
                _heartbeat(n["heartbeat"]),
            )
            for n in data["nodes"]
        ),
        "No node has registered yet.",
    )
    apps = _table(
        ("app id", "prefix", "name", "approval", "created", "registered"),
        (
            (
                f"<code>{escape(a['app_id'])}</code>",
                escape(a["prefix"]),
                escape(a["name"]),
                escape(a["approval"]),
                iso_time(a["created"]),
                "yes" if a["registered"] else "no",
            )
            for a in data["apps"]
        ),
        "No app yet: idnode toplevel app create --data DIR --prefix P",
    )
    prefixes = _table(
        ("prefix", "kind", "status", "app id", "updated"),
        (
            (
                escape(p["prefix"]),
                escape(p["kind"]),
                escape(p["status"]),
                f"<code>{escape(p['app_id'])}</code>",
                iso_time(p["updated"]),
            )
            for p in data["prefixes"]
        ),
        "No prefix is routed yet.",
    )
    counts = tuple(STATS_COUNTS)
    stats = _table(
        ("prefix", "interval start", "seconds", *counts),
        (
            (
                escape(s["prefix"]),
                iso_time(s["start"]),
                s["seconds"],
                *(s[c] for c in counts),
            )
            for s in data["stats"]["intervals"]
        ),
        "No statistics received yet.",
    )
    totals = _table(
        ("prefix", "intervals", *counts),
        (
            (escape(t["prefix"]), t["intervals"], *(t[c] for c in counts))
            for t in data["stats"]["totals"]
        ),
        "No statistics received yet.",
    )
    items = _table(
        ("app id", "prefix", "accepted", "duplicate", "rejected", "item ids seen"),
        (
            (
                f"<code>{escape(i['app_id'])}</code>",
                escape(i["prefix"]),
                i["accepted"],
                i["duplicate"],
                i["rejected"],
                i["ids"],
            )
            for i in data["items"]
        ),
        "No app yet.",
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>idnode mock top-level node</title><style>{_STYLE}</style></head>
<body>
<h1>Mock national top-level node</h1>
<p class="muted">As of {iso_time(now)}. JSON: <a href="/toplevel/v1/nodes">nodes</a>,
<a href="/toplevel/v1/prefixes">prefixes</a>, <a href="/toplevel/v1/stats">stats</a>,
<a href="/toplevel/v1/items">items</a>; records: <a href="/api/handles/0.0/0.0">0.0/0.0</a>.</p>
<h2>Nodes</h2>{nodes}
<h2>Apps</h2>{apps}
<h2>Prefixes</h2>{prefixes}
<h2>Statistics per interval</h2>{stats}
<h2>Statistics totals per prefix</h2>{totals}
<h2>Batch items per app</h2>{items}
</body></html>
"""
