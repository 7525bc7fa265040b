"""The native codec (resolver/native) on its own: round trips of every message type, the limits,
the UDP reassembler, the TCP framer, and hostile input (random and mutated bytes) that must only
ever raise the codec's own errors, in bounded time.

The captured vectors are in test_native_vectors.py; the mutations here start from them.
"""

from __future__ import annotations

import contextlib
import json
import random
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.model import wire
from registry.model.values import Reference, Value
from resolver.native import (
    Credential,
    Digest,
    Envelope,
    Framer,
    Header,
    Limits,
    Message,
    OpCode,
    Reassembler,
    ResponseCode,
    datagrams,
    decode,
    decode_message,
    encode,
    encode_message,
    encode_payload,
    reply_envelope,
    reply_version,
    signed_bytes,
)
from resolver.native.challenge import (
    SecretKeyAnswer,
    decode_secret_key_answer,
    encode_secret_key_answer,
    request_digest,
    secret_key_mac,
)
from resolver.native.codes import ENV_TC, KNOWN_OP_CODES, RD, DigestType
from resolver.native.credential import credential_section
from resolver.native.errors import (
    FragmentError,
    IncompleteMessage,
    InvalidLength,
    LimitExceeded,
    LocalProtocolError,
    MalformedBody,
    MessageTooShort,
    NativeError,
    RemoteProtocolError,
    UnknownOpCode,
)
from resolver.native.messages import (
    AddValueRequest,
    Body,
    Challenge,
    ChallengeAnswer,
    CreateHandleRequest,
    CreateHandleResponse,
    DeleteHandleRequest,
    EmptyResponse,
    ErrorResponse,
    ListHandlesRequest,
    ListHandlesResponse,
    ModifyValueRequest,
    OpaqueBody,
    RemoveValueRequest,
    ResolutionRequest,
    ResolutionResponse,
    SessionSetupRequest,
    SessionSetupResponse,
    SiteInfoRequest,
    SiteInfoResponse,
)
from resolver.native.udp import PAYLOAD_SIZE, receive

VECTORS = Path(__file__).resolve().parent / "vectors" / "handle-native"

i32 = st.integers(-(2**31), 2**31 - 1)
u32 = st.integers(0, 2**32 - 1)
u8 = st.integers(0, 255)
texts = st.text(max_size=40)
handles = st.text(min_size=1, max_size=60)
blobs = st.binary(max_size=300)

values = st.builds(
    Value,
    index=u32,
    type=texts,
    data=blobs,
    ttl=u32,
    ttl_type=u8,
    timestamp=u32,
    permissions=u8,
    references=st.lists(st.builds(Reference, handles, u32), max_size=3).map(tuple),
)
value_lists = st.lists(values, max_size=5).map(tuple)
int_lists = st.lists(i32, max_size=20).map(tuple)

# Op codes whose bodies idnode keeps as bytes, and ops whose success reply it does not parse.
OPAQUE_OPS = sorted(
    KNOWN_OP_CODES
    - {
        OpCode.RESOLUTION,
        OpCode.GET_SITE_INFO,
        OpCode.CREATE_HANDLE,
        OpCode.DELETE_HANDLE,
        OpCode.ADD_VALUE,
        OpCode.REMOVE_VALUE,
        OpCode.MODIFY_VALUE,
        OpCode.LIST_HANDLES,
        OpCode.RESPONSE_TO_CHALLENGE,
        OpCode.SESSION_SETUP,
    }
)
NO_REPLY_BODY_OPS = sorted(
    KNOWN_OP_CODES
    - {
        OpCode.RESOLUTION,
        OpCode.GET_SITE_INFO,
        OpCode.CREATE_HANDLE,
        OpCode.LIST_HANDLES,
        OpCode.SESSION_SETUP,
    }
)
ERROR_CODES = sorted(
    set(ResponseCode)
    - {
        ResponseCode.RESERVED,
        ResponseCode.SUCCESS,
        ResponseCode.AUTHENTICATION_NEEDED,
        ResponseCode.SERVICE_REFERRAL,
        ResponseCode.PREFIX_REFERRAL,
    }
)
SUCCESS = ResponseCode.SUCCESS

