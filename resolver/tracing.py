"""OpenTelemetry tracing, when the ``otel`` extra is installed and ``otel_endpoint`` (or the
standard ``OTEL_EXPORTER_OTLP_*ENDPOINT`` variables) names a collector.

Nothing imports this module unless tracing is on (:meth:`resolver.node.Node.open`), so a node
without it pays nothing: no import, and no per-request branch — what is traced is wrapped
once, when it is built, and left as it is otherwise:

- each HTTP request: a ``SERVER`` span around the route's handler (:meth:`Tracing.http`),
  continuing a trace the request brings (W3C ``traceparent``), with its request id (every
  request gets one while tracing), operation, handle and status;
- each native request that is not answered from the hot path's cached replies (those do no
  I/O to see): a ``SERVER`` span around :meth:`NativeService.respond`;
- its store calls: a ``CLIENT`` span per call, children of the request's (:func:`traced`);
- its forwarded queries: a ``CLIENT`` span per HTTP request forwarding makes, carrying the
  trace on to the other node (:meth:`Tracing.client_trace`).

Spans leave in batches from a background thread (the SDK's ``BatchSpanProcessor``) to an
OTLP/HTTP collector. The SDK reads its other ``OTEL_*`` settings itself (service name,
resource attributes, headers, sampler).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Coroutine
from types import SimpleNamespace
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from registry.store.base import Record, SharedStore, Store
from resolver import __version__
from resolver.config import Config
from resolver.http.keys import ECHO
from resolver.http.observe import Handler
from resolver.metrics import HistogramFamily
from resolver.native.messages import Message
from resolver.native.service import NativeService, op_label
from resolver.requestid import REQUEST_ID, adopt
from resolver.timedstore import TimedSharedStore, TimedStore

T = TypeVar("T")
PATH_SHOWN = 512  # characters of a request's path a span repeats


def exporting(config: Config) -> TracerProvider:
    """A provider sending spans to ``config.otel_endpoint`` over OTLP/HTTP."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    attributes = {"service.version": __version__}
    if not os.environ.get("OTEL_SERVICE_NAME"):  # the operator's name wins
        attributes["service.name"] = "idnode"
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(config.otel_endpoint)))
    return provider


class Tracing:
    """One process's tracer, and the wrappers that trace the node's parts."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("idnode", __version__)

    def shutdown(self) -> None:
        """Send what is still queued, and stop (blocking: call in a thread)."""
        self.provider.shutdown()

    # -- HTTP ------------------------------------------------------------------------------

    def http(self, handler: Handler, op: str) -> Handler:
        """``handler`` (already given a request id for every request) in a server span."""
        tracer = self.tracer

        @functools.wraps(handler)
        async def traced(request: web.Request) -> web.StreamResponse:
            with tracer.start_as_current_span(
                f"{request.method} {op}",
                context=propagate.extract(request.headers),
                kind=SpanKind.SERVER,
                attributes={
                    "http.request.method": request.method,
                    "url.path": request.raw_path[:PATH_SHOWN],
                    "idnode.op": op,
                },
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                try:
                    response = await handler(request)
                except web.HTTPException as exc:  # a redirect, or an error outside /api
                    _answered(span, request, exc.status)
                    raise
                except BaseException as exc:
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                    raise
                _answered(span, request, response.status)
                return response

        return traced

    def client_trace(self) -> aiohttp.TraceConfig:
        """A client span per request of the session it is given to (forwarding's), its
        context sent on in ``traceparent``."""
        tracer = self.tracer
        config = aiohttp.TraceConfig()

        async def start(
            _s: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestStartParams
        ) -> None:
            span = tracer.start_span(
                f"{params.method} forward",
                kind=SpanKind.CLIENT,
                attributes={"http.request.method": params.method, "url.full": str(params.url)},
            )
            ctx.span = span
            propagate.inject(params.headers, context=trace.set_span_in_context(span))

        async def end(
            _s: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams
        ) -> None:
            ctx.span.set_attribute("http.response.status_code", params.response.status)
            ctx.span.end()

        async def failed(
            _s: aiohttp.ClientSession,
            ctx: SimpleNamespace,
            params: aiohttp.TraceRequestExceptionParams,
        ) -> None:
            ctx.span.record_exception(params.exception)
            ctx.span.set_status(Status(StatusCode.ERROR, type(params.exception).__name__))
            ctx.span.end()

        config.on_request_start.append(start)
        config.on_request_end.append(end)
        config.on_request_exception.append(failed)
        config.freeze()
        return config

    # -- native ----------------------------------------------------------------------------

    def native(self, service: NativeService) -> None:
        """Trace ``service``'s requests (those :meth:`NativeService.respond` answers)."""
        tracer = self.tracer
        respond = service.respond

        async def traced(request: Message, udp: bool, peer: str = "?") -> bytes | None:
            op = op_label(request.header.op_code)
            adopt(None, always=True)  # an id the queries it forwards carry on
            with tracer.start_as_current_span(
                f"native {op}",
                kind=SpanKind.SERVER,
                attributes={
                    "idnode.op": op,
                    "idnode.transport": "udp" if udp else "tcp",
                    "idnode.request_id": REQUEST_ID.get() or "",
                },
            ):
                return await respond(request, udp, peer)

        service.respond = traced  # type: ignore[method-assign]


def _answered(span: trace.Span, request: web.Request, status: int) -> None:
    span.set_attribute("http.response.status_code", status)
    rid = REQUEST_ID.get()
    if rid is not None:
        span.set_attribute("idnode.request_id", rid)
    handle = request.get(ECHO)
    if handle is not None:
        span.set_attribute("idnode.handle", handle)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))


# -- the store -----------------------------------------------------------------------------


def traced(
    store: Store, family: HistogramFamily, tracing: Tracing, system: str
) -> TracedStore | TracedSharedStore:
    """``store`` timed (as :func:`resolver.timedstore.timed`) and traced: a span per call,
    ``db.system`` ``system``."""
    made = (
        TracedSharedStore(store, family)
        if isinstance(store, SharedStore)
        else TracedStore(store, family)
    )
    made.tracer = tracing.tracer
    made.system = system
    return made


class TracedStore(TimedStore):
    """A :class:`TimedStore` whose every call is a client span as well (single-record
    reads too, though only one in 16 of them is timed)."""

    tracer: trace.Tracer
    system: str

    async def _timed(self, op: str, call: Awaitable[T]) -> T:
        with self.tracer.start_as_current_span(
            f"store {op}",
            kind=SpanKind.CLIENT,
            attributes={"db.system": self.system, "db.operation.name": op},
        ):
            return await super()._timed(op, call)

    def get(self, key: str) -> Coroutine[Any, Any, Record | None]:
        return self._traced_get(key)

    async def _traced_get(self, key: str) -> Record | None:
        with self.tracer.start_as_current_span(
            "store get",
            kind=SpanKind.CLIENT,
            attributes={"db.system": self.system, "db.operation.name": "get"},
        ):
            return await super().get(key)


class TracedSharedStore(TracedStore, TimedSharedStore):
    """A :class:`TracedStore` over a store several hosts share (still one)."""
