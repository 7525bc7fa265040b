"""OpenTelemetry tracing (the ``otel`` extra): spans after real requests over real sockets,
with their parents — an HTTP request's server span, its store calls' client spans under it,
a traced client's span above a request it makes, native requests — and none of it loaded
when tracing is off.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from registry.model.identifiers import parse
from registry.model.values import Value
from resolver.config import ConfigError, load
from resolver.native import client as native_client
from resolver.shell import Shell
from resolver.tracing import Tracing
from tests.conftest import ENT8, ENT8_ADMIN, JSON, init_node, served_app
from tests.procs import ROOT, clean_env, serving

URL_VALUE = {"values": [{"index": 1, "type": "URL", "data": "https://example.org/t"}]}


@dataclass
class Traced:
    url: str
    native: tuple[str, int]
    shell: Shell
    spans: InMemorySpanExporter
    session: aiohttp.ClientSession

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())


@contextlib.asynccontextmanager
async def traced(data: Path) -> AsyncIterator[Traced]:
    """The node served in-process over HTTP and native, tracing into memory."""
    await init_node(data)
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    config = dataclasses.replace(load(data, env={}), http="127.0.0.1:0", native="127.0.0.1:0")
    shell = Shell(config, tracing=Tracing(provider))
    await shell.start()
    try:
        http, native = shell.listeners
        assert shell.node is not None
        await shell.node.registry.import_records(
            [(parse(f"{ENT8}/STORED"), [Value(1, "URL", b"https://example.org/s")])]
        )
        async with aiohttp.ClientSession() as session:
            yield Traced(
                f"http://127.0.0.1:{http.addresses[0][1]}",
                ("127.0.0.1", native.addresses[0][1]),
                shell,
                spans,
                session,
            )
    finally:
        await shell.close()


def named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def children(spans: Sequence[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [
        s
        for s in spans
        if s.parent is not None
        and s.parent.span_id == parent.context.span_id
        and s.context is not None
        and s.context.trace_id == parent.context.trace_id
    ]


async def test_an_http_request_is_a_server_span_over_its_store_calls(tmp_path: Path) -> None:
    async with traced(tmp_path / "node") as t:
        async with t.session.get(
            f"{t.url}/api/handles/{ENT8}/STORED", headers={"X-Request-Id": "trace-me-1"}
        ) as r:
            assert r.status == 200
            assert r.headers["X-Request-Id"] == "trace-me-1"
        async with t.session.put(
            f"{t.url}/api/handles/{ENT8}/NEW", json=URL_VALUE, headers={**ENT8_ADMIN, **JSON}
        ) as r:
            assert r.status == 201
            made_id = r.headers["X-Request-Id"]  # made for it: tracing gives every request one
        spans = t.finished()

    (read,) = named(spans, "GET resolve")
    assert read.kind == SpanKind.SERVER and read.parent is None
    assert read.attributes is not None
    assert read.attributes["idnode.request_id"] == "trace-me-1"
    assert read.attributes["http.response.status_code"] == 200
    assert read.attributes["url.path"] == f"/api/handles/{ENT8}/STORED"
    below = children(spans, read)
    # Not cached yet: the record's store read (after the prefix states' read, on a first query).
    assert [s.name for s in below][-1:] == ["store get"], below
    assert {s.name for s in below} <= {"store get", "store get_many"}, below
    assert below[0].kind == SpanKind.CLIENT
    assert below[0].attributes is not None and below[0].attributes["db.system"] == "sqlite"

    (write,) = named(spans, "PUT write")
    assert write.attributes is not None
    assert write.attributes["idnode.request_id"] == made_id
    assert write.attributes["idnode.handle"] == f"{ENT8}/NEW"
    assert write.attributes["http.response.status_code"] == 201
    assert "store transact" in {s.name for s in children(spans, write)}
    assert write.context is not None and read.context is not None
    assert write.context.trace_id != read.context.trace_id  # a trace per request


async def test_a_traced_client_continues_its_trace_in_the_node(tmp_path: Path) -> None:
    """What forwarding's session does (its trace config): a client span per request, whose
    context the request carries (``traceparent``) and the node's server span continues."""
    async with traced(tmp_path / "node") as t:
        tracing = t.shell.tracing
        assert tracing is not None
        with tracing.tracer.start_as_current_span("caller") as caller:
            async with (
                aiohttp.ClientSession(trace_configs=[tracing.client_trace()]) as session,
                session.get(f"{t.url}/api/handles/{ENT8}/STORED") as r,
            ):
                assert r.status == 200
        spans = t.finished()
    (outgoing,) = named(spans, "GET forward")
    assert outgoing.kind == SpanKind.CLIENT
    assert (
        outgoing.parent is not None and outgoing.parent.span_id == caller.get_span_context().span_id
    )
    assert outgoing.attributes is not None
    assert outgoing.attributes["http.response.status_code"] == 200
    (served,) = named(spans, "GET resolve")
    assert children(spans, outgoing) == [served]  # the node continued the caller's trace