# (op code, response code, body) for every body type and every way a decoder reaches it.
bodies: st.SearchStrategy[tuple[int, int, Body]] = st.one_of(
    st.builds(
        lambda *a: (1, 0, ResolutionRequest(*a)), handles, int_lists, st.lists(texts).map(tuple)
    ),
    st.builds(lambda h: (2, 0, SiteInfoRequest(h)), texts),
    st.builds(lambda h, v: (100, 0, CreateHandleRequest(h, v)), handles, value_lists),
    st.builds(lambda h: (101, 0, DeleteHandleRequest(h)), handles),
    st.builds(lambda h, v: (102, 0, AddValueRequest(h, v)), handles, value_lists),
    st.builds(lambda h, i: (103, 0, RemoveValueRequest(h, i)), handles, int_lists),
    st.builds(lambda h, v: (104, 0, ModifyValueRequest(h, v)), handles, value_lists),
    st.builds(lambda h: (105, 0, ListHandlesRequest(h)), handles),
    st.builds(lambda *a: (200, 0, ChallengeAnswer(*a)), texts, handles, i32, blobs),
    st.builds(
        lambda *a: (400, 0, SessionSetupRequest(*a)),
        st.integers(0, 0xFFFF),
        i32,
        handles,
        i32,
        blobs,
    ),
    st.builds(lambda op, d: (op, 0, OpaqueBody(d)), st.sampled_from(OPAQUE_OPS), blobs),
    st.builds(lambda h, v: (1, SUCCESS, ResolutionResponse(h, v)), handles, value_lists),
    st.builds(lambda s: (2, SUCCESS, SiteInfoResponse(s)), blobs),
    st.builds(lambda h: (100, SUCCESS, CreateHandleResponse(h)), st.none() | handles),
    st.builds(lambda h: (105, SUCCESS, ListHandlesResponse(h)), st.lists(handles).map(tuple)),
    st.builds(
        lambda m, d: (400, SUCCESS, SessionSetupResponse(m, d)), st.integers(0, 0xFFFF), blobs
    ),
    st.builds(lambda op: (op, SUCCESS, EmptyResponse()), st.sampled_from(NO_REPLY_BODY_OPS)),
    st.builds(
        lambda op, d: (op, SUCCESS, OpaqueBody(d)),
        st.sampled_from(NO_REPLY_BODY_OPS),
        st.binary(min_size=1, max_size=100),
    ),
    st.builds(
        lambda rc, d: (1, rc, OpaqueBody(d)),
        st.sampled_from([ResponseCode.SERVICE_REFERRAL, ResponseCode.PREFIX_REFERRAL]),
        blobs,
    ),
    st.builds(lambda op, n: (op, 402, Challenge(n)), st.sampled_from([0, *KNOWN_OP_CODES]), blobs),
    st.builds(
        lambda op, rc, m: (op, rc, ErrorResponse(m)),
        st.sampled_from([0, *KNOWN_OP_CODES]),
        st.sampled_from(ERROR_CODES),
        texts,
    ),
)

envelopes = st.builds(
    Envelope,
    major=u8,
    minor=u8,
    suggested_major=st.integers(0, 3),
    suggested_minor=u8,
    flags=st.sampled_from([0, 0x80, 0x40, 0x20, 0x1C, 0xFC]),
    session_id=i32,
    request_id=i32,
)
credentials = st.none() | st.builds(
    Credential,
    st.sampled_from(["HS_SIGNED", "HS_MAC"]) | texts,
    st.sampled_from(["SHA-256", "HMAC-SHA256"]) | texts,
    blobs,
    texts,
    i32,
    u8,
    u8,
    st.integers(0, 0xFFFF),
)
digests = st.one_of(
    st.builds(Digest, st.just(DigestType.SHA256), st.binary(min_size=32, max_size=32)),
    st.builds(Digest, st.just(DigestType.SHA1), st.binary(min_size=20, max_size=20)),
    st.builds(Digest, st.just(DigestType.MD5), st.binary(min_size=16, max_size=16)),
    st.builds(Digest, st.just(DigestType.LEGACY_MD5), blobs),
)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    op, rc, body = draw(bodies)
    flags = draw(u32)
    digest = None
    if rc and draw(st.booleans()):
        digest = draw(digests)
        flags |= RD
    elif rc:
        flags &= ~RD
    header = Header(op, rc, flags, draw(st.integers(-(2**15), 2**15 - 1)), draw(u8), draw(i32))
    return Message(draw(envelopes), header, body, draw(credentials), digest)


