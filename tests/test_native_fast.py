"""The codec's raw entry points for the hot path (resolver/native/fast.py, udp.split_frame,
writers.referral_body) agree with the codec's ordinary readers and writers."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from registry.model.values import Value
from registry.model.wire import encode_values
from resolver.native import (
    Envelope,
    Header,
    Limits,
    Message,
    OpCode,
    datagrams,
    decode,
    encode,
    encode_frame,
    encode_message,
    reply_envelope,
)
from resolver.native.adapter import reply_flags
from resolver.native.codes import AT, CT, PO, REC
from resolver.native.fast import peek_resolution, resolution_frame
from resolver.native.messages import ResolutionRequest, ResolutionResponse
from resolver.native.readers import _handle_and_values
from resolver.native.udp import split_frame
from resolver.native.writers import referral_body
from tests.test_native_codec import HOSTILE, ROUND_TRIP, envelopes, hostile, messages

handles = st.text(max_size=60)
values = st.lists(
    st.builds(
        Value,
        index=st.integers(0, 2**31 - 1),
        type=st.text(max_size=12),
        data=st.binary(max_size=200),
        timestamp=st.integers(0, 2**32 - 1),
        permissions=st.integers(0, 15),
    ),
    max_size=6,
).map(tuple)


def unfiltered(env: Envelope, handle: str, flags: int) -> bytes:
    return encode(Message(env, Header(OpCode.RESOLUTION, 0, flags), ResolutionRequest(handle)))


@HOSTILE
@given(
    hostile
    | messages().map(encode)
    | st.builds(unfiltered, envelopes, handles, st.integers(0, 2**32 - 1))
)
def test_peek_accepts_only_what_decode_reads_as_an_unfiltered_unsigned_resolution(
    frame: bytes,
) -> None:
    peeked = peek_resolution(frame)
    if peeked is None:
        return
    msg = decode(frame)  # never raises on what peek accepts
    major, minor, session, request_id, flags, handle, _ = peeked
    assert msg.body == ResolutionRequest(handle)
    assert msg.header.op_code == OpCode.RESOLUTION and msg.header.is_request
    assert msg.header.op_flags == flags and not flags & CT
    assert msg.credential is None and not msg.envelope.truncated
    env = reply_envelope(msg.envelope)
    assert (major, minor, session, request_id) == (
        env.major,
        env.minor,
        env.session_id,
        env.request_id,
    )


@ROUND_TRIP
@given(envelopes, handles, st.integers(0, 2**32 - 1), values)
def test_the_fast_reply_is_the_codecs_reply(
    env: Envelope, handle: str, flags: int, vals: tuple[Value, ...]
) -> None:
    env.flags &= 0x03  # whole, plain messages are the fast path's
    flags &= ~CT
    frame = unfiltered(env, handle, flags)
    if len(handle.encode()) > Limits().max_handle_length:
        assert peek_resolution(frame) is None
        return
    peeked = peek_resolution(frame)
    assert peeked is not None
    reply = reply_flags(flags, signed=False)
    assert reply & AT
    got = resolution_frame(frame, peeked, reply, 7, 1234, encode_values(vals))
    header = Header(OpCode.RESOLUTION, 1, reply, 7, 0, 1234)
    want = encode_frame(
        reply_envelope(decode(frame).envelope),
        encode_message(header, ResolutionResponse(handle, vals)),
    )
    assert got == want


def test_peek_leaves_filters_credentials_fragments_and_signing_to_the_decoder() -> None:
    env = Envelope(2, 11, 2, 11, request_id=9)
    plain = unfiltered(env, "88.118.8/A", REC | PO)
    assert peek_resolution(plain) is not None
    filtered = encode(
        Message(env, Header(OpCode.RESOLUTION, 0, PO), ResolutionRequest("88.118.8/A", (1,)))
    )
    assert peek_resolution(filtered) is None
    assert peek_resolution(unfiltered(env, "88.118.8/A", PO | CT)) is None
    fragment = plain[:2] + bytes((plain[2] | 0x20,)) + plain[3:]
    assert peek_resolution(fragment) is None
    no_credential_length = plain[:-4]
    assert peek_resolution(no_credential_length) is None
    assert decode(no_credential_length).body == ResolutionRequest("88.118.8/A")
    assert peek_resolution(plain, Limits(max_handle_length=5)) is None


@ROUND_TRIP
@given(envelopes, st.binary(min_size=24, max_size=3000))
def test_split_frame_sends_what_datagrams_sends(env: Envelope, message: bytes) -> None:
    env.flags &= ~0x20
    assert split_frame(encode_frame(env, message)) == datagrams(env, message)


@given(handles, values)
def test_a_referral_body_is_laid_out_as_a_resolution_reply(
    handle: str, vals: tuple[Value, ...]
) -> None:
    data = referral_body(handle, vals).data
    raw = handle.encode()
    assert data[: 4 + len(raw)] == struct.pack(">i", len(raw)) + raw
    assert _handle_and_values(data, 0, len(data), Limits()) == (handle, vals)
