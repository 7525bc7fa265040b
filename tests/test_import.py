"""Bulk import with its worker processes: the records they prepare are the ones the node
signs itself (they verify up to its root, and match a single-process import value for
value), a bad line stops the import at its line with no partial batch, and a key rotated
while batches are being prepared signs what is committed after it."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.bulk import Preparer
from registry.bulk import _value as bulk_value
from registry.errors import HandleError
from registry.model.jsonvalues import value_from_json
from registry.model.values import Value
from registry.rotation import rotate
from resolver.config import load
from resolver.node import Node
from resolver.transfer import ImportLineError, import_lines
from resolver.verification import local_fetch, verify_with
from tests.conftest import init_node

STAMP = "2024-05-06T07:08:09Z"


def line(handle: str, *values: dict[str, Any]) -> str:
    return json.dumps({"handle": handle, "values": list(values)})


def url(i: int, **extra: Any) -> dict[str, Any]:
    return {"index": 1, "type": "URL", "data": f"https://example.org/{i}", **extra}


def source() -> list[str]:
    """Records of every kind the importer meets: plain ones, a new prefix (its handle holds
    a secret, so the transaction does it) followed by records under it in later batches,
    binary data, references, private values, kept timestamps, and blank lines."""
    lines = [
        line(f"88.118.8/P{i:03d}", url(i), {"index": 2, "type": "DESC", "data": "ü"})
        for i in range(20)
    ]
    lines.insert(3, "")
    lines.append(
        line(
            "0.NA/88.118.7",
            {
                "index": 100,
                "type": "HS_ADMIN",
                "data": {"format": "admin", "value": {"handle": "0.NA/88.118.7", "index": 300}},
            },
            {"index": 300, "type": "HS_SECKEY", "data": "s7", "permissions": "1100"},
        )
    )
    lines += [
        line(
            f"88.118.7/Q{i}",
            url(i, timestamp=STAMP, ttl=60),
            {"index": 3, "type": "BIN", "data": {"format": "hex", "value": "00ff"}},
            {"index": 4, "type": "NOTE", "data": "admins only", "permissions": "1100"},
            {
                "index": 5,
                "type": "REF",
                "data": "r",
                "references": [{"handle": "88.118.8/P001", "index": 1}],
            },
        )
        for i in range(15)
    ]
    return lines


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    data = tmp_path / "node"
    await init_node(data)
    node = await Node.open(load(data))
    try:
        yield node
    finally:
        await node.close()


async def handles(node: Node) -> dict[str, list[Value]]:
    rows = await node.store.scan(None, 10_000)
    return {record.handle: list(record.values) for _, record in rows}


async def test_parallel_import_signs_records_that_verify(node: Node, tmp_path: Path) -> None:
    report = await import_lines(node.registry, source(), batch=4, workers=2)
    assert (report.lines, report.batches, report.created, report.workers) == (36, 9, 36, 2)
    roots = [node.keyring.key(0).public_jwk()]
    imported = [json.loads(text)["handle"] for text in source() if text]
    for handle in imported:
        checked = await verify_with(local_fetch(node), handle, roots)
        assert checked.ok, (handle, checked.reasons)
        assert checked.signatures[0].issuer == node.registry.signer.issuer  # type: ignore[union-attr]

    # The same file imported by this process alone makes the same records, value for value
    # (the signatures aside: they are made at another time).
    other = tmp_path / "other"
    await init_node(other)
    single = await Node.open(load(other))
    try:
        alone = await import_lines(single.registry, source(), batch=1000, workers=2)
        assert alone.workers == 0  # one batch: no pool for it
        mine, theirs = await handles(node), await handles(single)
    finally:
        await single.close()

    def client(values: list[Value]) -> list[tuple[Any, ...]]:
        return [
            (v.index, v.type, v.data, v.ttl, v.permissions, v.references)
            for v in values
            if v.type != "HS_SIGNATURE" and v.type != "HS_SECKEY"  # secrets: sealed afresh
        ]

    assert {h: client(v) for h, v in mine.items() if h in imported} == {
        h: client(v) for h, v in theirs.items() if h in imported
    }
    kept = [v for v in mine["88.118.7/Q0"] if v.index == 1]
    assert kept[0].timestamp == 1714979289  # STAMP, kept

    # Importing it again changes nothing, through the same pool.
    again = await import_lines(node.registry, source(), batch=4, workers=2)
    assert (again.created, again.replaced, again.unchanged) == (0, 0, 36)
    assert await handles(node) == mine


async def test_bad_line_mid_batch_keeps_earlier_batches_and_no_partial_batch(node: Node) -> None:
    good = [line(f"88.118.8/L{n}", url(n)) for n in range(1, 10)]
    bad = [*good[:4], '{"handle": "88.118.8/L5", "values": [oops', *good[5:]]
    with pytest.raises(ImportLineError, match=r"^line 5: invalid JSON"):
        await import_lines(node.registry, bad, batch=3, workers=2)
    stored = await handles(node)
    # Batch 1 (lines 1-3) is committed; batch 2 (lines 4-6) holds the bad line: none of it.
    assert [h for h in stored if h.startswith("88.118.8/L")] == [
        f"88.118.8/L{n}" for n in (1, 2, 3)
    ]

    # A line that only the transaction can refuse (its prefix is not allocated) is named too.
    unallocated = [*good[:7], line("88.118.77/X", url(0)), good[8]]
    with pytest.raises(ImportLineError, match=r"^line 8: Prefix 88.118.77 is not allocated"):
        await import_lines(node.registry, unallocated, batch=3, workers=2)
    stored = await handles(node)
    # Batches 1 and 2 (lines 1-6) are committed; not line 7, in the failing batch.
    assert sorted(h for h in stored if h.startswith("88.118.")) == [
        f"88.118.8/L{n}" for n in range(1, 7)
    ]


async def test_batch_prepared_before_a_rotation_is_signed_with_the_new_key(node: Node) -> None:
    lines = [line(f"88.118.8/K{i}", url(i)) for i in range(5)]
    prepared = Preparer(node.registry.bulk_spec()).prepare(lines, int(time.time()))
    assert prepared.issuer == "601:0.NA/88.118" and prepared.error is None
    await rotate(
        node.registry,
        node.keyring,
        node.ensure_keys_published,
        validity=node.config.signature_validity,
    )
    result = await node.registry.import_prepared(prepared)
    assert result.created == 5
    roots = [node.keyring.key(0).public_jwk()]
    for i in range(5):
        checked = await verify_with(local_fetch(node), f"88.118.8/K{i}", roots)
        assert checked.ok, checked.reasons
        assert checked.signatures[0].issuer == "602:0.NA/88.118"


async def test_key_rotated_during_an_import(node: Node) -> None:
    """Another process switches the node to a new signing key while batches are being
    prepared: every batch is still imported, and what is committed after the switch is
    signed with the new key (batches prepared with the old one are signed again)."""
    keyring = node.keyring

    def switch() -> None:  # what `idnode keys rotate` does to the key state, steps 1 and 3
        n = keyring.add_signing_key()
        with keyring.locked():
            state = keyring.load_state()
            state.retired.append({"n": state.current, "retired_at": int(time.time())})
            state.current = n
            state.rotation = None
            keyring.save_state(state)

    def lines() -> Iterator[str]:
        for i in range(40):
            if i == 12:
                switch()
            yield line(f"88.118.8/R{i:02d}", url(i))

    report = await import_lines(node.registry, lines(), batch=4, workers=2)
    assert (report.created, report.batches) == (40, 10)
    await node.ensure_keys_published()  # step 2, late: certificates for both keys
    roots = [node.keyring.key(0).public_jwk()]
    issuers = []
    for i in range(40):
        checked = await verify_with(local_fetch(node), f"88.118.8/R{i:02d}", roots)
        assert checked.ok, checked.reasons
        issuers.append(checked.signatures[0].issuer)
    # Lines 13 on were read after the switch: their batches were signed by key 2.
    assert set(issuers[12:]) == {"602:0.NA/88.118"}
    assert set(issuers[:8]) <= {"601:0.NA/88.118", "602:0.NA/88.118"}


_INDEXES = st.one_of(st.integers(-3, 2**31 + 3), st.booleans(), st.sampled_from(["7", 1.5, None]))
_TYPES = st.one_of(st.text(max_size=4), st.just("\u00e9" * 128), st.just("T" * 256), st.none())
_DATA = st.one_of(
    st.text(max_size=8),
    st.just({"format": "admin", "value": {"handle": "0.NA/88.118.8", "index": 300}}),
    st.just({"format": "admin", "value": {"handle": "", "index": 300}}),
    st.just({"format": "nope", "value": "x"}),
    st.just({"format": "hex", "value": "zz"}),
    st.integers(),
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(["index", "type", "data", "ttl"]),
        st.one_of(_INDEXES, _TYPES, _DATA),
        max_size=4,
    ),
    st.fixed_dictionaries({"index": _INDEXES, "type": _TYPES, "data": _DATA}),
)
def test_plain_values_take_a_shortcut_to_the_same_value_or_error(
    loose: dict[str, Any], plain: dict[str, Any]
) -> None:
    """The importer's shortcut for {index, type, data} values parses exactly as
    value_from_json does, errors and their wording included."""
    for obj in (loose, plain):
        expected: Value | tuple[type, str]
        try:
            expected = value_from_json(obj, True, 77)
        except HandleError as exc:
            expected = (type(exc), exc.message)
        try:
            got: Value | tuple[type, str] = bulk_value(obj, 77)
        except HandleError as exc:
            got = (type(exc), exc.message)
        assert got == expected