def framed(msg: Message) -> bytes:
    return encode(msg)


def as_decoded(msg: Message, frame: bytes) -> Message:
    """``msg`` as the decoder returns it: framing fields filled in."""
    env = msg.envelope
    env.message_length = len(frame) - 20
    return msg


# --- round trips ------------------------------------------------------------------------------

ROUND_TRIP = settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)


@ROUND_TRIP
@given(messages())
def test_every_message_type_round_trips(msg: Message) -> None:
    frame = encode(msg)
    got = decode(frame)
    assert got == as_decoded(msg, frame)
    assert got.signed == frame[20 : 20 + len(got.signed)]
    assert encode(got) == frame


@ROUND_TRIP
@given(messages(), st.randoms(use_true_random=False))
def test_udp_split_and_reassembly_round_trip(msg: Message, rnd: random.Random) -> None:
    message = encode_message(msg.header, msg.body, msg.credential, msg.digest)
    grams = datagrams(msg.envelope, message)
    assert len(grams) == max(1, -(-len(message) // PAYLOAD_SIZE))
    assert all(len(g) <= 512 for g in grams)
    # Out of order, with a client retry's duplicates mixed in.
    shuffled = grams + rnd.sample(grams, k=rnd.randint(0, len(grams) - 1))
    rnd.shuffle(shuffled)
    if len(grams) > 1:
        msg.envelope.flags |= ENV_TC  # a reassembled message has its first fragment's envelope
    reassembler = Reassembler()
    got = [receive(g, "10.0.0.1", 1.0, reassembler) for g in shuffled]
    done = [m for m in got if m is not None]
    if len(grams) == 1:
        assert len(done) == len(shuffled)
    else:
        # Complete once; a duplicate arriving after completion starts a new (never complete)
        # message, which the timeout drops.
        assert len(done) == 1
        assert all(g[2] & ENV_TC for g in grams)
        assert {struct.unpack_from(">i", g, 12)[0] for g in grams} == set(range(len(grams)))
        reassembler.expire(1.0 + reassembler.timeout + 1)
        assert len(reassembler) == 0
    assert done[0] == as_decoded(msg, encode(msg))


@ROUND_TRIP
@given(st.lists(messages(), min_size=1, max_size=4), st.randoms(use_true_random=False))
def test_framer_splits_any_segmentation_into_the_frames(
    msgs: list[Message], rnd: random.Random
) -> None:
    frames = [encode(m) for m in msgs]
    stream = b"".join(frames)
    cuts = sorted(rnd.sample(range(1, len(stream)), k=min(len(stream) - 1, rnd.randint(0, 8))))
    framer = Framer()
    out = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        framer.feed(stream[a:b])
        while (frame := framer.next_frame()) is not None:
            out.append(frame)
    framer.feed_eof()
    assert framer.next_frame() is None
    assert out == frames
    assert [decode(f) for f in out] == [as_decoded(m, f) for m, f in zip(msgs, frames, strict=True)]


def test_session_setup_bodies_count_two_more_bytes_than_they_write() -> None:
    req = SessionSetupRequest(4, 86400, "0.NA/88.118.8", 300, b"key")
    payload = encode_payload(Header(400), req)
    body_length = struct.unpack_from(">i", payload, 20)[0]
    assert body_length == 2 + 4 + 17 + 4 + 7 + 2
    assert payload.endswith(b"key\0\0")


# --- what the decoder refuses ------------------------------------------------------------------


def frame_of(header: Header, body: bytes, *, credential: bytes = b"\0\0\0\0") -> bytes:
    message = (
        struct.pack(
            ">iiIhBBii",
            header.op_code,
            header.response_code,
            header.op_flags,
            header.site_info_serial,
            header.recursion_count,
            0,
            header.expiration,
            len(body),
        )
        + body
        + credential
    )
    return struct.pack(">BBBBiiii", 2, 11, 2, 11, 0, 7, 0, len(message)) + message


def field(raw: bytes) -> bytes:
    return struct.pack(">i", len(raw)) + raw


RESOLVE = Header(OpCode.RESOLUTION)


def resolution_body(handle: bytes, indexes: list[int], types: list[bytes]) -> bytes:
    return (
        field(handle)
        + struct.pack(f">i{len(indexes)}i", len(indexes), *indexes)
        + struct.pack(">i", len(types))
        + b"".join(map(field, types))
    )


@pytest.mark.parametrize(
    ("limits", "handle", "indexes", "types", "what"),
    [
        (Limits(max_handle_length=10), b"x" * 11, [], [], "handle length"),
        (Limits(max_indexes=3), b"h", [1, 2, 3, 4], [], "index list count"),
        (Limits(max_types=2), b"h", [], [b"A", b"B", b"C"], "type list count"),
    ],
)
def test_limits_refuse_one_over_and_accept_the_limit(
    limits: Limits, handle: bytes, indexes: list[int], types: list[bytes], what: str
) -> None:
    frame = frame_of(RESOLVE, resolution_body(handle, indexes, types))
    with pytest.raises(LimitExceeded) as info:
        decode(frame, limits)
    assert info.value.what == what
    assert info.value.response_code == ResponseCode.ERROR
    at_limit = resolution_body(handle[:-1] or b"h", indexes[:-1], types[:-1])
    assert isinstance(decode(frame_of(RESOLVE, at_limit), limits).body, ResolutionRequest)


def test_value_and_message_limits() -> None:
    three = b"".join(wire.encode_value(Value(i, "T", b"")) for i in (1, 2, 3))
    body = field(b"88.118.8/X") + struct.pack(">i", 3) + three
    frame = frame_of(Header(OpCode.CREATE_HANDLE), body)
    assert len(decode(frame).body.values) == 3  # type: ignore[union-attr]
    with pytest.raises(LimitExceeded, match="value list count is 3"):
        decode(frame, Limits(max_values=2))
    with pytest.raises(LimitExceeded, match="message length"):
        decode(frame, Limits(max_message_length=len(frame) - 21))
    assert decode(frame, Limits(max_message_length=len(frame) - 20)).body.handle == "88.118.8/X"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        (b"", MessageTooShort),
        (b"\x02\x0b\x02\x0b" + bytes(15), MessageTooShort),
        # A datagram shorter than the header its length announces.
        (struct.pack(">BBBBiiii", 2, 11, 2, 11, 0, 1, 0, 60) + bytes(10), MessageTooShort),
        # A list count no body of this size can hold.
        (frame_of(RESOLVE, field(b"h") + struct.pack(">i", 1_000_000)), MalformedBody),
        (frame_of(RESOLVE, field(b"h") + struct.pack(">i", -1)), MalformedBody),
        (frame_of(RESOLVE, field(b"\xff\xfe") + bytes(8)), MalformedBody),  # not UTF-8
        (frame_of(RESOLVE, field(b"h")), MalformedBody),  # no index list
        (frame_of(RESOLVE, resolution_body(b"h", [], []), credential=b"\0\0"), InvalidLength),
        (
            frame_of(RESOLVE, resolution_body(b"h", [], []), credential=b"\0\0\0\x09" + bytes(4)),
            InvalidLength,
        ),
        (
            frame_of(RESOLVE, resolution_body(b"h", [], []), credential=b"\0\0\0\x04" + bytes(4)),
            MalformedBody,
        ),
        (frame_of(Header(0), b""), UnknownOpCode),
        (frame_of(Header(7), b""), UnknownOpCode),
        (frame_of(Header(1, 1), field(b"h") + struct.pack(">i", 1) + bytes(25)), MalformedBody),
        (frame_of(Header(1, 1, RD), b"\x07" + bytes(32)), MalformedBody),  # unknown digest type
        (frame_of(Header(1, 1, RD), b"\x03" + bytes(31)), MalformedBody),
        (frame_of(Header(1, 402), b""), MalformedBody),  # a challenge without its nonce
        (frame_of(Header(999, 1), b""), UnknownOpCode),
    ],
)
def test_malformed_input_raises_the_right_remote_error(
    frame: bytes, error: type[Exception]
) -> None:
    with pytest.raises(error) as info:
        decode(frame)
    assert isinstance(info.value, RemoteProtocolError)
    assert info.value.message  # always something to answer with
    assert str(info.value)


