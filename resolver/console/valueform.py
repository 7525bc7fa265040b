"""The plain value editor's form, without I/O: a record's values as editable rows, and rows
read back into values with a message per field at fault.

A row is index, type, data, permissions and TTL as text. Data is shown as the JSON API
writes it: a string as it is, anything structured (HS_ADMIN, HS_SITE, HS_PUBKEY, ...) as
its JSON ``{"format": ..., "value": ...}`` object; what is typed back is parsed the same way
(a JSON object with a ``format`` is such an object, anything else a string), then checked
by the JSON API's own value parser. Secrets (HS_SECKEY) are never shown: a blank secret
keeps the current one.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from registry.errors import HandleError
from registry.model.jsonvalues import data_to_json, value_from_json
from registry.model.values import (
    DEFAULT_TTL,
    HS_ADMIN,
    HS_PUBKEY,
    HS_SECKEY,
    HS_SITE,
    HS_VLIST,
    Value,
    permissions_to_text,
    type_key,
)

BLANK_ROWS = 3  # empty rows offered for new values
MAX_ROWS = 2048  # a record's values at most
DIGITS = re.compile(r"[0-9]{1,19}")  # ASCII digits only: str.isdigit() takes "²" too
STRUCTURED = {HS_ADMIN, HS_VLIST, HS_SITE, "HS_SITE.PREFIX", HS_PUBKEY}  # data is never text
FIELDS = ("index", "type", "data", "perm", "ttl")  # a row's form fields, in Row's order
Errors = dict[tuple[int, str], str]  # (row, field) → message


@dataclass
class Row:
    index: str = ""
    type: str = ""
    data: str = ""
    permissions: str = ""
    ttl: str = ""

    @property
    def secret(self) -> bool:
        return type_key(self.type.strip()) == HS_SECKEY

    @property
    def blank(self) -> bool:
        return not (self.index.strip() or self.type.strip() or self.data.strip())


def data_text(value: Value) -> str:
    if type_key(value.type) == HS_SECKEY:
        return ""
    data = data_to_json(value.type, value.data)
    if data["format"] == "string":
        return str(data["value"])
    return json.dumps(data, indent=1, ensure_ascii=False)


def rows_of(values: Sequence[Value]) -> list[Row]:
    """The editable rows of a record's client values, then blank rows for new ones."""
    rows = [
        Row(
            str(v.index),
            v.type,
            data_text(v),
            permissions_to_text(v.permissions),
            str(v.ttl),
        )
        for v in values
    ]
    return rows + [Row() for _ in range(BLANK_ROWS)]


def rows_from_form(form: Mapping[str, Any]) -> list[Row]:
    """The rows a submitted form holds (``index_N``, ``type_N``, ... for N from 0)."""
    rows = []
    for n in range(MAX_ROWS + BLANK_ROWS):
        if f"index_{n}" not in form:
            break
        rows.append(
            Row(
                *(
                    str(form.get(f"{name}_{n}", ""))
                    for name in ("index", "type", "data", "perm", "ttl")
                )
            )
        )
    return rows


def _data(row: Row) -> Any:
    """The row's data as the JSON API's ``data`` field: a ``{"format": ..., "value": ...}``
    object when the text is one, else the text. Text that starts like an object but is not
    valid JSON is an error for a type whose data is structured, a string otherwise."""
    text = row.data
    if text.lstrip().startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            if type_key(row.type.strip()) in STRUCTURED:
                raise  # the message names the position
            return text
        if isinstance(obj, dict) and "format" in obj:
            return obj
    return text


def values_of(rows: Sequence[Row], secrets: Mapping[int, bytes]) -> tuple[list[Value], Errors]:
    """The values the rows describe (blank rows skipped), or the errors per (row, field).
    ``secrets``: the record's current secrets by index, kept for a secret row left blank."""
    values: list[Value] = []
    errors: Errors = {}
    seen: dict[int, int] = {}
    for n, row in enumerate(rows):
        if row.blank:
            continue
        index = row.index.strip()
        if not DIGITS.fullmatch(index) or not 1 <= int(index) <= 2**31 - 1:
            errors[(n, "index")] = "An index is a whole number from 1."
            continue
        number = int(index)
        if number in seen:
            errors[(n, "index")] = f"Index {number} is used by another row too."
            continue
        seen[number] = n
        vtype = row.type.strip()
        if not vtype:
            errors[(n, "type")] = "Give the value a type, e.g. URL."
            continue
        obj: dict[str, Any] = {"index": number, "type": vtype}
        perm, ttl = row.permissions.strip(), row.ttl.strip()
        if perm:
            if len(perm) != 4 or set(perm) - {"0", "1"}:
                errors[(n, "perm")] = "Permissions are four 0/1 digits, e.g. 1110."
                continue
            obj["permissions"] = perm
        if ttl:
            if not DIGITS.fullmatch(ttl.removeprefix("-")):
                errors[(n, "ttl")] = "A TTL is a whole number of seconds."
                continue
            obj["ttl"] = int(ttl)
        else:
            obj["ttl"] = DEFAULT_TTL
        if row.secret and not row.data:
            if number not in secrets:
                errors[(n, "data")] = "Give the secret."
                continue
            obj["data"] = {"format": "base64", "value": _b64(secrets[number])}
        else:
            try:
                obj["data"] = _data(row)
            except ValueError as exc:
                errors[(n, "data")] = f"Not valid JSON: {exc}"
                continue
        try:
            values.append(value_from_json(obj))
        except HandleError as exc:
            errors[(n, "data")] = exc.message or exc.outcome.name
    return values, errors


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
