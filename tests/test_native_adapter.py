"""The pure mapping between native messages and the resolution core
(resolver/native/adapter.py): the reference's flag, version and error-text rules, and the
answers the vectors do not show (referrals, answers from other nodes)."""

from __future__ import annotations

import pytest

from registry.errors import (
    AuthenticationFailed,
    HandleError,
    HandleExists,
    HandleNotFound,
    InvalidHandle,
    NotResponsible,
    ValuesNotFound,
)
from registry.model.identifiers import parse
from registry.model.values import Value
from resolver.core import Answer
from resolver.native import Envelope, Header, Limits, Message, OpCode
from resolver.native.adapter import (
    answer_reply,
    certified,
    challenge_reply,
    error_reply,
    query_of,
    reply_flags,
)
from resolver.native.codes import CA, CT, DNRF, PO, RD, REC, DigestType, OpFlag, ResponseCode
from resolver.native.messages import ErrorResponse, OpaqueBody, ResolutionRequest
from resolver.native.readers import _handle_and_values
from resolver.native.writers import encode_payload

HANDLE = "88.118.8/X"
VALUES = (Value(1, "URL", b"https://example.org/x"),)


def request(flags: int = 0x19000000, version: tuple[int, int] = (2, 11)) -> Message:
    env = Envelope(*version, *version, request_id=77)
    msg = Message(
        env, Header(OpCode.RESOLUTION, 0, flags), ResolutionRequest(HANDLE, (1,), ("URL",))
    )
    msg.signed = encode_payload(msg.header, msg.body)
    return msg


@pytest.mark.parametrize(
    ("flags", "signed", "digest", "want"),
    [
        (0x19000000, False, False, 0x99000000),  # 01-*: REC CA PO + AT
        (0x59000000, True, False, 0xD9000000),  # 06-*: CT kept when signed
        (0x59000000, False, False, 0x99000000),  # ... and only then
        (0x18000000, False, True, 0x98800000),  # 04c: a challenge carries RD
        (0x19000000 | int(OpFlag.ENC) | RD, False, False, 0x99000000),  # never copied
    ],
)
def test_reply_flags(flags: int, signed: bool, digest: bool, want: int) -> None:
    assert reply_flags(flags, signed, digest) == want


def test_query_of_maps_po_filters_and_recursion_count() -> None:
    msg = request()
    msg.header.recursion_count = 2
    q = query_of(msg)
    assert (q.handle, q.indexes, q.types, q.public_only, q.hops) == (
        HANDLE,
        (1,),
        ("URL",),
        True,
        2,
    )
    assert query_of(request(0x18000000)).public_only is False


@pytest.mark.parametrize(
    ("flags", "recursion", "referrals"),
    [
        (REC | CA | PO, True, True),  # as the reference client asks
        (CA | PO, False, True),  # REC clear: refer me rather than resolve elsewhere
        (REC | DNRF, True, False),  # DNRF: send no referral
        (DNRF, False, False),
    ],
)
def test_query_of_carries_rec_and_dnrf_to_the_core(
    flags: int, recursion: bool, referrals: bool
) -> None:
    q = query_of(request(flags))
    assert (q.recursion, q.referrals) == (recursion, referrals)


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (HandleNotFound("x"), ""),
        (HandleExists("x"), ""),
        (ValuesNotFound("x"), ""),
        (AuthenticationFailed("x"), ""),
        (NotResponsible(), "That prefix doesn't live here"),
        (InvalidHandle("Empty handle invalid"), "Empty handle invalid"),
    ],
)
def test_error_texts(error: HandleError, text: str) -> None:
    reply = error_reply(request(), error, 1000, 1)
    assert reply.header.response_code == error.response_code
    assert reply.header.op_code == OpCode.RESOLUTION
    assert reply.body == ErrorResponse(text)
    assert reply.envelope.request_id == 77


def test_a_referral_names_the_service_and_its_site_values() -> None:
    site = (Value(1, "HS_SITE", b"\x00\x01site"),)
    answer = Answer(HANDLE, parse(HANDLE), site, referral="0.NA/99.1")
    reply = answer_reply(request(), answer, 1000, 1)
    assert reply.header.response_code == ResponseCode.SERVICE_REFERRAL
    assert isinstance(reply.body, OpaqueBody)
    data = reply.body.data
    assert _handle_and_values(data, 0, len(data), Limits()) == ("0.NA/99.1", site)
    encode_payload(reply.header, reply.body)  # a message the codec can carry


def test_answers_from_other_nodes_and_empty_answers() -> None:
    remote = Answer(HANDLE, parse(HANDLE), VALUES, verified=True)
    reply = answer_reply(request(), remote, 1000, 1)
    assert reply.header.response_code == ResponseCode.SUCCESS
    empty = Answer(HANDLE, parse(HANDLE), (), verified=False)
    reply = answer_reply(request(), empty, 1000, 1)
    assert reply.header.response_code == ResponseCode.VALUES_NOT_FOUND
    assert reply.body == ErrorResponse("")


@pytest.mark.parametrize(
    ("version", "hash_type"), [((2, 11), DigestType.SHA256), ((2, 5), DigestType.SHA1)]
)
def test_challenges_digest_the_request(version: tuple[int, int], hash_type: int) -> None:
    msg = request(0x18000000, version)
    reply = challenge_reply(msg, b"n" * 16, 9, 1000, 1)
    assert reply.envelope.session_id == 9
    assert reply.header.op_flags == 0x98800000  # the request's flags + AT + RD, as 04c
    assert reply.digest is not None and reply.digest.hash_type == hash_type
    encode_payload(reply.header, reply.body, reply.digest)


def test_certified_only_when_asked_and_signable() -> None:
    assert certified(request(0x19000000 | CT))
    assert not certified(request(0x19000000))
    assert not certified(request(0x19000000 | CT, (2, 6)))  # 2.6 cannot be signed