def test_body_bytes_after_the_fields_are_ignored_and_a_missing_credential_is_accepted() -> None:
    body = resolution_body(b"88.118.8/X", [], []) + b"future"
    msg = decode(frame_of(RESOLVE, body, credential=b""))
    assert msg.body == ResolutionRequest("88.118.8/X")
    assert msg.credential is None
    assert len(msg.signed) == 24 + len(body)


def test_a_datagram_shorter_than_its_length_field_is_read_from_the_bytes_present() -> None:
    frame = bytearray(frame_of(RESOLVE, resolution_body(b"88.118.8/X", [2], [b"URL"])))
    struct.pack_into(">i", frame, 16, 4000)  # the reference does not compare the two
    msg = decode(bytes(frame))
    assert msg.body == ResolutionRequest("88.118.8/X", (2,), ("URL",))
    assert msg.envelope.message_length == 4000


def test_error_answers_match_the_reference_texts() -> None:
    assert UnknownOpCode(0).response_code == 4
    assert UnknownOpCode(0).message == "Unknown opCode in message: 0"
    assert UnknownOpCode(999).response_code == 2
    assert UnknownOpCode(999).message == "Server error processing request, see server logs"
    assert str(UnknownOpCode(999)) == "Unknown opCode in message: 999"
    assert IncompleteMessage(60, 30).message == "Expecting 60 bytes, only received 30"
    assert MessageTooShort("x").message == "Invalid message length"
    assert MessageTooShort("x").response_code == 4
    assert not FragmentError("x").answerable


