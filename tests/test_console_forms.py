"""The console's pure parts: the value editor's rows ↔ values, and import files read."""

from __future__ import annotations

import json

from registry.model import admin as adm
from registry.model.jsonvalues import data_from_json
from registry.model.values import Value
from resolver.console.importfile import items_of
from resolver.console.valueform import BLANK_ROWS, Row, rows_from_form, rows_of, values_of

ADMIN = data_from_json(
    {"format": "admin", "value": {"handle": "0.NA/88.118.8", "index": 300, "permissions": "1" * 12}}
)


def form_of(rows: list[Row]) -> dict[str, str]:
    out = {}
    for n, r in enumerate(rows):
        out |= {
            f"index_{n}": r.index,
            f"type_{n}": r.type,
            f"data_{n}": r.data,
            f"perm_{n}": r.permissions,
            f"ttl_{n}": r.ttl,
        }
    return out


def test_rows_round_trip_structured_data_and_hide_secrets() -> None:
    values = [
        Value(100, "HS_ADMIN", ADMIN),
        Value(300, "HS_SECKEY", b"s3cret", permissions=0b1100),
        Value(1, "URL", b"https://example.org/a", ttl=600),
    ]
    rows = rows_of(values)
    assert len(rows) == 3 + BLANK_ROWS
    assert json.loads(rows[0].data)["value"]["handle"] == "0.NA/88.118.8"
    assert rows[1].data == "" and rows[1].secret and rows[1].permissions == "1100"
    back, errors = values_of(rows_from_form(form_of(rows)), {300: b"s3cret"})
    assert errors == {}
    assert [(v.index, v.type, v.data, v.ttl, v.permissions) for v in back] == [
        (v.index, v.type, v.data, v.ttl, v.permissions) for v in values
    ]


def test_each_field_at_fault_gets_its_message() -> None:
    rows = [
        Row("x", "URL", "a"),
        Row("2", "", "b"),
        Row("3", "URL", "c", "12"),
        Row("4", "URL", "d", "", "soon"),
        Row("5", "HS_ADMIN", '{"format": "admin", "value": {"handle": "0.NA/X"}'),
        Row("6", "HS_SECKEY", ""),
        Row("7", "URL", "ok"),
        Row("7", "URL", "again"),
        Row(),
    ]
    values, errors = values_of(rows, {})
    assert [v.index for v in values] == [7]
    assert set(errors) == {
        (0, "index"),
        (1, "type"),
        (2, "perm"),
        (3, "ttl"),
        (4, "data"),
        (5, "data"),
        (7, "index"),
    }
    assert errors[(5, "data")] == "Give the secret."
    assert errors[(7, "index")] == "Index 7 is used by another row too."
    assert errors[(4, "data")].startswith("Not valid JSON")
    odd, errors = values_of([Row("²", "URL", "a"), Row("1", "URL", "b", "", "٣")], {})
    assert odd == [] and set(errors) == {(0, "index"), (1, "ttl")}
    admin_rows = [Row("5", "HS_ADMIN", '{"format": "admin", "value": {"handle": "0.NA/X"}}')]
    _, errors = values_of(admin_rows, {})
    assert (0, "data") in errors  # the API's own parser: an admin needs index and permissions


def test_jsonl_items_carry_their_line_or_error() -> None:
    text = (
        '{"handle": "88.118.8/A", "values": [{"index": 1, "type": "URL", "data": "u"}]}\n'
        "\n"
        "{broken\n"
        '{"handle": "no slash?", "values": 3}\n'
    )
    items = items_of("x.jsonl", text.encode())
    assert [(i.line, i.ident is not None) for i in items] == [(1, True), (3, False), (4, False)]
    assert items[2].error == "values must be an array"


def test_csv_rows_make_records_in_order() -> None:
    text = (
        "handle,index,type,data,permissions\n"
        "88.118.8/A,1,URL,https://a,\n"
        "88.118.8/a,2,EMAIL,x@a,1100\n"
        "88.118.8/B,one,URL,https://b,\n"
        "88.118.8/C,1,URL,https://c,\n"
    )
    items = items_of("x.csv", text.encode())
    assert [(i.line, len(i.values), i.error) for i in items] == [
        (2, 2, ""),
        (4, 0, "index and ttl must be whole numbers"),
        (5, 1, ""),
    ]
    assert items[0].values[1].permissions == 0b1100
    (bad,) = items_of("x.csv", b"handle,type\n88.118.8/A,URL\n")
    assert bad.error == "the CSV header lacks the column(s) index, data"
    huge = b"handle,index,type,data\n88.118.8/A,1,URL,a\n88.118.8/B,1,URL,%s\n" % (b"b" * 140_000)
    read = items_of("x.csv", huge)
    assert [i.line for i in read] == [2, 3]
    assert read[-1].ident is None and read[-1].error.startswith("not readable as CSV")
    (not_text,) = items_of("x.jsonl", b"\xff\xfe")
    assert not_text.error == "the file is not UTF-8 text"


def test_admin_rows_are_decoded_by_the_api_parser() -> None:
    rows = rows_of([Value(100, "HS_ADMIN", ADMIN)])
    (value,), _ = values_of(rows, {})
    assert adm.decode_admin(value.data).admin == adm.AdminRef(300, "0.NA/88.118.8")
