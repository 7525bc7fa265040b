"""Reading an uploaded import file, without I/O: JSON Lines as ``idnode import`` reads them
(:func:`registry.bulk.parse_line`, one record a line), or CSV with a header naming the
columns ``handle,index,type,data`` (and optionally ``ttl``, ``permissions``), one value a
row, a record's rows one after another. Each record comes with the line it starts on, or
the error that line holds."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from registry.bulk import parse_line
from registry.errors import HandleError, ProtocolError
from registry.model.identifiers import Identifier, handle_key, parse
from registry.model.jsonvalues import value_from_json
from registry.model.values import Value

CSV_COLUMNS = ("handle", "index", "type", "data")


@dataclass(frozen=True, slots=True)
class Item:
    line: int
    ident: Identifier | None
    values: list[Value]
    error: str = ""


def items_of(name: str, raw: bytes) -> list[Item]:
    """The records of an uploaded file: CSV when its name ends in ``.csv``, else JSONL."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return [Item(1, None, [], "the file is not UTF-8 text")]
    if name.lower().endswith(".csv"):
        return list(_csv_items(text))
    return list(_jsonl_items(text))


def _jsonl_items(text: str) -> Iterator[Item]:
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            ident, values = parse_line(line)
        except HandleError as exc:
            yield Item(n, None, [], exc.message or exc.outcome.name)
            continue
        yield Item(n, ident, values)


def _csv_items(text: str) -> Iterator[Item]:
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        yield Item(1, None, [], f"the CSV header lacks the column(s) {', '.join(missing)}")
        return
    start, handle = 0, ""  # the record being gathered
    rows: list[dict[str, Any]] = []
    try:
        for row in reader:
            line = reader.line_num
            if row["handle"] and handle_key(row["handle"]) != handle_key(handle):
                if rows:
                    yield _csv_record(start, handle, rows)
                start, handle, rows = line, row["handle"], []
            rows.append(row)
    except csv.Error as exc:  # e.g. a field over the csv module's size limit
        if rows:
            yield _csv_record(start, handle, rows)
        yield Item(reader.line_num + 1, None, [], f"not readable as CSV from here on: {exc}")
        return
    if rows:
        yield _csv_record(start, handle, rows)


def _csv_record(line: int, handle: str, rows: list[dict[str, Any]]) -> Item:
    try:
        ident = parse(handle)
        values = []
        for row in rows:
            obj: dict[str, Any] = {"type": row["type"], "data": row["data"] or ""}
            try:
                obj["index"] = int(row["index"])
                if row.get("ttl"):
                    obj["ttl"] = int(row["ttl"])
            except ValueError:
                raise ProtocolError("index and ttl must be whole numbers") from None
            if row.get("permissions"):
                obj["permissions"] = row["permissions"]
            values.append(value_from_json(obj))
    except HandleError as exc:
        return Item(line, None, [], exc.message or exc.outcome.name)
    return Item(line, ident, values)
