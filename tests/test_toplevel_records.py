"""The top-level's published records: ``0.0/0.0`` and ``0.NA/<prefix>`` over its Handle API,
signed by its root so that clients verify them offline (``verify_record``) trusting the
root's JWK — and, through the certificate issued at registration, the node's own records."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from registry.model.pubkey import pubkey_from_jwk
from registry.model.values import Value
from registry.signing.claims import Signer, issue_cert
from registry.signing.keys import SigningKey
from registry.signing.verify import verify_record
from tests.toplevel_support import PREFIX, init, new_app, prefix_item, serving, with_node


def by_index(values: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {v["index"]: v for v in values}


@pytest.mark.parametrize("alg", ["EdDSA", "RS256"])
async def test_records_resolve_and_verify(tmp_path: Path, alg: str) -> None:
    data = tmp_path / "tl"
    root_jwk = init(data, "--signing-alg", alg)
    app = new_app(data)
    node_key = SigningKey.generate("ES256")
    async with serving(data, "--record-ttl", "600") as tl:
        answer = await tl.register(
            app, node_key, http="http://127.0.0.1:8001", tcp_port=2641, udp_port=2642
        )
        assert answer.status == 200, answer
        batch = await tl.batch(node_key, app, [prefix_item("p1", "88.118.8")])
        assert batch.body["results"][0]["status"] == "accepted"
        now = int(time.time())

        # 0.0/0.0: the root key and its self-issued certificate.
        root = await tl.get("/api/handles/0.0/0.0")
        assert root.status == 200, root
        assert root.body["responseCode"] == 1 and root.body["handle"] == "0.0/0.0"
        values = by_index(root.body["values"])
        assert sorted(values) == [300, 301, 400]
        assert values[300]["type"] == "HS_PUBKEY"
        assert values[300]["data"] == {"format": "key", "value": root_jwk}
        assert values[301]["type"] == "HS_CERT"
        assert values[400]["type"] == "HS_SIGNATURE"

        # 0.NA/88.118: the node's site, key and certificate.
        record = await tl.get(f"/api/handles/0.NA/{PREFIX}")
        assert record.status == 200, record
        values = by_index(record.body["values"])
        assert sorted(values) == [1, 300, 400, 700]
        assert {v["ttl"] for v in values.values()} == {600}
        site = values[1]["data"]["value"]
        assert values[1]["type"] == "HS_SITE" and values[1]["data"]["format"] == "site"
        assert {"name": "http", "value": "http://127.0.0.1:8001"} in site["attributes"]
        (server,) = site["servers"]
        assert server["serverId"] == 1 and server["address"] == "127.0.0.1"
        assert server["publicKey"] == {"format": "key", "value": node_key.public_jwk()}
        assert [(i["protocol"], i["port"]) for i in server["interfaces"]] == [
            ("HTTP", 8001),
            ("TCP", 2641),
            ("UDP", 2642),
        ]
        assert values[300]["data"] == {"format": "key", "value": node_key.public_jwk()}
        assert values[700]["type"] == "HS_CERT"
        assert values[700]["data"] == {"format": "string", "value": answer.body["cert"]}

        # 0.NA/88.118.8: routed to the node, without a certificate.
        enterprise = await tl.get("/api/handles/0.NA/88.118.8")
        assert sorted(by_index(enterprise.body["values"])) == [1, 300, 400]

        # Every record verifies offline against the root JWK, certificates fetched from the
        # top-level itself.
        for handle in ("0.0/0.0", f"0.NA/{PREFIX}", "0.NA/88.118.8"):
            fetched = await tl.fetch(handle)
            assert fetched is not None
            report = await verify_record(
                handle, fetched, fetch=tl.fetch, trust_roots=[root_jwk], now=now
            )
            assert report.ok, (handle, report.reasons)
            (sig,) = report.signatures
            assert sig.issuer == "300:0.0/0.0" and sig.chain == ["300:0.0/0.0"]

            # ... and not against another root, nor once a value is changed.
            other = SigningKey.generate().public_jwk()
            report = await verify_record(
                handle, fetched, fetch=tl.fetch, trust_roots=[other], now=now
            )
            assert not report.ok and "untrusted root" in " ".join(report.reasons)
            first = fetched[0]
            forged = [replace(first, data=first.data + b"x"), *fetched[1:]]
            report = await verify_record(
                handle, forged, fetch=tl.fetch, trust_roots=[root_jwk], now=now
            )
            assert not report.ok and "digest mismatch" in " ".join(report.reasons)

        # The node's records verify up to the top-level's root: signing key -> node root
        # (certified by the top-level at registration) -> 300:0.0/0.0.
        signing_key = SigningKey.generate()
        node_handle = f"0.NA/{PREFIX}"
        published = list(await tl.fetch(node_handle) or [])
        signing_cert = issue_cert(
            f"600:{node_handle}",
            node_key,
            f"601:{node_handle}",
            signing_key.public_jwk(),
            [(node_handle, "thisHandle"), (node_handle, "derivedPrefixes")],
            now,
            3600,
        )
        node_record = [
            *published,
            Value(601, "HS_PUBKEY", pubkey_from_jwk(signing_key.public_jwk())),
            Value(701, "HS_CERT", signing_cert.encode()),
        ]

        async def fetch(handle: str) -> list[Value] | None:
            if handle.upper() == node_handle.upper():
                return node_record  # as the node publishes its prefix handle
            return list(await tl.fetch(handle) or []) or None

        item = [Value(1, "URL", b"https://example.org/x")]
        item = list(
            Signer(signing_key, f"601:{node_handle}", 3600).sign_values("88.118.8/X", item, now)
        )
        report = await verify_record(
            "88.118.8/X", item, fetch=fetch, trust_roots=[root_jwk], now=now
        )
        assert report.ok, report.reasons
        assert report.signatures[0].chain == [
            f"601:{node_handle}",
            f"600:{node_handle}",
            "300:0.0/0.0",
        ]
        # The certificate covers the node's prefixes only.
        elsewhere = list(
            Signer(signing_key, f"601:{node_handle}", 3600).sign_values(
                "88.119/X", [Value(1, "URL", b"x")], now
            )
        )
        report = await verify_record(
            "88.119/X", elsewhere, fetch=fetch, trust_roots=[root_jwk], now=now
        )
        assert not report.ok and "does not permit" in " ".join(report.reasons)


async def test_handle_api_answers_like_idnode(tmp_path: Path) -> None:
    async with with_node(tmp_path / "tl") as (tl, _app, _key):
        absent = await tl.get("/api/handles/0.NA/99.1")
        assert absent.status == 404
        assert absent.body == {"responseCode": 100, "handle": "0.NA/99.1"}
        assert (await tl.get("/api/handles/88.118.8/X")).status == 404
        # Without '/', a prefix names its prefix handle; the answer echoes what was asked.
        short = await tl.get(f"/api/handles/{PREFIX}")
        assert short.status == 200 and short.body["handle"] == PREFIX
        lower = await tl.get(f"/api/handles/0.na/{PREFIX}")
        assert lower.status == 200 and lower.body["handle"] == f"0.na/{PREFIX}"
        # Record TTL defaults to an hour; filters work as idnode's.
        record = await tl.get(f"/api/handles/0.NA/{PREFIX}?type=HS_SITE&index=400")
        assert [v["index"] for v in record.body["values"]] == [1, 400]
        assert record.body["values"][0]["ttl"] == 3600
        nothing = await tl.get(f"/api/handles/0.NA/{PREFIX}?type=URL")
        assert nothing.body == {"responseCode": 200, "values": [], "handle": f"0.NA/{PREFIX}"}
        bad = await tl.get(f"/api/handles/0.NA/{PREFIX}?index=x")
        assert bad.status == 400 and bad.body["responseCode"] == 4
