"""Handlers of the Handle JSON API (``/api/...``) and reverse lookup (``/hrls/handles/``).

Each handler only decodes the request, calls the resolution core or the registry, and
renders the answer; every failure is a HandleError rendered by the app's middleware.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from bisect import bisect_left
from collections.abc import Sequence
from time import perf_counter
from typing import Any

import orjson
from aiohttp import web
from multidict import istr

from registry.audit import Caller
from registry.authz import Principal
from registry.cache.entry import CacheEntry
from registry.errors import (
    BODY_TIMEOUT,
    BODY_TOO_LARGE,
    CREATED,
    METHOD_NOT_ALLOWED,
    NO_SUCH_ENDPOINT,
    SUCCESS,
    AuthenticationNeeded,
    HandleExists,
    InvalidHandle,
    Outcome,
    ProtocolError,
)
from registry.model import jsonapi, jsonbody
from registry.model.identifiers import handle_key, parse
from registry.model.jsonapi import API_HANDLES
from registry.model.jsonvalues import value_to_json
from registry.model.site import Interface, single_server_site
from resolver import __version__
from resolver.core import Answer, Query
from resolver.forward.base import (
    HOPS_HEADER,
    VERIFIED_HEADER,
    VERIFY_ERROR_HEADER,
    VIA_HEADER,
    parse_hops,
)
from resolver.http.credentials import principal
from resolver.http.keys import ECHO, NODE, ROOT_JWK
from resolver.http.observe import adopt_incoming, response_code
from resolver.http.respond import JSON_TYPE, cors, failure, json_response
from resolver.metrics import LATENCY_BUCKETS
from resolver.requestid import REQUEST_ID_HEADER

log = logging.getLogger("idnode.http")


def path_handle(request: web.Request, prefix: str = API_HANDLES) -> str:
    """The handle in the path exactly as sent, percent-decoded ('+' stays '+')."""
    return jsonapi.path_handle(request.raw_path, prefix)


def http_caller(request: web.Request) -> Caller:
    """Who the audit log names for a write over HTTP (the identity: its credentials')."""
    return Caller("http", request.remote or "", "anonymous")


async def writer(request: web.Request, handle: str) -> Principal | None:
    """The authenticated caller of a write; a write without usable credentials is refused
    (401, or 403 over a transport that may not carry them) and that refusal recorded."""
    node = request.app[NODE]
    try:
        return await principal(request, node, required=True)
    except AuthenticationNeeded as exc:
        caller = http_caller(request)
        reason = exc.message or "no credentials"
        await node.registry.refused(caller, caller.identity, handle, reason)
        raise


def shown(header: str) -> str:
    """A request header's text as a message may quote it: aiohttp decodes bytes that are not
    UTF-8 to lone surrogates, which JSON cannot carry; they are shown as ``\\xNN``."""
    return header.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


async def read_json(request: web.Request) -> Any:
    """The JSON body of a write: ``application/json``, no larger than ``max_body`` and
    received within ``body_timeout``."""
    ctype = request.headers.get("Content-Type", "")
    mime = ctype.split(";", 1)[0].strip().lower()
    if mime != "application/json":
        raise ProtocolError(
            f"Unsupported media type {shown(ctype) or 'none'}: send application/json"
        )
    config = request.app[NODE].config
    try:
        # A client that stops sending mid-body holds its connection no longer than this.
        async with asyncio.timeout(config.body_timeout):
            body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ProtocolError(
            f"Request body larger than {config.max_body} bytes", outcome=BODY_TOO_LARGE
        ) from None
    except TimeoutError:
        raise ProtocolError(
            f"Request body not received within {config.body_timeout:g} s", outcome=BODY_TIMEOUT
        ) from None
    return jsonbody.decode(body, request.method)


JSON_HEADERS = {"Content-Type": JSON_TYPE}
# Header names checked on every resolution, made case-insensitive once (a plain str is
# converted on each lookup).
_AUTHORIZATION, _ORIGIN = istr("Authorization"), istr("Origin")
_HOPS, _VIA = istr(HOPS_HEADER), istr(VIA_HEADER)
_REQUEST_ID = istr(REQUEST_ID_HEADER)  # a request that brings an id gets it echoed
_ANSWER_HEAD = b'{"responseCode":%d,"handle":' % SUCCESS.response_code
_ANSWER_VALUES = b',"values":'


PUBLIC_JSON = "answer"  # the cache entry's rendering this API sends: its whole answer


def render_public(entry: CacheEntry) -> bytes:
    """The answer to an unfiltered anonymous query of ``entry``'s record, the handle echoed
    as the record spells it (:func:`answer_body` respells it for a query that differs)."""
    record = entry.record
    assert record is not None
    values = orjson.dumps([value_to_json(v) for v in entry.public])
    return b"".join((_ANSWER_HEAD, orjson.dumps(record.handle), _ANSWER_VALUES, values, b"}"))


def answer_body(entry: CacheEntry, handle: str) -> bytes:
    """``entry``'s whole public answer echoing ``handle`` as the query spelt it."""
    body = entry.rendered.get(PUBLIC_JSON) or entry.render(PUBLIC_JSON, render_public)
    own = entry.handle
    if handle == own:
        return body  # the common case: the bytes rendered once per entry
    values = body[len(_ANSWER_HEAD) + len(orjson.dumps(own)) :]
    return b"".join((_ANSWER_HEAD, orjson.dumps(handle), values))


def _ok(handle: str, outcome: Outcome = SUCCESS) -> web.Response:
    return json_response({"responseCode": outcome.response_code, "handle": handle}, outcome.http)


async def get_handle(request: web.Request) -> web.StreamResponse:
    """Resolution. Its own error boundary, inline (what :func:`respond.guard` wraps the other
    handlers in): the busiest route runs in one coroutine. It counts and times itself too,
    the cached answer with a ready series (:attr:`resolver.metrics.Recorder.resolved`)."""
    start = perf_counter()
    node = request.app[NODE]
    handle: str | None = None
    try:
        raw = request.raw_path
        handle = jsonapi.path_handle(raw)
        headers = request.headers
        if (
            "?" not in raw
            and _AUTHORIZATION not in headers
            and _HOPS not in headers
            and _VIA not in headers
            and _REQUEST_ID not in headers
        ):
            # The common case: no query string to parse, no caller; the hottest records
            # answer from the in-process tier without a coroutine of the core's.
            entry = node.resolver.cached(handle)
            if entry is not None:
                response = web.Response(body=answer_body(entry, handle), headers=JSON_HEADERS)
                # Histogram.observe of the ready series, inlined: the hot path.
                elapsed = perf_counter() - start
                hot = node.telemetry.http.resolved
                hot.counts[bisect_left(LATENCY_BUCKETS, elapsed)] += 1
                hot.sum += elapsed
                return cors(request, response) if _ORIGIN in headers else response
            query = Query(handle)
        else:
            adopt_incoming(request)
            q = request.query
            indexes, _ = jsonapi.indexes(q)
            hops, via = parse_hops(headers)
            query = Query(
                handle,
                indexes,
                jsonapi.types(q),
                authoritative=bool(jsonapi.flag(q, "auth")),
                public_only=jsonapi.flag(q, "publicOnly"),
                who=await principal(request, node, required=False),
                hops=hops,
                via=via,
            )
        answer = await node.resolver.resolve(query)
        outcome = answer.outcome
        if outcome is SUCCESS and answer.whole and answer.entry is not None:
            # The cached entry's public answer, rendered once per entry.
            response = web.Response(body=answer_body(answer.entry, handle), headers=JSON_HEADERS)
        else:
            response = answer_response(handle, answer, outcome)
    except Exception as exc:
        if handle is not None:
            request[ECHO] = handle  # the error answer echoes it
        node.telemetry.http.observe("resolve", response_code(exc), perf_counter() - start)
        return failure(request, exc)
    http = node.telemetry.http
    series = http.resolved if outcome is SUCCESS else http.series("resolve", outcome.response_code)
    series.observe(perf_counter() - start)
    return cors(request, response)


def answer_response(handle: str, answer: Answer, outcome: Outcome) -> web.Response:
    """The JSON answer for ``answer`` (whose :attr:`~Answer.outcome` is ``outcome``) to a query
    of ``handle``: its values, none, or a referral to the prefix record whose site values it
    carries; an answer another node gave is marked with whether it verified up to the
    top-level root."""
    values = [value_to_json(v) for v in answer.values]
    code = outcome.response_code
    body: dict[str, Any]
    if answer.referral is not None:
        body = {
            "responseCode": code,
            "handle": handle,
            "referralHandle": answer.referral,
            "values": values,
        }
        return json_response(body, outcome.http)
    extra = None
    if answer.verified is not None:
        extra = {VERIFIED_HEADER: "true" if answer.verified else "false"}
        if answer.unverified_reason:
            reason = answer.unverified_reason.replace("\r", " ").replace("\n", " ")
            extra[VERIFY_ERROR_HEADER] = reason.encode("ascii", "replace").decode("ascii")[:500]
    if values:
        body = {"responseCode": code, "handle": handle, "values": values}
    else:  # the reference's key order for "nothing matched"
        body = {"responseCode": code, "values": values, "handle": handle}
    return json_response(body, outcome.http, extra)


async def put_handle(request: web.Request) -> web.Response:
    node = request.app[NODE]
    handle = path_handle(request)
    request[ECHO] = handle
    q = request.query
    who = await writer(request, handle)
    caller = http_caller(request)
    mint = bool(jsonapi.flag(q, "mintNewSuffix"))
    if mint and "/" not in handle:
        raise InvalidHandle("mintNewSuffix needs a path ending in 'PREFIX/' (or 'PREFIX/start')")
    body = await read_json(request)
    values, body_handle = jsonbody.values_from_body(body)
    indexes, various = jsonapi.indexes(q)
    if indexes and set(indexes) != {v.index for v in values}:
        raise ProtocolError(
            "Mismatched indexes in PUT request: the index parameters must "
            "name exactly the body's values"
        )
    for _ in range(3):
        target = handle + str(uuid.uuid4()) if mint else handle
        request[ECHO] = target
        ident = parse(target)
        if body_handle is not None and handle_key(body_handle) != ident.key:
            raise ProtocolError(
                f"Mismatched handle in PUT request: the body names {body_handle!r}"[:300]
            )
        if indexes or various:
            result = await node.registry.put_values(
                ident, values, overwrite=jsonapi.overwrite(q), who=who, caller=caller
            )
        else:
            try:
                overwrite = False if mint else jsonapi.overwrite(q)
                result = await node.registry.put_record(
                    ident, values, overwrite=overwrite, who=who, caller=caller
                )
            except HandleExists:
                if mint:
                    continue  # a UUID collision: mint another
                raise
        return _ok(target, CREATED if result.created else SUCCESS)
    raise HandleExists("Could not mint a fresh suffix")


async def delete_handle(request: web.Request) -> web.Response:
    node = request.app[NODE]
    handle = path_handle(request)
    request[ECHO] = handle
    who = await writer(request, handle)
    indexes, _ = jsonapi.indexes(request.query)
    ident = parse(handle)
    if indexes:
        await node.registry.delete_values(ident, indexes, who, http_caller(request))
    else:
        await node.registry.delete_record(ident, who, http_caller(request))
    return _ok(handle)


async def list_handles(request: web.Request) -> web.StreamResponse:
    node = request.app[NODE]
    q = request.query
    prefix = q.get("prefix")
    if not prefix:
        raise InvalidHandle("Empty handle invalid")
    request[ECHO] = prefix
    who = await principal(request, node, required=True)
    assert who is not None
    page_raw, size_raw = q.get("page"), q.get("pageSize")
    page = jsonapi.integer(page_raw, "page") if page_raw is not None else None
    size = jsonapi.integer(size_raw, "pageSize") if size_raw is not None else None
    if page is not None and size is not None and page >= 0 and size > 0:
        result = await node.listings.list_handles(prefix, who, page, size)
        return json_response(
            {
                "responseCode": SUCCESS.response_code,
                "prefix": prefix,
                "totalCount": str(result.total),
                "page": page,
                "pageSize": size,
                "handles": result.handles,
            }
        )
    # Everything: streamed in chunks, so memory stays bounded for millions of handles.
    total, chunks = await node.listings.stream_handles(prefix, who)
    resp = cors(request, web.StreamResponse(headers={"Content-Type": JSON_TYPE}))
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    head = {"responseCode": SUCCESS.response_code, "prefix": prefix, "totalCount": str(total)}
    try:
        await resp.write(orjson.dumps(head)[:-1] + b',"handles":[')
        first = True
        async for handles in chunks:
            if handles:
                part = orjson.dumps(handles)[1:-1]
                await resp.write(part if first else b"," + part)
                first = False
        await resp.write(b"]}")
        await resp.write_eof()
    except ConnectionResetError:
        # The client left mid-stream (a write found the connection closing before aiohttp
        # cancelled this handler): its doing, and nothing left to answer.
        log.debug("listing %s: the client left mid-stream", prefix)
    return resp


async def list_prefixes(request: web.Request) -> web.Response:
    node = request.app[NODE]
    await principal(request, node, required=True)
    prefixes = await node.listings.prefixes()
    return json_response(
        {
            "responseCode": SUCCESS.response_code,
            "totalCount": str(len(prefixes)),
            "prefixes": prefixes,
        }
    )


def site_info(request: web.Request) -> dict[str, Any]:
    """The site as the reference's ``/api/site`` shows it: this server's address and HTTP
    interface, and its public key (the node's root key, which certified native replies are
    signed with and the top-level's copy of the site record names)."""
    config = request.app[NODE].config
    sock = request.transport.get_extra_info("sockname") if request.transport else None
    address = sock[0] if sock else config.http_host
    port = sock[1] if sock else config.http_port
    return single_server_site(
        address,
        [Interface("HTTPS" if request.secure else "HTTP", port)],
        [
            ("desc", f"{config.name} (idnode secondary node)"),
            ("software", f"idnode {__version__}"),
            ("prefixes", ",".join(config.prefixes)),
        ],
        public_key=request.app[ROOT_JWK],
    )


async def get_site(request: web.Request) -> web.Response:
    return json_response({"responseCode": SUCCESS.response_code, "site": site_info(request)})


REVERSE_RESERVED = {"limit"}


async def reverse_lookup(request: web.Request) -> web.Response:
    node = request.app[NODE]
    who = await principal(request, node, required=True)
    assert who is not None
    q = request.query
    terms: Sequence[tuple[str, str]] = [(k, v) for k, v in q.items() if k not in REVERSE_RESERVED]
    if len(terms) != 1 or not terms[0][1]:
        raise ProtocolError(
            "Give exactly one TYPE=pattern to look for, e.g. ?URL=https://example.org/*"
        )
    limit = jsonapi.integer(q.get("limit", "1000"), "limit")
    if limit <= 0:
        raise ProtocolError("limit must be positive")
    vtype, pattern = terms[0]
    return json_response(await node.listings.reverse_lookup(vtype, pattern, who, limit))


KNOWN_API = {
    "/api/site",
    "/api/prefixes",
    "/api/handles",
    "/api/audit",
    "/api/enterprises",
    "/api/templates",
    "/api/sessions",
}


async def unknown_api(request: web.Request) -> web.Response:
    known = request.path.rstrip("/") in KNOWN_API
    raise ProtocolError(
        f"Unknown HTTP API endpoint {request.method} {request.path}",
        outcome=METHOD_NOT_ALLOWED if known else NO_SUCH_ENDPOINT,
    )
