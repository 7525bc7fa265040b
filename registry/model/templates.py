"""Metadata templates: what the identifiers of one item class must hold. Pure, no I/O.

A template names an item class (``motor-controller``) and its fields; each field is a value
type, optionally the index it must sit at, a datatype (``string``, ``int``, ``date``
(YYYY-MM-DD), ``url`` (http or https), ``enum`` (one of ``enum``), ``gs1`` (a GS1 key —
GTIN-8/12/13/14, GSIN, SSCC — whose check digit is right)), whether it is ``required``,
and a ``pattern`` (a regular expression the whole text must match). Every PUT of a template
makes a new version; old ones stay readable.

An identifier declares its template with a ``TEMPLATE`` value, ``motor-controller`` (the
newest version, as of each write) or ``motor-controller@2`` (that version); every write of
it is then checked against the template: :func:`check_record` lists each field at fault.

Patterns are client input run inside writes, so they are compiled safely: at most
:data:`MAX_PATTERN` characters, no backreferences, no repeat inside a repeat or an
alternative inside a repeat (the shapes that backtrack exponentially), at most two repeats
that may run long (polynomial backtracking stays small), and matched against at most
:data:`MAX_MATCHED` characters.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from registry.errors import ProtocolError
from registry.model.values import MAX_INDEX, MAX_TYPE_BYTES, PERM_DEFAULT, Value, type_key

DATATYPES = ("string", "int", "date", "url", "enum", "gs1")
TEMPLATE = "TEMPLATE"  # the value type an identifier declares its template with
RECORD_TYPE = "IDNODE_TEMPLATE"  # one value per version in the template's record
RECORD_PREFIX = "TEMPLATE."
MAX_FIELDS = 100
MAX_PATTERN = 200
MAX_MATCHED = 1024
MAX_ENUM = 200
MAX_TEXT = 200  # an enum value's or the description's characters (description: 1000)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_INT = re.compile(r"[+-]?[0-9]{1,18}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
GS1_LENGTHS = (8, 12, 13, 14, 17, 18)
_LONG_REPEAT = 16  # a repeat allowed more times than this "may run long"


@dataclass(frozen=True, slots=True)
class Field:
    type: str
    datatype: str = "string"
    index: int | None = None
    required: bool = False
    pattern: re.Pattern[str] | None = None
    enum: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "datatype": self.datatype}
        if self.index is not None:
            out["index"] = self.index
        out["required"] = self.required
        if self.pattern is not None:
            out["pattern"] = self.pattern.pattern
        if self.enum:
            out["enum"] = list(self.enum)
        return out


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    version: int
    fields: tuple[Field, ...]
    description: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "fields": [f.to_json() for f in self.fields],
        }


def record_handle(home: str, name: str) -> str:
    """The handle publishing template ``name`` (one value per version, index = version)."""
    return f"{home}/{RECORD_PREFIX}{name}"


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ProtocolError(
            "a template name is 1-64 letters, digits, '-' or '_', starting with a letter or digit"
        )
    return name


def parse_ref(text: str) -> tuple[str, int | None]:
    """``name`` or ``name@version`` (a TEMPLATE value's data)."""
    name, at, version = text.strip().partition("@")
    check_name(name)
    if not at:
        return name, None
    if not version.isdigit() or not 1 <= int(version) <= MAX_INDEX:
        raise ProtocolError(f"template version {version!r} is not a positive number"[:200])
    return name, int(version)


# ------------------------------------------------------------------ definitions


def _bad(where: str, what: str) -> ProtocolError:
    return ProtocolError(f"{where}: {what}"[:300])


def safe_pattern(text: object, where: str) -> re.Pattern[str]:
    """``text`` compiled, if it is a pattern that cannot backtrack for long (see module)."""
    if not isinstance(text, str) or not 0 < len(text) <= MAX_PATTERN:
        raise _bad(where, f"pattern must be a string of 1-{MAX_PATTERN} characters")
    try:
        compiled = re.compile(text)
        tree = re._parser.parse(text)  # type: ignore[attr-defined]
    except (re.error, RecursionError, OverflowError) as exc:
        raise _bad(where, f"pattern is not a regular expression ({exc})") from None
    if _long_repeats(tree, where, inside=False) > 2:
        raise _bad(where, "pattern has more than two repeats that may run long")
    return compiled


def _long_repeats(tree: Any, where: str, inside: bool) -> int:
    """Count repeats that may run long in a parsed pattern, refusing unsafe shapes."""
    c = re._constants  # type: ignore[attr-defined]
    count = 0
    for op, av in tree:
        if op in (c.GROUPREF, c.GROUPREF_EXISTS):
            raise _bad(where, "pattern may not use backreferences")
        if op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
            _, high, sub = av
            repeats = high > 1
            if repeats and inside:
                raise _bad(where, "pattern may not nest a repeat inside a repeat")
            if high > _LONG_REPEAT or high == c.MAXREPEAT:
                count += 1
            count += _long_repeats(sub, where, inside or repeats)
        elif op == c.BRANCH:
            if inside:
                raise _bad(where, "pattern may not repeat an alternative")
            for sub in av[1]:
                count += _long_repeats(sub, where, inside)
        elif op == c.SUBPATTERN:
            count += _long_repeats(av[-1], where, inside)
        elif op in (c.ASSERT, c.ASSERT_NOT):
            count += _long_repeats(av[1], where, inside)
        elif op == c.ATOMIC_GROUP:
            count += _long_repeats(av, where, inside)
    return count


def _field(obj: object, n: int) -> Field:
    where = f"fields[{n}]"
    if not isinstance(obj, dict):
        raise _bad(where, "a field is a JSON object")
    unknown = set(obj) - {"type", "index", "datatype", "required", "pattern", "enum"}
    if unknown:
        raise _bad(where, f"unknown member {sorted(unknown)[0]!r}")
    vtype = obj.get("type")
    if (
        not isinstance(vtype, str)
        or not vtype
        or len(vtype.encode("utf-8", "surrogatepass")) > MAX_TYPE_BYTES
    ):
        raise _bad(where, "type must be a value type name")
    if type_key(vtype) == TEMPLATE or type_key(vtype).startswith("HS_"):
        raise _bad(where, f"type {vtype} is not an item field"[:100])
    index = obj.get("index")
    if index is not None and (
        not isinstance(index, int) or isinstance(index, bool) or not 1 <= index <= MAX_INDEX
    ):
        raise _bad(where, f"index must be an integer from 1 to {MAX_INDEX}")
    datatype = obj.get("datatype", "string")
    if datatype not in DATATYPES:
        raise _bad(where, f"datatype must be one of {', '.join(DATATYPES)}")
    required = obj.get("required", False)
    if not isinstance(required, bool):
        raise _bad(where, "required must be true or false")
    raw_pattern = obj.get("pattern")
    pattern = None if raw_pattern is None else safe_pattern(raw_pattern, where)
    raw_enum = obj.get("enum")
    enum: tuple[str, ...] = ()
    if datatype == "enum" or raw_enum is not None:
        if (
            datatype != "enum"
            or not isinstance(raw_enum, list)
            or not 1 <= len(raw_enum) <= MAX_ENUM
            or not all(isinstance(e, str) and 0 < len(e) <= MAX_TEXT for e in raw_enum)
        ):
            raise _bad(where, f"an enum field lists 1-{MAX_ENUM} strings in enum (and only it)")
        enum = tuple(raw_enum)
    return Field(vtype, datatype, index, required, pattern, enum)


def parse_definition(body: object, name: str, version: int) -> Template:
    """A template definition (``{"description"?, "fields": [...]}``, as PUT) checked."""
    check_name(name)
    if not isinstance(body, dict):
        raise ProtocolError('a template is a JSON object: {"fields": [...]}')
    unknown = set(body) - {"name", "version", "description", "fields"}
    if unknown:
        raise ProtocolError(f"unknown member {sorted(unknown)[0]!r}"[:200])
    if "name" in body and body["name"] != name:
        raise ProtocolError(f"the body names template {body['name']!r}, the path {name!r}"[:200])
    description = body.get("description", "")
    if not isinstance(description, str) or len(description) > 1000:
        raise ProtocolError("description must be a string of at most 1000 characters")
    fields = body.get("fields")
    if not isinstance(fields, list) or not 1 <= len(fields) <= MAX_FIELDS:
        raise ProtocolError(f"fields must list 1-{MAX_FIELDS} fields")
    parsed = tuple(_field(f, n) for n, f in enumerate(fields))
    seen: set[str] = set()
    for f in parsed:
        if type_key(f.type) in seen:
            raise ProtocolError(f"type {f.type} is named by two fields"[:200])
        seen.add(type_key(f.type))
    return Template(name, version, parsed, description)


def to_value(template: Template) -> Value:
    """The template's version as its record holds it."""
    data = orjson.dumps(template.to_json())
    return Value(template.version, RECORD_TYPE, data, permissions=PERM_DEFAULT)


def versions(values: Sequence[Value]) -> dict[int, Template]:
    """Every version a template record holds (a damaged value is left out)."""
    out: dict[int, Template] = {}
    for v in values:
        if type_key(v.type) != RECORD_TYPE:
            continue
        try:
            obj = orjson.loads(v.data)
            out[v.index] = parse_definition(obj, str(obj.get("name")), v.index)
        except (orjson.JSONDecodeError, ProtocolError, AttributeError):
            continue
    return dict(sorted(out.items()))


# ------------------------------------------------------------------ checking records


def declared(values: Sequence[Value]) -> list[Value]:
    """The TEMPLATE values of a record."""
    return [v for v in values if type_key(v.type) == TEMPLATE]


def gs1_valid(digits: str) -> bool:
    """A GS1 key (GTIN-8/12/13/14, GSIN-17, SSCC-18) with its mod-10 check digit right."""
    if len(digits) not in GS1_LENGTHS or not digits.isascii() or not digits.isdigit():
        return False
    body, check = digits[:-1], int(digits[-1])
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


def _datatype_error(f: Field, text: str) -> str | None:
    kind = f.datatype
    if kind == "int":
        return None if _INT.fullmatch(text) else "not an integer"
    if kind == "date":
        try:
            if _DATE.fullmatch(text):
                dt.date.fromisoformat(text)
                return None
        except ValueError:
            pass
        return "not a date (YYYY-MM-DD)"
    if kind == "url":
        try:
            parts = urlsplit(text)
        except ValueError:
            parts = None
        if parts and parts.scheme in ("http", "https") and parts.netloc and " " not in text:
            return None
        return "not an http(s) URL"
    if kind == "enum":
        return None if text in f.enum else f"not one of {', '.join(f.enum)}"[:300]
    if kind == "gs1":
        return None if gs1_valid(text) else "not a GS1 key with a valid check digit"
    return None


def _value_error(f: Field, v: Value) -> str | None:
    if f.index is not None and v.index != f.index:
        return f"must be at index {f.index}"
    try:
        text = v.data.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8 text"
    error = _datatype_error(f, text)
    if error is None and f.pattern is not None:
        if len(text) > MAX_MATCHED:
            return f"longer than {MAX_MATCHED} characters"
        if not f.pattern.fullmatch(text):
            return f"does not match {f.pattern.pattern}"
    return error


def check_values(template: Template, values: Sequence[Value]) -> list[dict[str, Any]]:
    """Each field of ``template`` that ``values`` get wrong: ``{"type", "index",
    "message"}`` (an empty list: the values follow it). Values of other types are free."""
    by_type: dict[str, list[Value]] = {}
    for v in values:
        by_type.setdefault(type_key(v.type), []).append(v)
    errors: list[dict[str, Any]] = []
    for f in template.fields:
        found = by_type.get(type_key(f.type), [])
        if not found:
            if f.required:
                errors.append({"type": f.type, "index": f.index, "message": "required"})
            continue
        for v in found:
            message = _value_error(f, v)
            if message is not None:
                errors.append({"type": f.type, "index": v.index, "message": message})
    return errors


def pick(version: int | None, held: Mapping[int, Template]) -> Template | None:
    """The version asked for (None: the newest) of a template's versions."""
    if not held:
        return None
    if version is None:
        return held[max(held)]
    return held.get(version)