async def test_a_native_request_is_a_server_span_over_its_store_calls(tmp_path: Path) -> None:
    async with traced(tmp_path / "node") as t:
        reply = await native_client.resolve(*t.native, f"{ENT8}/STORED")
        assert reply.header.response_code == 1
        spans = t.finished()
    (native,) = named(spans, "native resolve")
    assert native.kind == SpanKind.SERVER and native.attributes is not None
    assert native.attributes["idnode.transport"] == "udp"
    assert native.attributes["idnode.request_id"]
    below = [s.name for s in children(spans, native)]
    assert below[-1:] == ["store get"] and set(below) <= {"store get", "store get_many"}, below


# ------------------------------------------------------------------ exporting, and off


@contextlib.asynccontextmanager
async def collector() -> AsyncIterator[tuple[str, list[ExportTraceServiceRequest]]]:
    """An OTLP/HTTP traces endpoint on port 0 keeping what it is sent."""
    got: list[ExportTraceServiceRequest] = []

    async def traces(request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        got.append(message)
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    async with served_app(app) as base:
        yield base, got


async def test_idnode_serve_exports_spans_to_an_otlp_collector(tmp_path: Path) -> None:
    data = tmp_path / "node"
    await init_node(data)
    async with collector() as (base, got):
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": base, "OTEL_SERVICE_NAME": "idnode-test"}
        async with (
            serving(data, env=env) as served,
            aiohttp.ClientSession() as session,
            session.get(f"{served.url}/api/handles/0.NA/88.118") as r,
        ):
            assert r.status == 200
        # Stopped (SIGTERM): the node's close sent what was still queued.
        names: list[str] = []
        service: set[str] = set()
        for message in got:
            for resource_spans in message.resource_spans:
                attrs = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                service.add(attrs.get("service.name", ""))
                for scope in resource_spans.scope_spans:
                    names += [s.name for s in scope.spans]
    assert "GET resolve" in names, names
    assert service == {"idnode-test"}


def test_tracing_configuration(tmp_path: Path) -> None:
    data = tmp_path / "node"
    asyncio.run(init_node(data))
    assert load(data, env={}).otel_endpoint is None  # off unless asked for
    base = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}
    assert load(data, env=base).otel_endpoint == "http://collector:4318/v1/traces"
    traces = {**base, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/t"}
    assert load(data, env=traces).otel_endpoint == "http://c:4318/t"
    assert load(data, env={**traces, "OTEL_SDK_DISABLED": "true"}).otel_endpoint is None
    own = {"IDNODE_OTEL_ENDPOINT": "https://mine:4318/v1/traces", **base}
    assert load(data, env=own).otel_endpoint == "https://mine:4318/v1/traces"
    with pytest.raises(ConfigError, match="otel_endpoint must be an http"):
        load(data, env={"IDNODE_OTEL_ENDPOINT": "collector:4318"})


# A node serving without tracing, in a process of its own: nothing of tracing loaded.
UNTRACED = """
import asyncio, dataclasses, sys
from pathlib import Path
import aiohttp
from resolver.config import load
from resolver.shell import Shell

async def main() -> None:
    config = dataclasses.replace(load(Path(sys.argv[1]), env={}), http="127.0.0.1:0")
    shell = Shell(config)
    await shell.start()
    try:
        port = shell.listeners[0].addresses[0][1]
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{port}/api/handles/0.NA/88.118") as r:
                assert r.status == 200
    finally:
        await shell.close()
    # What tracing would load (redis-py loads OpenTelemetry's metrics SDK itself, when
    # installed, for its own optional metrics: not ours to count).
    ours = ("resolver.tracing", "opentelemetry.sdk.trace", "opentelemetry.exporter",
            "opentelemetry.propagate")
    print(sorted(m for m in sys.modules if m.startswith(ours)))

asyncio.run(main())
"""


def test_without_tracing_nothing_of_it_is_loaded(tmp_path: Path) -> None:
    data = tmp_path / "node"
    asyncio.run(init_node(data))
    done = subprocess.run(
        [sys.executable, "-c", UNTRACED, str(data)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_tracing_asked_for_without_the_extra_is_a_clear_error(tmp_path: Path) -> None:
    """Where the ``otel`` extra is not installed (hidden here), asking for tracing stops the
    node with a line that says what to install."""
    data = tmp_path / "node"
    asyncio.run(init_node(data))
    hide = "import sys; sys.modules['opentelemetry'] = None; "
    run = "from resolver.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", hide + run, "serve", "--data", str(data), "--http", "127.0.0.1:0"],
        cwd=ROOT,
        env={**clean_env(), "IDNODE_OTEL_ENDPOINT": "http://127.0.0.1:9/v1/traces"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "pip install 'idnode[otel]'" in done.stderr and "Traceback" not in done.stderr
