"""The HTTP connection protocol the node serves with: aiohttp's, with the connection limits
of :mod:`resolver.http.limits`, and Handle JSON for every answer aiohttp makes itself.

aiohttp answers a request its parser rejects (a bad request line, a bad or oversized header)
without calling any handler: its protocol's ``handle_error`` writes a plain-text 400 and
logs the parser's exception with a traceback. Here that answer is the API's own error
(``{"responseCode": 4, "message": ...}``, rendered by :mod:`resolver.http.respond`) and the
log gets one line: a malformed request is the client's fault, not the server's.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_request import BaseRequest

from registry.errors import (
    HEADER_TOO_LONG,
    TIMED_OUT,
    HandleError,
    ProtocolError,
    ServerBusy,
    ServerError,
)
from resolver.config import Config
from resolver.http.limits import LimitedProtocol, LimitedRunner, Limits, busy_answer, connection_cap
from resolver.http.observe import ACCESS, access_log_class
from resolver.http.respond import JSON_TYPE, error_response

log = logging.getLogger("idnode.http")

MESSAGE_MAX = 200  # characters of the parser's message that an answer and the log repeat


def _busy() -> bytes:
    error = ServerBusy("Server too busy: too many open connections")
    body = orjson.dumps({"responseCode": error.response_code, "message": error.message})
    return busy_answer(JSON_TYPE, body, error.status)


def rejection(exc: HttpProcessingError) -> HandleError:
    """The Handle error for a request aiohttp's parser rejected with ``exc``."""
    if isinstance(exc, LineTooLong):
        limit = exc.args[1] if len(exc.args) > 1 else "the limit of"
        return ProtocolError(
            f"Request line or header longer than {limit} bytes", outcome=HEADER_TOO_LONG
        )
    # The parser's message: a description, then (on later lines) the offending bytes.
    lines = (exc.message or "").splitlines()
    first = lines[0].rstrip(" :") if lines else ""
    return ProtocolError(f"Bad request: {first or 'malformed HTTP'}"[:MESSAGE_MAX])


class NodeProtocol(LimitedProtocol):
    """The node's protocol: the limits, and Handle JSON for aiohttp's own error answers."""

    __slots__ = ()

    busy = _busy()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        error: HandleError
        if isinstance(exc, HttpProcessingError):
            error = rejection(exc)
            log.info("rejected a request from %s: %s", request.remote, error.message)
        else:
            # A handler failed outside the error boundary (which logs and answers itself):
            # a bug, whose traceback helps.
            log.error("error handling a request from %s", request.remote, exc_info=exc)
            # aiohttp's 504: the handler ran out of time; anything else is an error.
            error = ServerError(outcome=TIMED_OUT if status == TIMED_OUT.http else None)
        if request.writer.output_size > 0:
            # As aiohttp: part of an answer is out, so the connection cannot carry this one.
            raise ConnectionError("an answer was partly sent: no error answer can follow")
        response = error_response(error, None)
        response.force_close()
        return response


def limits_of(config: Config) -> Limits:
    """The connection limits ``config`` sets for this process."""
    return Limits(
        header_timeout=config.header_timeout,
        body_timeout=config.body_timeout,
        keepalive_timeout=config.keepalive_timeout,
        max_connections=connection_cap(config.max_connections),
    )


def make_runner(app: web.Application, config: Config, **kwargs: Any) -> web.AppRunner:
    """The runner that serves ``app`` with ``config``'s limits and access log (``kwargs``:
    aiohttp's)."""
    if config.access_log:
        kwargs.setdefault("access_log", ACCESS)
        kwargs.setdefault("access_log_class", access_log_class(config.access_log_sample))
    else:
        kwargs.setdefault("access_log", None)  # aiohttp's default would log every request
    return LimitedRunner(app, limits=limits_of(config), protocol=NodeProtocol, **kwargs)
