"""Fuzzing the HTTP API of a real ``idnode serve`` over raw sockets.

Hypothesis sends random and mutated requests — methods, paths (percent-escapes, control
characters, invalid UTF-8), query strings (many and odd parameters, huge and negative
numbers), headers (Authorization in any scheme, with any token; Origin; the routing headers),
bodies (random bytes, mutated value lists, huge numbers, deep nesting) — a few at a time, so
that a write is followed by reads of what it wrote. Every answer must be:

- given in time (:data:`DEADLINE` per request) — nothing hangs;
- below 500, but for 501 to a method the API does not know (as documented);
- JSON with a ``responseCode`` under ``/api/``, but for the empty 401 that wrong credentials
  get (as Handle clients expect, and documented);

and after every example the node still resolves a record the fuzzer cannot write to, byte for
byte as before, and its log holds no traceback.

The requests go over a raw socket (a client library refuses, or repairs, most of what is
sent here). Failed authentications come from addresses of their own in 127/8 (the node
throttles per address), so that the valid credentials some writes carry keep working.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import io
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from registry.model.identifiers import parse, prefix_handle
from registry.model.jsonvalues import value_from_json
from registry.model.values import Value
from resolver.config import load
from resolver.forward.base import HOPS_HEADER, VIA_HEADER
from resolver.node import Node
from tests.conftest import ENT8, ENT8_ADMIN, ENT9, Server, identity, init_node
from tests.procs import Served, serving

FUZZ_EXAMPLES = 500  # about 1,000 requests: 5-10 s here
DEADLINE = 5.0  # seconds per request: far beyond a busy machine's worst honest answer
MAX_BODY = 262_144  # the node's default max_body
GOOD = f"{ENT9}/GOOD"  # resolved between examples; the fuzzer holds no credentials for ENT9
PRODUCTS = ("P001", "P002", "JXDY2106023")  # demo-like records of ENT8, fair game
BIG = f"{ENT8}/BIG"  # a record of many values (read only: filters cost per value)
BIG_VALUES = 1500
POOL = (*PRODUCTS, "F0", "F1", "F2")  # the suffixes fuzzed writes and reads meet on

# ------------------------------------------------------------------ the wire


@dataclass(frozen=True)
class Request:
    method: bytes
    target: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""
    source: str = "127.0.0.1"  # the client address: failed authentications get their own

    def wire(self) -> bytes:
        head = [self.method + b" " + self.target + b" HTTP/1.1", b"Host: 127.0.0.1"]
        head += [k + b": " + v for k, v in self.headers]
        if self.body or self.method in (b"PUT", b"POST"):
            head.append(b"Content-Length: %d" % len(self.body))
        head.append(b"Connection: close")
        return b"\r\n".join(head) + b"\r\n\r\n" + self.body

    @property
    def path(self) -> bytes:
        return self.target.partition(b"?")[0]


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


class _Replayed:
    """What ``http.client.HTTPResponse`` reads a response from: the bytes received."""

    def __init__(self, data: bytes) -> None:
        self._file = io.BytesIO(data)

    def makefile(self, *_: Any, **__: Any) -> io.BytesIO:
        return self._file


def exchange(port: int, request: Request) -> Reply | None:
    """Send ``request`` on a fresh connection and read the answer until the server closes it
    (``Connection: close``), within :data:`DEADLINE`. None: closed without an answer."""
    deadline = time.monotonic() + DEADLINE
    with socket.socket() as sock:
        sock.bind((request.source, 0))
        sock.settimeout(DEADLINE)
        sock.connect(("127.0.0.1", port))
        # Answered (413, 401) before the whole body was sent? The answer follows.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request.wire())
        received = bytearray()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no complete answer within {DEADLINE} s: {request}")
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue  # the deadline check above reports it
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    if not received:
        return None
    method = request.method.decode("latin-1")
    response = http.client.HTTPResponse(_Replayed(bytes(received)), method=method)  # type: ignore[arg-type]
    response.begin()
    return Reply(response.status, response.msg, response.read())


# ------------------------------------------------------------------ what must hold


def check(request: Request, reply: Reply | None) -> None:
    """What every answer must be (see the module's docstring)."""
    if reply is None:
        # Only a body past max_body may be cut off unanswered (the server stops reading).
        assert len(request.body) > MAX_BODY, f"closed without an answer: {request}"
        return
    what = f"{reply.status} {reply.body[:300]!r} for {request}"
    unknown_method = request.method not in (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE")
    assert reply.status < 500 or (reply.status == 501 and unknown_method), what
    if not (request.path.startswith(b"/api/") or request.path == b"/api"):
        return
    if reply.status == 401 and reply.body == b"":
        return  # wrong credentials: no body, as Handle clients expect
    if request.method == b"OPTIONS" and reply.status == 200 and reply.body == b"":
        return  # a CORS preflight: the Allow header says it all
    assert "application/json" in reply.headers.get("Content-Type", ""), what
    if request.method == b"HEAD":
        return
    try:
        body = json.loads(reply.body)
    except ValueError:
        raise AssertionError(f"not JSON: {what}") from None
    assert isinstance(body, dict) and isinstance(body.get("responseCode"), int), what


# ------------------------------------------------------------------ requests

T = TypeVar("T")


def weighted(*choices: tuple[int, st.SearchStrategy[T]]) -> st.SearchStrategy[T]:
    """One of ``choices``, each drawn ``weight`` times as often as a weight of 1."""
    return st.one_of(*[strategy for weight, strategy in choices for _ in range(weight)])


_BYTES = st.binary(max_size=12)
_TEXT = st.text(max_size=12)
_INT_TEXTS = weighted(
    (4, st.integers(-2, 40).map(str)),
    (1, st.sampled_from(["2147483647", "2147483648", "4294967296", "-2147483649", "9" * 30])),
    (1, st.sampled_from(["", " 7 ", "1e3", "0x10", "various", "1.5", "٣", "+4", "--1"])),
    (1, st.integers(-(2**70), 2**70).map(str)),
)


def _escaped(raw: bytes) -> str:
    return "".join(f"%{b:02X}" for b in raw)


_HANDLES = weighted(
    (12, st.sampled_from([f"{ENT8}/{s}" for s in POOL])),
    (
        2,
        st.sampled_from(
            [
                prefix_handle("88.118"),
                f"{ENT9}/X",
                GOOD,
                "88.118.7/x",  # not allocated
                "99.1/x",  # another node's
                "0.NA/0.NA",
                f"{ENT8}/",
                ENT8,
                "",
                f"{ENT8}//x",
                f"{ENT8}/../{ENT9}/GOOD",
            ]
        ),
    ),
    (1, _TEXT.map(lambda t: quote(t, safe="/"))),
    (1, _BYTES.map(_escaped)),  # any bytes: invalid UTF-8, %00, %0A
    (
        1,
        st.sampled_from(["%0a", "%0d%0a", "%00", "%ff", "%", "%zz", "%2F", "%20"]).map(
            lambda escape: f"{ENT8}/x{escape}y"
        ),
    ),
)


def _query_text(pairs: list[tuple[str, str]]) -> str:
    return "&".join(quote(k, safe="") + ("=" + quote(v, safe="*") if v else "") for k, v in pairs)


def _many(key: str, value: str, n: int) -> str:
    """``n`` times ``key=value``, within the request line's limit (8190 bytes)."""
    item = f"{key}={quote(value, safe='')}"
    return "&".join([item] * min(n, 7800 // (len(item) + 1)))


_KEYS = weighted(
    (
        4,
        st.sampled_from(
            [
                "index",
                "type",
                "auth",
                "publicOnly",
                "overwrite",
                "mintNewSuffix",
                "noredirect",
                "handle",
                "limit",
                "prefix",
                "page",
                "pageSize",
            ]
        ),
    ),
    (1, _TEXT),
)
_PARAMS = weighted(
    (2, _INT_TEXTS),
    (2, st.sampled_from(["true", "false", "", "URL", "HS_ADMIN", ENT8, "*", "http*"])),
    (1, _TEXT),
)
# The fuzzer's own credentials live in 0.NA/88.118.8: it reads that handle, but writing it
# could lock itself out (a new secret, a deleted admin), so writes never aim at it.
_READ_HANDLES = _HANDLES | st.sampled_from([prefix_handle(ENT8), BIG])
_INDEX_OR_TYPE = st.sampled_from(["type", "index"])
_RESOLVE_QUERIES = weighted(
    (3, st.just("")),
    (
        3,
        st.lists(
            st.tuples(st.sampled_from(["index", "type", "auth", "publicOnly"]), _PARAMS),
            max_size=5,
        ).map(_query_text),
    ),
    # Many of one parameter: the reference server takes any number.
    (1, st.builds(_many, _INDEX_OR_TYPE, _PARAMS, st.integers(20, 1500))),
    (1, st.lists(st.tuples(_INDEX_OR_TYPE, _PARAMS), max_size=300).map(_query_text)),
)
_WRITE_QUERIES = weighted(
    (4, st.just("")),
    (
        2,
        st.lists(
            st.tuples(st.sampled_from(["overwrite", "mintNewSuffix", "index"]), _PARAMS),
            max_size=3,
        ).map(_query_text),
    ),
)
_LIST_QUERIES = st.builds(
    lambda prefix, page, size: _query_text(
        [*(("prefix", p) for p in prefix), *(("page", p) for p in page)]
        + [("pageSize", z) for z in size]
    ),
    st.lists(st.sampled_from([ENT8, ENT9, "88.118", "0.NA/88.118.8", "99", ""]), max_size=1),
    st.lists(_INT_TEXTS, max_size=1),
    st.lists(_INT_TEXTS, max_size=1),
)
_REVERSE_QUERIES = st.builds(
    lambda term, limit: _query_text([*term, *limit]),
    st.lists(
        st.tuples(
            st.sampled_from(["URL", "DESC", "HS_ADMIN", "x"]),
            st.sampled_from(["https://e.example/*", "*", "**", "", "%", "_", "[", "\\"])
            | st.integers(1, 500).map(lambda n: "*e" * n + "Z")  # backtracking, if any
            | _TEXT,
        ),
        max_size=2,
    ),
    st.lists(st.tuples(st.just("limit"), _INT_TEXTS), max_size=1),
)
_ANY_QUERIES = st.lists(st.tuples(_KEYS, _PARAMS), max_size=6).map(_query_text)


def _basic_token(user: bytes, secret: bytes) -> bytes:
    return b"Basic " + base64.b64encode(user + b":" + secret)


_RANDOM_AUTH = st.one_of(
    st.builds(_basic_token, _BYTES, _BYTES),
    st.builds(
        lambda ident, secret: _basic_token(quote(ident, safe="").encode(), secret),
        st.sampled_from([identity(ENT8), identity(ENT9), identity("88.118"), "300:0.NA/99"]),
        _BYTES,
    ),
    st.builds(
        lambda scheme, token: scheme + b" " + token,
        st.sampled_from([b"Basic", b"basic", b"Bearer", b"Handle", b"Digest", b""]),
        _BYTES.map(base64.b64encode) | _BYTES.map(_escaped).map(str.encode),
    ),
    st.sampled_from([b"Basic", b"Basic ====", b" ", b"Basic Og==", b"Basic " + b"A" * 4000]),
)
# Header values HTTP allows: visible ASCII, spaces, tabs and obs-text (bytes over 127).
_HEADER_VALUE = st.text(
    st.characters(codec="latin-1", exclude_categories=["Cc"]) | st.just("\t"), max_size=40
).map(lambda t: t.strip().encode("latin-1"))
_CONTENT_TYPES = weighted(
    (8, st.just(b"application/json")),
    (
        2,
        st.sampled_from(
            [
                b"application/json;charset=utf-8",
                b"Application/JSON ; charset=latin-1",
                b"text/plain",
                b"",
                b"multipart/form-data; boundary=x",
            ]
        ),
    ),
    (1, _HEADER_VALUE),
)
_HEADERS = st.lists(
    st.one_of(
        st.tuples(st.just(b"Accept"), st.sampled_from([b"application/json", b"text/html", b"*/*"])),
        st.tuples(
            st.just(b"Origin"), st.sampled_from([b"https://x.example", b"null"]) | _HEADER_VALUE
        ),
        st.tuples(st.just(HOPS_HEADER.encode()), _INT_TEXTS.map(str.encode) | _HEADER_VALUE),
        st.tuples(st.just(VIA_HEADER.encode()), _HEADER_VALUE),
        st.tuples(
            st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).map(str.encode),
            _HEADER_VALUE,
        ),
    ),
    max_size=3,
)

# Bodies: value lists valid but for at most one odd field per value (an index out of range,
# data of the wrong shape, a CR in a URL, ...), so that most writes happen and are read back.
_URLS = weighted(
    (3, st.sampled_from(["https://e.example/x", "http://e.example/a?b=c#d", "mailto:a@e.x"])),
    (1, st.sampled_from(["http://a/\r\nX-Y: z", "http://a/\nb", "http://a/\x00", "\r", " "])),
)
_FINE_INDEXES = st.integers(1, 12)
_ODD_NUMBERS = st.sampled_from(
    [0, -1, 2**31 - 1, 2**31, 2**32, -(2**31) - 1, 2**63, 2**64, 10**30, 1.5, 1e300]
)
_ODD: st.SearchStrategy[Any] = (
    _ODD_NUMBERS | st.sampled_from(["", "1", None, True, [], {}]) | st.text(max_size=8)
)
_ODD_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "index": _ODD,
    "type": st.sampled_from(["", "HS_SIGNATURE", "HS_CERT", "HS_PUBKEY", "HS_SITE", 7]) | _TEXT,
    "data": _ODD | _URLS,
    "format": st.sampled_from(["nope", "ADMIN", "hex", "base64", "key", "site", "vlist", 1]),
    "admin": _ODD,  # the admin's index in HS_ADMIN data
    "vlist": _ODD,  # a reference's index in HS_VLIST data
    "ttl": _ODD,
    "ttlType": _ODD,
    "permissions": _ODD | st.sampled_from(["1111", "0000", "abcd", "11111"]),
    "timestamp": _ODD | st.sampled_from(["x", "9999-12-31T23:59:59Z", "1970-01-01T00:00:00Z"]),
    "references": _ODD,  # a reference's index
}


def _admin(index: Any) -> dict[str, Any]:
    return {
        "format": "admin",
        "value": {"handle": prefix_handle(ENT8), "index": index, "permissions": "1" * 12},
    }


def _vlist(indexes: list[Any]) -> dict[str, Any]:
    return {"format": "vlist", "value": [{"handle": f"{ENT8}/F0", "index": i} for i in indexes]}


_SANE_VALUES = st.one_of(
    st.builds(lambda i, u: {"index": i, "type": "URL", "data": u}, _FINE_INDEXES, _URLS),
    st.builds(lambda i, t: {"index": i, "type": "DESC", "data": t}, _FINE_INDEXES, _TEXT),
    st.builds(
        lambda i: {"index": i, "type": "HS_ADMIN", "data": _admin(300)},
        st.just(100) | _FINE_INDEXES,
    ),
    st.builds(
        lambda i, refs: {"index": i, "type": "HS_VLIST", "data": _vlist(refs)},
        _FINE_INDEXES,
        st.lists(st.integers(1, 300), max_size=3),
    ),
    st.builds(
        lambda i, t: {"index": i, "type": "HS_SECKEY", "data": t, "permissions": "1100"},
        _FINE_INDEXES,
        _TEXT,
    ),
)


@st.composite
def _values(draw: st.DrawFn) -> dict[str, Any]:
    value: dict[str, Any] = draw(_SANE_VALUES)
    odd = draw(st.sampled_from([None] * 3 * len(_ODD_FIELDS) + list(_ODD_FIELDS)))
    if odd is None:
        return value
    it = draw(_ODD_FIELDS[odd])
    if odd == "format":
        value["data"] = {"format": it, "value": value["data"]}
    elif odd == "admin":
        value.update(type="HS_ADMIN", data=_admin(it))
    elif odd == "vlist":
        value.update(type="HS_VLIST", data=_vlist([it]))
    elif odd == "references":
        value["references"] = [{"handle": f"{ENT8}/F0", "index": it}]
    else:
        value[odd] = it
    return value


_VALUE = _values()
_JSON_BODIES = weighted(
    (4, st.lists(_VALUE, min_size=1, max_size=4).map(lambda vs: {"values": vs})),
    (1, st.lists(_VALUE, max_size=4)),
    (1, _VALUE),
    (
        1,
        st.builds(
            lambda vs, h: {"values": vs, "handle": h},
            st.lists(_VALUE, max_size=3),
            st.sampled_from([f"{ENT8}/F0", 7, None, ""]),
        ),
    ),
)


def _mutate(raw: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """``raw`` with ``edits``: (position, 0 replace / 1 insert / 2 delete, byte)."""
    out = bytearray(raw)
    for position, op, byte in edits:
        at = position % (len(out) + 1)
        if op == 0 and at < len(out):
            out[at] = byte
        elif op == 1:
            out.insert(at, byte)
        elif at < len(out):
            del out[at]
    return bytes(out)


_EDITS = st.lists(
    st.tuples(st.integers(0, 10_000), st.integers(0, 2), st.integers(0, 255)), min_size=1
)
_ENCODED = _JSON_BODIES.map(lambda body: json.dumps(body).encode())
_BODIES = weighted(
    (1, st.just(b"")),
    (8, _ENCODED),
    (2, st.builds(_mutate, _ENCODED, _EDITS)),
    (1, st.binary(max_size=200)),
    (
        1,
        st.one_of(
            st.integers(1, 20_000).map(lambda n: b"[" * n + b"]" * n),  # deep nesting
            st.integers(1, 2000).map(
                lambda n: (
                    b'{"values":[{"index":1,"type":"URL","data":'
                    + b'{"a":' * n
                    + b"1"
                    + b"}" * n
                    + b"}]}"
                )
            ),
            st.sampled_from(
                [
                    b'{"values":[{"index":1e999,"type":"URL","data":"u"}]}',
                    b'{"values":[{"index":' + b"9" * 400 + b',"type":"URL","data":"u"}]}',
                    b'{"values":[{"index":1,"type":"URL","data":"u","ttl":-1e400}]}',
                    b"\xef\xbb\xbf[]",
                    b'"\\ud800"',
                    b'[{"index":1,"type":"URL","data":"\\ud800"}]',
                    b"{}" * 50,
                    b"null",
                ]
            ),
            st.just(MAX_BODY + 1).map(lambda n: b"x" * n),  # one byte past max_body
        ),
    ),
)
Shape = tuple[bytes, str, str, bytes]  # method, path, query, body
_OTHER_PATHS = st.sampled_from(
    [
        "/api/handles/",
        "/api/site",
        "/api/prefixes",
        "/hrls/handles/",
        "/metrics",
        "/resolve",
        "/",
        "/api/",
        "/api",
        "/api/nope",
        "//api/handles/x",
        "/api/handles/%2e%2e/site",
    ]
)
_SHAPES: st.SearchStrategy[Shape] = weighted(
    (  # resolution
        4,
        st.tuples(
            weighted((6, st.just(b"GET")), (1, st.sampled_from([b"HEAD", b"POST"]))),
            _READ_HANDLES.map(lambda h: "/api/handles/" + h),
            _RESOLVE_QUERIES,
            st.just(b""),
        ),
    ),
    (  # writes
        4,
        st.tuples(
            st.just(b"PUT"), _HANDLES.map(lambda h: "/api/handles/" + h), _WRITE_QUERIES, _BODIES
        ),
    ),
    (
        1,
        st.tuples(
            st.just(b"DELETE"),
            _HANDLES.map(lambda h: "/api/handles/" + h),
            st.lists(st.tuples(st.just("index"), _PARAMS), max_size=2).map(_query_text),
            st.just(b""),
        ),
    ),
    (2, st.tuples(st.just(b"GET"), st.just("/api/handles"), _LIST_QUERIES, st.just(b""))),
    (
        1,
        st.tuples(
            st.just(b"GET"),
            st.sampled_from(["/hrls/handles/", "/hrls/handles"]),
            _REVERSE_QUERIES,
            st.just(b""),
        ),
    ),
    (  # proxy-style resolution
        2,
        st.tuples(
            st.sampled_from([b"GET", b"HEAD"]),
            _READ_HANDLES.map(lambda h: "/" + h),
            st.sampled_from(["", "noredirect", "noredirect=1&x=y"]) | _ANY_QUERIES,
            st.just(b""),
        ),
    ),
    (  # anything else
        2,
        st.tuples(
            st.sampled_from(
                [b"GET", b"PUT", b"DELETE", b"HEAD", b"POST", b"OPTIONS", b"PATCH", b"TRACE"]
            ),
            st.builds(lambda base, h: base + h, _OTHER_PATHS, st.just("") | _HANDLES),
            _ANY_QUERIES,
            st.just(b"") | _BODIES,
        ),
    ),
)
# One request in ten carries raw bytes where HTTP allows none: in the method, the path, the
# query or a header (what the HTTP parser, not the API, must refuse).
_GARBAGE = st.sampled_from([None] * 36 + ["method", "path", "query", "header"])


@st.composite
def requests(draw: st.DrawFn) -> Request:
    method, text_path, text_query, body = draw(_SHAPES)
    path, query = text_path.encode("ascii"), text_query.encode("ascii")
    headers = draw(_HEADERS)
    if body and draw(st.sampled_from([True] * 9 + [False])):
        headers.append((b"Content-Type", draw(_CONTENT_TYPES)))
    garbage = draw(_GARBAGE)
    if garbage == "method":
        method = draw(st.sampled_from([b"FOO", b"get"]) | st.binary(min_size=1, max_size=8))
    elif garbage == "path":
        path += draw(_BYTES)
    elif garbage == "query":
        query += draw(_BYTES)
    elif garbage == "header":
        headers.append((draw(st.sampled_from([b"X-Ctl", b"Accept", b"X-\x01"])), draw(_BYTES)))
    source = "127.0.0.1"
    auth = draw(st.sampled_from(["valid"] * 6 + ["none"] * 2 + ["random"] * 2))
    if auth == "valid":
        headers.append((b"Authorization", ENT8_ADMIN["Authorization"].encode()))
    elif auth == "random":
        headers.append((b"Authorization", draw(_RANDOM_AUTH)))
        source = f"127.0.0.{draw(st.integers(2, 254))}"
    target = path + (b"?" + query if query else b"")
    return Request(method, target, tuple(headers), body, source)


# ------------------------------------------------------------------ the node


def _product(url: str, prefix: str = ENT8) -> list[Any]:
    """A demo product, administered by ``prefix``'s admin."""
    return [
        value_from_json(v)
        for v in (
            {"index": 1, "type": "URL", "data": url},
            {"index": 2, "type": "DESC", "data": "demo product"},
            {
                "index": 100,
                "type": "HS_ADMIN",
                "data": {
                    "format": "admin",
                    "value": {
                        "handle": prefix_handle(prefix),
                        "index": 300,
                        "permissions": "1" * 12,
                    },
                },
            },
        )
    ]


async def _populate(data: Path) -> None:
    """The test node (88.118 with 88.118.8 and 88.118.9) plus demo-like products."""
    await init_node(data)
    node = await Node.open(load(data))
    try:
        items = [(parse(f"{ENT8}/{s}"), _product(f"https://e.example/{s}")) for s in PRODUCTS]
        items.append((parse(GOOD), _product("https://e.example/good", ENT9)))
        types = ("URL", "DESC", "EMAIL", "X.Y", "x.y.z", "HS_ALIAS")
        many = [Value(i, types[i % len(types)], b"v%d" % i) for i in range(1, BIG_VALUES + 1)]
        items.append((parse(BIG), _product("https://e.example/big") + many[100:]))  # 101+
        await node.registry.import_records(items)
    finally:
        await node.close()


@dataclass
class Log:
    """The server's standard error, read without moving the file offset it writes at."""

    served: Served
    seen: int = 0

    def new(self) -> str:
        """What was logged since the last call."""
        fd = self.served.stderr.fileno()
        size = os.fstat(fd).st_size
        chunk = os.pread(fd, size - self.seen, self.seen).decode("utf-8", "replace")
        self.seen = size
        return chunk


def _good_answer(port: int) -> bytes:
    reply = exchange(port, Request(b"GET", f"/api/handles/{GOOD}".encode()))
    assert reply is not None and reply.status == 200, reply
    return reply.body


def fuzz(port: int, log: Log) -> None:
    """Run the examples against the node serving on ``port``, whose log is ``log``."""
    good = _good_answer(port)
    assert b"https://e.example/good" in good

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(requests(), min_size=1, max_size=3))
    def example(batch: list[Request]) -> None:
        log.new()  # what an earlier example that failed left unread is not this one's
        for request in batch:
            check(request, exchange(port, request))
        assert _good_answer(port) == good, "the known-good record answers differently"
        logged = log.new()
        assert "Traceback" not in logged, logged[-3000:]

    example()
    assert _good_answer(port) == good
    assert "Traceback" not in log.new()


async def test_http_api_survives_fuzzing(tmp_path: Path) -> None:
    data = tmp_path / "node"
    await _populate(data)
    async with serving(data) as served:
        await asyncio.to_thread(fuzz, served.port, Log(served))


# ------------------------------------------------------------------ what it found


async def test_a_content_type_that_is_not_utf8_is_refused_in_json(server: Server) -> None:
    """The refusal quotes the header: its bytes that are not UTF-8 reached the JSON encoder
    as lone surrogates, which it refuses (a 500 in plain text, and a traceback)."""
    request = Request(
        b"PUT",
        f"/api/handles/{ENT8}/CT".encode(),
        ((b"Content-Type", b"text/\xfe"), (b"Authorization", ENT8_ADMIN["Authorization"].encode())),
        b"[]",
    )
    reply = await asyncio.to_thread(exchange, URL(server.url).port or 0, request)
    assert reply is not None and reply.status == 400, reply
    assert json.loads(reply.body) == {
        "responseCode": 4,
        "message": "Unsupported media type text/\\xfe: send application/json",
        "handle": f"{ENT8}/CT",
    }