# --- encoder refusals -------------------------------------------------------------------------

ENV = Envelope(2, 11, 2, 11)


@pytest.mark.parametrize(
    ("header", "body", "digest"),
    [
        (Header(2), ResolutionRequest("h"), None),  # body of another op
        (Header(1, 1), ResolutionRequest("h"), None),  # a request body in a reply
        (Header(1), ResolutionResponse("h", ()), None),  # a reply body in a request
        (Header(1, 402), Challenge(b"n"), Digest(3, bytes(32))),  # a digest, RD unset
        (Header(1, 402, RD), Challenge(b"n"), None),  # RD set, no digest
        (Header(1, 402, RD), Challenge(b"n"), Digest(3, b"short")),
        (Header(1, 402, RD), Challenge(b"n"), Digest(9, bytes(32))),
        (Header(1, 0, RD), ResolutionRequest("h"), Digest(3, bytes(32))),  # a digest in a request
        (Header(1), ResolutionRequest("h", (2**31,)), None),
        (Header(1), ResolutionRequest("\ud800"), None),  # not encodable as UTF-8
        (Header(2**31), OpaqueBody(b""), None),
        (Header(100, 1), CreateHandleResponse("h"), Digest(3, bytes(32))),
        (Header(1, 1), ErrorResponse("x"), None),  # would read as a resolution reply
        (Header(101, 1), OpaqueBody(b""), None),  # would read as an EmptyResponse
        (Header(999), OpaqueBody(b"x"), None),  # no such op code
        (Header(1, 402), ErrorResponse("x"), None),
    ],
)
def test_encoder_refuses_what_the_protocol_cannot_carry(
    header: Header, body: Body, digest: Digest | None
) -> None:
    with pytest.raises(LocalProtocolError):
        encode(Message(ENV, header, body, None, digest))


def test_encoder_refuses_out_of_range_envelope_and_credential() -> None:
    with pytest.raises(LocalProtocolError):
        encode(Message(Envelope(256, 11, 2, 11), Header(1), ResolutionRequest("h")))
    with pytest.raises(LocalProtocolError):
        credential_section(Credential("HS_MAC", "HMAC-SHA256", b"", signer_index=2**31))
    with pytest.raises(LocalProtocolError):
        encode_message(Header(1, 1), ResolutionResponse("h", (Value(2**32, "T", b""),)))


