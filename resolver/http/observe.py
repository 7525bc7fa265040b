"""What the HTTP transport tells the operator about each request: its request id (taken
from ``X-Request-Id`` or made), the sampled access log, and the responseCode an answer is
counted under in ``/metrics``.

Timing and counting happen in the error boundary (:func:`resolver.http.respond.guard`) and
inline in resolution (:func:`resolver.http.api.get_handle`), where the answer is known; this
module holds what they share.
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from multidict import istr

from registry.errors import RC_ERROR, RC_PROTOCOL_ERROR, RC_SUCCESS, HandleError
from resolver.http.keys import ECHO
from resolver.requestid import REQUEST_ID, REQUEST_ID_HEADER, adopt

ACCESS = logging.getLogger("idnode.access")
_REQUEST_ID = istr(REQUEST_ID_HEADER)
PATH_SHOWN = 512  # characters of a request's path an access log line repeats

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def response_code(exc: BaseException) -> int:
    """The Handle responseCode of the answer to a request whose handler raised ``exc``, as
    :func:`resolver.http.respond.failure` renders it: a HandleError's own; aiohttp's HTTP
    errors as a protocol error (4xx) or a server error (5xx); a redirect as success."""
    if isinstance(exc, HandleError):
        return exc.response_code
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            return RC_SUCCESS
        return RC_PROTOCOL_ERROR if exc.status < 500 else RC_ERROR
    return RC_ERROR


def adopt_incoming(request: web.Request) -> None:
    """Make the id the request brings current (a fresh one if it is not sane); nothing
    when it brings none."""
    incoming = request.headers.get(_REQUEST_ID)
    if incoming is not None:
        adopt(incoming)


def echo_request_id(response: web.StreamResponse) -> None:
    """Put the current request id on ``response`` (before it is prepared)."""
    rid = REQUEST_ID.get()
    if rid is not None and not response.prepared:
        response.headers[REQUEST_ID_HEADER] = rid


def with_request_id(handler: Handler) -> Handler:
    """``handler`` with an id for every request (the access log is on): the client's, or a
    fresh one, made current for the handler and echoed on its answer."""

    @functools.wraps(handler)
    async def identified(request: web.Request) -> web.StreamResponse:
        adopt(request.headers.get(_REQUEST_ID), always=True)
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # a redirect, or an error outside /api
            echo_request_id(exc)
            raise
        echo_request_id(response)
        return response

    return identified


class AccessLog(AbstractAccessLogger):
    """aiohttp's access logger, sampled: a line for a ``SAMPLE`` fraction of requests, with
    the request's id and, in JSON, its fields apart. Its time is aiohttp's, read from the
    event loop's clock (1 ms steps under uvloop); ``/metrics`` times with ``perf_counter``."""

    SAMPLE = 1.0

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        if self.SAMPLE < 1.0 and random.random() >= self.SAMPLE:
            return
        path = request.raw_path[:PATH_SHOWN]
        fields = {
            "remote": request.remote,
            "method": request.method,
            "path": path,
            "status": response.status,
            "bytes": response.body_length,
            "seconds": round(time, 6),
        }
        handle = request.get(ECHO)
        if handle is not None:
            fields["handle"] = handle
        rid = REQUEST_ID.get()
        self.logger.info(
            '%s "%s %s" %s %.2fms%s',
            request.remote,
            request.method,
            path,
            response.status,
            time * 1000,
            f" request_id={rid}" if rid is not None else "",
            extra=fields,
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


def access_log_class(sample: float) -> type[AccessLog]:
    """:class:`AccessLog` showing a ``sample`` fraction of requests (aiohttp makes the
    logger from its class, so the fraction travels in a subclass)."""
    return type("SampledAccessLog", (AccessLog,), {"SAMPLE": sample})
