"""A demo node: prefix 88.118, enterprise prefix 88.118.8 and a few product identifiers,
with fixed, documented secrets (for trying idnode out — never use them in production)."""

from __future__ import annotations

from pathlib import Path

from registry.bootstrap import prefix_values
from registry.model.identifiers import parse, prefix_handle
from registry.model.jsonvalues import value_from_json
from registry.model.values import Value
from registry.store.factory import without_password
from resolver.config import CONFIG_FILE, load, write_initial
from resolver.node import Node

NODE_PREFIX = "88.118"
ENTERPRISE = "88.118.8"
NODE_SECRET = "demo-node-secret"
ENTERPRISE_SECRET = "demo-enterprise-secret"

PRODUCTS = [
    ("JXDY2106023", "https://example.com/products/JXDY2106023", "Motor controller, batch 2106"),
    ("JXDY2106024", "https://example.com/products/JXDY2106024", "Motor controller, batch 2106"),
    ("PUMP-0001", "https://example.com/products/PUMP-0001", "Centrifugal pump, 15 kW"),
]


def _product(url: str, desc: str) -> list[Value]:
    return [
        value_from_json(v)
        for v in (
            {"index": 1, "type": "URL", "data": url},
            {"index": 2, "type": "DESC", "data": desc},
            {
                "index": 100,
                "type": "HS_ADMIN",
                "data": {
                    "format": "admin",
                    "value": {
                        "handle": prefix_handle(ENTERPRISE),
                        "index": 300,
                        "permissions": "111111111111",
                    },
                },
            },
        )
    ]


def _prepare_dir(data: Path, store: str | None) -> bool:
    """True when ``data`` is initialised now; False when it already holds a node."""
    data.mkdir(parents=True, exist_ok=True)
    if (data / CONFIG_FILE).exists():
        return False
    write_initial(data, NODE_PREFIX, "idnode demo node", without_password(store))
    return True


async def make_demo(data: Path, store: str | None = None) -> int:
    """Initialise ``data`` (if needed) as the demo node, its records in ``store`` (None:
    the configured one, else the SQLite file in ``data``)."""
    # Keys are made only with the node: an existing node that lost them must not get new ones.
    fresh = _prepare_dir(data, store)
    node = await Node.open(load(data, {"store": store}), create_keys=fresh, serving=False)
    try:
        items = [
            (parse(prefix_handle(NODE_PREFIX)), prefix_values(NODE_PREFIX, NODE_SECRET)),
            (parse(prefix_handle(ENTERPRISE)), prefix_values(ENTERPRISE, ENTERPRISE_SECRET)),
        ] + [(parse(f"{ENTERPRISE}/{s}"), _product(u, d)) for s, u, d in PRODUCTS]
        await node.registry.import_records(items)
        await node.ensure_keys_published()
    finally:
        await node.close()
    base = "http://127.0.0.1:8000"
    ent = f"300%3A0.NA%2F{ENTERPRISE}:{ENTERPRISE_SECRET}"
    print(f"""Demo node ready in {data} (prefix {NODE_PREFIX}, enterprise prefix {ENTERPRISE}).
Demo credentials (not for production): node admin 300:0.NA/{NODE_PREFIX} / {NODE_SECRET},
enterprise admin 300:0.NA/{ENTERPRISE} / {ENTERPRISE_SECRET}

Try, once it is serving on {base}:
  curl -s {base}/api/handles/{ENTERPRISE}/JXDY2106023
  curl -s '{base}/api/handles/{ENTERPRISE}/JXDY2106023?type=URL'
  curl -si {base}/{ENTERPRISE}/JXDY2106023
  curl -s -u '{ent}' -X PUT -H 'Content-Type: application/json' \\
       -d '{{"values":[{{"index":1,"type":"URL","data":"https://example.com/new"}}]}}' \\
       {base}/api/handles/{ENTERPRISE}/NEW-001
  curl -s -u '{ent}' '{base}/api/handles?prefix={ENTERPRISE}&page=0&pageSize=10'
  open {base}/ in a browser, and the admin console at {base}/admin/
""")
    return 0