# --- envelopes, credentials, challenges -------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "suggested", "reply"),
    [
        ((2, 11), (2, 11), (2, 11)),
        ((2, 3), (2, 11), (2, 11)),  # a client without site info
        ((1, 0), (0, 0), (1, 0)),  # suggested major 0: the message's own version
        ((3, 0), (3, 0), (2, 11)),  # capped at idnode's
        ((2, 5), (2, 7), (2, 7)),
    ],
)
def test_reply_version(
    version: tuple[int, int], suggested: tuple[int, int], reply: tuple[int, int]
) -> None:
    env = Envelope(*version, *suggested)
    assert reply_version(env) == reply
    out = reply_envelope(env)
    assert (out.major, out.minor, out.suggested_major, out.suggested_minor) == (*reply, 2, 11)


def test_reply_envelope_keeps_only_tc_of_the_request_flags() -> None:
    env = Envelope(2, 11, 2, 11, ENV_TC | 0x80 | 0x40, session_id=5, request_id=9)
    out = reply_envelope(env)
    assert (out.flags, out.session_id, out.request_id) == (ENV_TC, 5, 9)
    assert reply_envelope(env, session_id=0).session_id == 0


def test_signed_bytes_by_version() -> None:
    hb = b"HEADER+BODY"
    env = Envelope(2, 11, 2, 11, ENV_TC, session_id=5, request_id=7)
    assert signed_bytes(env, 3, hb) == bytes.fromhex("020b020b000000050000000700000003") + hb
    env27 = Envelope(2, 7, 2, 7, session_id=5, request_id=7)
    assert signed_bytes(env27, 3, hb) == bytes.fromhex("0207000000050000000700000003") + hb
    assert signed_bytes(Envelope(2, 5, 2, 11), 3, hb) == hb
    assert signed_bytes(Envelope(1, 0, 0, 0), 3, hb) == hb
    with pytest.raises(LocalProtocolError):
        signed_bytes(Envelope(2, 6, 2, 6), 0, hb)


def test_request_digest_types() -> None:
    assert request_digest(b"x").hash_type == DigestType.SHA256
    assert len(request_digest(b"x", DigestType.SHA1).digest) == 20
    assert len(request_digest(b"x", DigestType.MD5).digest) == 16
    assert len(request_digest(b"x", DigestType.LEGACY_MD5).digest) == 16
    with pytest.raises(LocalProtocolError):
        request_digest(b"x", 9)


@given(
    st.builds(
        SecretKeyAnswer,
        st.just(0x22),
        blobs,
        blobs,
        i32,
        i32,
    )
    | st.builds(SecretKeyAnswer, st.just(0x02), blobs)
)
def test_secret_key_answer_round_trips(answer: SecretKeyAnswer) -> None:
    assert decode_secret_key_answer(encode_secret_key_answer(answer)) == answer


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x01",
        b"\x22",
        b"\x22" + field(b"salt"),
        b"\x22" + field(b"s") + bytes(8) + field(b"m") + b"!",
    ],
)
def test_secret_key_answer_refuses_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedBody):
        decode_secret_key_answer(raw)


def test_secret_key_mac_refuses_parameters_a_server_should_not_compute() -> None:
    for iterations, bits in ((0, 160), (10**9, 160), (10, 7), (10, 2**20)):
        with pytest.raises(MalformedBody):
            secret_key_mac(b"s", SecretKeyAnswer(0x22, b"m", b"salt", iterations, bits), b"n", b"d")


# --- UDP reassembly ---------------------------------------------------------------------------


def fragments(request_id: int = 5, size: int = 1200) -> list[bytes]:
    body = resolution_body(b"88.118.8/X", [], [b"T" * (size - 60)])
    msg = decode(frame_of(RESOLVE, body))
    message = encode_message(msg.header, msg.body)
    return datagrams(Envelope(2, 11, 2, 11, request_id=request_id), message)


