"""A small async client of the native protocol: resolution and get-site-info over UDP, with
TCP when UDP brings no whole answer, and the check of a certified reply.

UDP as the reference client does it: the request's datagrams are sent again (unchanged, same
request id) while no reply comes, and only datagrams carrying the request's id are taken.
When the reply does not arrive whole — a fragment set left incomplete, or nothing at all —
the request goes over TCP instead, where a reply is one frame.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Sequence
from typing import Any

from registry.errors import InvalidValue
from registry.model.site import site_from_bytes
from registry.signing.keys import JwkError, verify_signature
from resolver.native.certify import JWS_ALGORITHMS
from resolver.native.codes import CA, CN, CT, PO, REC, VERSION, OpCode
from resolver.native.credential import HS_SIGNED, signed_bytes
from resolver.native.envelope import ENVELOPE, ENVELOPE_SIZE, Envelope, check_message_length
from resolver.native.errors import RemoteProtocolError
from resolver.native.header import Header
from resolver.native.limits import DEFAULT_LIMITS
from resolver.native.messages import Body, Message, ResolutionRequest, SiteInfoRequest
from resolver.native.readers import decode
from resolver.native.udp import Reassembler, datagrams, receive
from resolver.native.writers import encode, encode_message

# UDP waits per attempt, as the reference client's (0.5, 1 and 1.5 s).
UDP_WAITS = (0.5, 1.0, 1.5)
TCP_TIMEOUT = 10.0
_EXPIRATION = 43_200


class NativeClientError(Exception):
    """No usable reply: the server could not be reached, or answered what is not a reply."""


def request(
    body: Body,
    *,
    public_only: bool = True,
    certify: bool = False,
    flags: int = 0,
    session_id: int = 0,
) -> Message:
    """A request as the reference client sends it: REC|CA|PO (PO only when ``public_only``),
    CT when ``certify``, any other ``flags``, a random positive request id."""
    flags |= REC | CA | (PO if public_only else 0) | (CT if certify else 0)
    op = body.OP if body.OP is not None else OpCode.GET_SITE_INFO
    envelope = Envelope(
        *VERSION, *VERSION, session_id=session_id, request_id=secrets.randbelow(2**31 - 1) + 1
    )
    header = Header(op, 0, flags, -1, 0, int(time.time()) + _EXPIRATION)
    return Message(envelope, header, body)


class _Collector(asyncio.DatagramProtocol):
    def __init__(self, request_id: int) -> None:
        self.request_id = request_id
        self.reassembler = Reassembler()
        self.done: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.partial = False  # part of a reply arrived, or a datagram that is none

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.done.done() or len(data) < ENVELOPE_SIZE:
            return
        if ENVELOPE.unpack_from(data)[5] != self.request_id:
            return  # someone else's reply
        try:
            message = receive(data, addr[0], time.monotonic(), self.reassembler)
        except RemoteProtocolError:
            message = None  # unusable (or not the server's): TCP instead
        if message is None:
            self.partial = True
        else:
            self.done.set_result(message)

    def error_received(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(NativeClientError(f"UDP: {exc}"))


async def exchange_udp(
    host: str, port: int, msg: Message, waits: Sequence[float] = UDP_WAITS
) -> Message | None:
    """``msg``'s reply over UDP, or None when none arrived whole."""
    loop = asyncio.get_running_loop()
    rid = msg.envelope.request_id
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _Collector(rid), remote_addr=(host, port)
    )
    try:
        sent = datagrams(msg.envelope, encode_message(msg.header, msg.body))
        for wait in waits:
            for datagram in sent:
                transport.sendto(datagram)
            try:
                return await asyncio.wait_for(asyncio.shield(protocol.done), wait)
            except TimeoutError:
                if protocol.partial:
                    return None  # the rest is lost: TCP carries it whole
        return None
    finally:
        transport.close()


async def _read_reply(reader: asyncio.StreamReader) -> Message:
    head = await reader.readexactly(ENVELOPE_SIZE)
    length = ENVELOPE.unpack_from(head)[7]
    try:
        check_message_length(length, DEFAULT_LIMITS)
        return decode(head + await reader.readexactly(length))
    except RemoteProtocolError as exc:
        raise NativeClientError(f"bad reply: {exc}") from None


async def exchange_tcp_all(host: str, port: int, msg: Message) -> list[Message]:
    """``msg``'s replies over a TCP connection of its own: one, or several while each says
    another follows (CN: a list of handles)."""
    replies: list[Message] = []
    async with asyncio.timeout(TCP_TIMEOUT):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(encode(msg))
            await writer.drain()
            while not replies or replies[-1].header.op_flags & CN:
                reply = await _read_reply(reader)
                if reply.envelope.request_id != msg.envelope.request_id:
                    raise NativeClientError("the reply is for another request")
                replies.append(reply)
        except asyncio.IncompleteReadError:
            raise NativeClientError("the server closed the connection") from None
        finally:
            writer.close()
    return replies


async def exchange_tcp(host: str, port: int, msg: Message) -> Message:
    """``msg``'s reply over a TCP connection of its own."""
    return (await exchange_tcp_all(host, port, msg))[0]


async def exchange(host: str, port: int, msg: Message, *, tcp: bool = False) -> Message:
    """``msg``'s reply: over UDP, then TCP if UDP brought no whole reply (``tcp``: TCP only)."""
    if not tcp:
        try:
            reply = await exchange_udp(host, port, msg)
        except OSError:
            reply = None
        if reply is not None:
            return reply
    try:
        return await exchange_tcp(host, port, msg)
    except (OSError, TimeoutError) as exc:
        raise NativeClientError(f"{host}:{port}: {exc or 'timed out'}") from None


async def resolve(
    host: str,
    port: int,
    handle: str,
    indexes: tuple[int, ...] = (),
    types: tuple[str, ...] = (),
    *,
    certify: bool = False,
    tcp: bool = False,
) -> Message:
    """The reply to a resolution of ``handle`` (public values only)."""
    msg = request(ResolutionRequest(handle, indexes, types), certify=certify)
    return await exchange(host, port, msg, tcp=tcp)


async def site_info(host: str, port: int, *, certify: bool = False, tcp: bool = False) -> Message:
    """The reply to get-site-info."""
    return await exchange(host, port, request(SiteInfoRequest(), certify=certify), tcp=tcp)


def server_key(site: bytes) -> dict[str, Any]:
    """The JWK of the (first) server in a site record."""
    try:
        servers = site_from_bytes(site).get("servers") or []
        key = servers[0]["publicKey"]
    except (InvalidValue, IndexError, KeyError) as exc:
        raise NativeClientError(f"no server key in the site record: {exc}") from None
    if key.get("format") != "key":
        raise NativeClientError("the site record's server key is not one idnode can read")
    jwk: dict[str, Any] = key["value"]
    return jwk


def verified(reply: Message, jwk: dict[str, Any]) -> bool:
    """Whether ``reply`` carries an HS_SIGNED credential that verifies with ``jwk``."""
    credential = reply.credential
    if credential is None or credential.signature_type != HS_SIGNED:
        return False
    alg = JWS_ALGORITHMS.get(credential.hash_algorithm)
    if alg is None:
        return False
    data = signed_bytes(reply.envelope, credential.signer_index, reply.signed)
    try:
        return verify_signature(jwk, alg, data, credential.signature)
    except JwkError:
        return False
