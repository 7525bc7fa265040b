"""How the serving process logs: plain text (the default) or one JSON object per line.

A JSON line holds ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``msg``, ``pid``, the
current request's ``request_id`` when there is one (:mod:`resolver.requestid`), the fields a
call passed as ``extra`` (``remote``, ``handle``, ...) and, for an exception, ``exc``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

from resolver.config import Config
from resolver.requestid import REQUEST_ID

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"
# What every LogRecord has: anything else on a record came as ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        rid = REQUEST_ID.get()
        if rid is not None:
            line["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _STANDARD:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode("utf-8")


def configure(config: Config) -> None:
    """The process's root handler: to standard error, in ``config``'s format and level."""
    handler = logging.StreamHandler()
    if config.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=config.log_level.upper(), handlers=[handler], force=True)