def test_missing_fragment_is_never_answered_and_expires() -> None:
    first, second, third = fragments()
    r = Reassembler(timeout=5.0)
    assert receive(first, "a", 0.0, r) is None
    assert receive(third, "a", 1.0, r) is None
    assert r.expire(4.9) == 0
    assert r.expire(5.1) == 1
    assert len(r) == 0
    # The late fragment starts a new message, which never completes either.
    assert receive(second, "a", 6.0, r) is None
    assert receive(first, "a", 6.0, r) is None
    assert receive(third, "a", 6.0, r) is not None


def test_fragments_are_keyed_by_source_and_request_id() -> None:
    a, b = fragments(request_id=1), fragments(request_id=2)
    r = Reassembler()
    assert receive(a[0], "x", 0, r) is None
    assert receive(b[0], "x", 0, r) is None
    assert receive(a[1], "y", 0, r) is None  # another sender's request 1
    assert len(r) == 3
    assert receive(a[1], "x", 0, r) is None
    assert receive(a[2], "x", 0, r) is not None
    assert len(r) == 2


def test_inconsistent_fragments_are_refused_unanswered() -> None:
    frags = fragments()
    r = Reassembler()
    bad_id = bytearray(frags[0])
    struct.pack_into(">i", bad_id, 12, 3)  # message id past the last fragment
    bad_size = frags[0][:-1]
    other_length = bytearray(frags[1])
    struct.pack_into(">i", other_length, 16, 1300)
    changed = bytearray(frags[0])
    changed[-1] ^= 1
    for datagram in (bytes(bad_id), bad_size):
        with pytest.raises(FragmentError):
            receive(datagram, "a", 0, r)
    assert receive(frags[0], "a", 0, r) is None
    assert receive(frags[0], "a", 0, r) is None  # an identical retry is fine
    with pytest.raises(FragmentError):
        receive(bytes(changed), "a", 0, r)
    assert len(r) == 0  # the contradicted message is gone
    assert receive(frags[0], "a", 0, r) is None
    with pytest.raises(FragmentError):
        receive(bytes(other_length), "a", 0, r)
    assert len(r) == 0


def test_pending_messages_are_bounded_oldest_evicted() -> None:
    r = Reassembler(max_pending=3, max_pending_bytes=10_000)
    for rid in range(5):
        assert receive(fragments(request_id=rid)[0], "a", rid, r) is None
    assert len(r) == 3
    tail = fragments(request_id=0)
    assert receive(tail[1], "a", 5, r) is None  # request 0 was evicted: starts over
    assert receive(tail[2], "a", 5, r) is None
    assert len(r) == 3
    r = Reassembler(max_pending_bytes=2500)
    for rid in range(3):
        receive(fragments(request_id=rid)[0], "a", 0, r)
    assert len(r) == 2  # 1200 bytes each
    with pytest.raises(LimitExceeded):
        receive(fragments(size=3000)[0], "a", 0, r)


def test_a_whole_message_in_one_tc_datagram_is_complete() -> None:
    """A reply to a multi-datagram request keeps TC [07b]."""
    msg = decode(frame_of(RESOLVE, resolution_body(b"h", [], [])))
    (datagram,) = datagrams(Envelope(2, 11, 2, 11, ENV_TC), encode_message(msg.header, msg.body))
    r = Reassembler()
    got = receive(datagram, "a", 0, r)
    assert got is not None and got.envelope.truncated
    assert len(r) == 0


# --- TCP framing ------------------------------------------------------------------------------


