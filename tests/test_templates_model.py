"""registry/model/templates.py: definitions, safe patterns, each datatype and rule (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from registry.errors import ProtocolError
from registry.model import templates as tpl
from registry.model.values import Value


def define(*fields: dict[str, Any]) -> tpl.Template:
    return tpl.parse_definition({"fields": list(fields)}, "motor-controller", 1)


def errors(template: tpl.Template, *values: tuple[int, str, str]) -> list[tuple[str, Any, str]]:
    vals = [Value(i, t, d.encode()) for i, t, d in values]
    return [(e["type"], e["index"], e["message"]) for e in tpl.check_values(template, vals)]


@pytest.mark.parametrize(
    ("datatype", "good", "bad", "message"),
    [
        ("string", "anything at all", None, ""),
        ("int", "-42", "4.2", "not an integer"),
        ("date", "2026-02-28", "2026-02-30", "not a date (YYYY-MM-DD)"),
        ("date", "2024-02-29", "20260228", "not a date (YYYY-MM-DD)"),
        ("url", "https://example.org/a?b", "ftp://example.org/", "not an http(s) URL"),
        ("url", "http://x.example", "https://", "not an http(s) URL"),
        ("gs1", "4006381333931", "4006381333932", "not a GS1 key with a valid check digit"),
        ("gs1", "96385074", "9638507", "not a GS1 key with a valid check digit"),
        ("gs1", "00012345600012", "0001234560001X", "not a GS1 key with a valid check digit"),
        ("gs1", "106141411234567897", "106141411234567890", "not a GS1 key with a valid check"),
    ],
)
def test_each_datatype(datatype: str, good: str, bad: str | None, message: str) -> None:
    t = define({"type": "F", "datatype": datatype})
    assert errors(t, (1, "F", good)) == []
    if bad is not None:
        ((field, index, said),) = errors(t, (1, "F", bad))
        assert (field, index) == ("F", 1) and said.startswith(message)


def test_enum_required_index_and_pattern() -> None:
    t = define(
        {"type": "VOLTAGE", "datatype": "enum", "enum": ["24V", "48V"], "required": True},
        {"type": "SERIAL", "index": 2, "required": True, "pattern": "[A-Z]{2}-[0-9]{4,8}"},
        {"type": "NOTE"},
    )
    assert errors(t, (1, "VOLTAGE", "48V"), (2, "SERIAL", "MC-1234"), (9, "URL", "x")) == []
    assert errors(t) == [("VOLTAGE", None, "required"), ("SERIAL", 2, "required")]
    assert errors(t, (1, "voltage", "12V"), (3, "SERIAL", "MC-1234")) == [
        ("VOLTAGE", 1, "not one of 24V, 48V"),  # named as the template names it
        ("SERIAL", 3, "must be at index 2"),
    ]
    assert errors(t, (1, "VOLTAGE", "24V"), (2, "SERIAL", "mc-1")) == [
        ("SERIAL", 2, "does not match [A-Z]{2}-[0-9]{4,8}")
    ]


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("(a+)+$", "nest a repeat"),
        ("(a|aa)*", "repeat an alternative"),
        (r"(a)\1", "backreferences"),
        ("a*b*c*d", "more than two repeats"),
        ("(", "not a regular expression"),
        ("x" * 201, "1-200 characters"),
    ],
)
def test_unsafe_patterns_are_refused(pattern: str, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        define({"type": "F", "pattern": pattern})


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ([], "fields must list"),
        ([{"type": "F", "datatype": "float"}], "datatype must be one of"),
        ([{"type": "F", "datatype": "enum"}], "enum"),
        ([{"type": "F", "enum": ["a"]}], "enum"),
        ([{"type": "HS_ADMIN"}], "not an item field"),
        ([{"type": "TEMPLATE"}], "not an item field"),
        ([{"type": "F", "index": 0}], "index must be"),
        ([{"type": "F", "required": "yes"}], "required must be"),
        ([{"type": "F"}, {"type": "f"}], "named by two fields"),
        ([{"type": "F", "colour": "red"}], "unknown member"),
    ],
)
def test_bad_definitions(fields: list[Any], why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        tpl.parse_definition({"fields": fields}, "t", 1)


def test_references_and_versions() -> None:
    assert tpl.parse_ref("motor-controller") == ("motor-controller", None)
    assert tpl.parse_ref("motor-controller@2") == ("motor-controller", 2)
    for bad in ("motor controller", "m@x", "m@0", "", "@2"):
        with pytest.raises(ProtocolError):
            tpl.parse_ref(bad)
    v1, v2 = define({"type": "A"}), tpl.parse_definition({"fields": [{"type": "B"}]}, "m", 2)
    held = tpl.versions([tpl.to_value(v1), tpl.to_value(v2)])
    assert sorted(held) == [1, 2]
    assert tpl.pick(None, held) == held[2] and tpl.pick(1, held) == held[1]
    assert tpl.pick(3, held) is None and tpl.pick(None, {}) is None