def test_framer_refuses_a_lying_length_as_soon_as_the_envelope_is_in() -> None:
    framer = Framer(Limits(max_message_length=1000))
    framer.feed(struct.pack(">BBBBiiii", 2, 11, 2, 11, 0, 1, 0, 1001)[:19])
    assert framer.next_frame() is None
    framer.feed(b"\xe9")
    with pytest.raises(LimitExceeded):
        framer.next_frame()
    with pytest.raises(LimitExceeded):  # and stays broken
        framer.feed(b"more")
    assert framer.buffered == 20


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (bytes(10), MessageTooShort, "Invalid message length"),
        (
            struct.pack(">BBBBiiii", 2, 11, 2, 11, 0, 1, 0, 60) + bytes(30),
            IncompleteMessage,
            "Expecting 60 bytes, only received 30",
        ),
        (
            struct.pack(">BBBBiiii", 2, 11, 2, 11, 0, 1, 0, 12),
            MessageTooShort,
            "Invalid message length",
        ),
        (
            struct.pack(">BBBBiiii", 2, 11, 2, 11, 0, 1, 0, -5),
            InvalidLength,
            "Server error processing request, see server logs",
        ),
    ],
)
def test_framer_at_end_of_stream(data: bytes, error: type[NativeError], message: str) -> None:
    framer = Framer()
    framer.feed(data)
    framer.feed_eof()
    with pytest.raises(error) as info:
        framer.next_frame()
    assert info.value.message == message


def test_framer_clean_end_between_frames() -> None:
    frame = frame_of(RESOLVE, resolution_body(b"h", [], []))
    framer = Framer()
    framer.feed(frame + frame)
    framer.feed_eof()
    assert framer.next_frame() == frame
    assert framer.next_frame() == frame
    assert framer.next_frame() is None
    with pytest.raises(RuntimeError):
        framer.feed(b"x")


# --- hostile input ----------------------------------------------------------------------------

SEEDS = [
    bytes.fromhex(m["hex"])
    for p in sorted(VECTORS.glob("[0-9]*.json"))
    for m in json.loads(p.read_text())["messages"]
]
HOSTILE = settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow], deadline=2000)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "byte", "int", "cut", "insert", "delete"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte" and data:
            data[pos] = draw(u8)
        elif kind == "int" and len(data) >= 4:
            pos = min(pos, len(data) - 4)
            value = draw(st.sampled_from([0, 1, -1, 2**31 - 1, -(2**31), 24, 491, 492, 493]) | i32)
            struct.pack_into(">i", data, pos, value)
        elif kind == "cut":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=40))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 40))]
    return bytes(data)


hostile = st.binary(max_size=600) | mutated()


def decode_or_refuse(data: bytes) -> None:
    try:
        msg = decode(data)
    except RemoteProtocolError as exc:
        assert exc.message is not None and str(exc)
        return
    # Whatever decodes re-encodes, and that decodes to the same message.
    got = decode(encode(msg))
    got.envelope.message_length = msg.envelope.message_length  # framing, recomputed
    got.envelope.message_id = msg.envelope.message_id
    assert got == msg


@HOSTILE
@given(hostile)
def test_decoder_only_raises_its_own_errors(data: bytes) -> None:
    decode_or_refuse(data)
    if len(data) >= 20:
        env = Envelope(2, 11, 2, 11, message_length=len(data) - 20)
        with contextlib.suppress(RemoteProtocolError):
            decode_message(env, data[20:])


@HOSTILE
@given(st.lists(hostile, min_size=1, max_size=6), st.booleans())
def test_udp_receive_only_raises_its_own_errors(grams: list[bytes], tc: bool) -> None:
    r = Reassembler(max_pending=4, max_pending_bytes=4000)
    for i, g in enumerate(grams):
        if tc and len(g) > 2:
            g = g[:2] + bytes((g[2] | ENV_TC,)) + g[3:]
        with contextlib.suppress(RemoteProtocolError):
            receive(g, "a", float(i), r)
        assert len(r) <= 4


@HOSTILE
@given(st.lists(hostile, min_size=1, max_size=6))
def test_framer_only_raises_its_own_errors_and_always_progresses(chunks: list[bytes]) -> None:
    framer = Framer(Limits(max_message_length=4096))
    total = 0
    try:
        for chunk in chunks:
            framer.feed(chunk)
            total += len(chunk)
            # Each frame is at least 44 bytes, so this loop ends within total/44 + 1 turns.
            for _ in range(total // 44 + 2):
                frame = framer.next_frame()
                if frame is None:
                    break
                decode_or_refuse(frame)
            else:
                raise AssertionError("framer returned more frames than bytes allow")
            assert framer.buffered <= 20 + 4096 + len(chunk)
        framer.feed_eof()
        while framer.next_frame() is not None:
            pass
    except RemoteProtocolError:
        pass
