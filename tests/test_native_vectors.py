"""The native codec (resolver/native) against every captured message in tests/vectors/handle-native.

Each captured message (UDP fragments reassembled, TCP frames cut out of the stream) must decode to
the fields the vector file documents; the expected dataclasses are built here from the JSON
``decoded`` fields alone, never from the codec's own reading. Every reply must re-encode to the
captured bytes exactly (UDP: the same datagrams). The malformed requests (08-*) must be refused
with the error class and the answer the reference gave, or decoded where the reference answered
normally. The HS_SIGNED signatures verify over the codec's signed bytes and the challenge
material recomputes.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from registry.model.values import Reference, Value
from resolver.native import (
    Credential,
    Digest,
    Envelope,
    Framer,
    Header,
    Message,
    OpCode,
    Reassembler,
    ResponseCode,
    blind_error,
    datagrams,
    decode,
    encode,
    encode_message,
    reply_envelope,
    signed_bytes,
)
from resolver.native.challenge import (
    decode_secret_key_answer,
    encode_secret_key_answer,
    request_digest,
    secret_key_mac,
)
from resolver.native.errors import (
    FragmentError,
    IncompleteMessage,
    InvalidLength,
    LimitExceeded,
    MalformedBody,
    MessageTooShort,
    RemoteProtocolError,
    UnknownOpCode,
)
from resolver.native.messages import (
    Body,
    Challenge,
    ChallengeAnswer,
    CreateHandleRequest,
    CreateHandleResponse,
    DeleteHandleRequest,
    EmptyResponse,
    ErrorResponse,
    ResolutionRequest,
    ResolutionResponse,
    SessionSetupRequest,
    SessionSetupResponse,
    SiteInfoRequest,
    SiteInfoResponse,
)
from resolver.native.udp import receive

VECTORS = Path(__file__).resolve().parent / "vectors" / "handle-native"
FILES = sorted(p.stem for p in VECTORS.glob("[0-9]*.json"))


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / f"{name}.json").read_text())
    return data


@dataclass
class Captured:
    """One logical message of a vector file."""

    file: str
    position: int  # index of its (last) entry in ``messages``
    direction: str
    transport: str
    wire: list[bytes]  # UDP: its datagrams; TCP: its one frame
    envelope: dict[str, Any]  # decoded envelope (of the first datagram)
    decoded: dict[str, Any]  # decoded header, body, credential (reassembled if fragmented)
    entry: dict[str, Any]  # the (last) vector entry, for signature_check and notes


def messages(name: str) -> list[Captured]:
    out: list[Captured] = []
    pending: dict[str, list[dict[str, Any]]] = {}
    for pos, m in enumerate(load(name)["messages"]):
        decoded = m["decoded"]
        if "fragment" in decoded:
            parts = pending.setdefault(m["direction"], [])
            parts.append(m)
            if "reassembled" not in m:
                continue
            del pending[m["direction"]]
            wire = [bytes.fromhex(p["hex"]) for p in parts]
            whole = m["reassembled"]["decoded"]
            out.append(
                Captured(
                    name,
                    pos,
                    m["direction"],
                    m["transport"],
                    wire,
                    parts[0]["decoded"]["envelope"],
                    whole,
                    m["reassembled"],
                )
            )
            continue
        out.append(
            Captured(
                name,
                pos,
                m["direction"],
                m["transport"],
                [bytes.fromhex(m["hex"])],
                decoded.get("envelope", {}),
                decoded,
                m,
            )
        )
    # A fragment set never completed (08-malformed-udp-truncated-flag-missing-packets).
    for parts in pending.values():
        m = parts[-1]
        out.append(
            Captured(
                name,
                len(out),
                m["direction"],
                m["transport"],
                [bytes.fromhex(p["hex"]) for p in parts],
                parts[0]["decoded"]["envelope"],
                {"incomplete": True},
                m,
            )
        )
    return out


def receive_all(c: Captured) -> Message:
    """The codec's reading of ``c``, through the transport's framing."""
    if c.transport == "tcp":
        framer = Framer()
        framer.feed(c.wire[0])
        frame = framer.next_frame()
        assert frame == c.wire[0]
        assert framer.next_frame() is None
        return decode(frame)
    reassembler = Reassembler()
    got = [receive(d, "127.0.0.1", 0.0, reassembler) for d in c.wire]
    assert got[:-1] == [None] * (len(c.wire) - 1)
    assert got[-1] is not None
    assert len(reassembler) == 0
    return got[-1]


# The error class each refused 08-* request raises. The reference's answer (rc and text) is in
# the file; the one place idnode answers differently is marked.
MALFORMED: dict[str, type[RemoteProtocolError] | None] = {
    "08-malformed-tcp-length-over-max": LimitExceeded,
    "08-malformed-tcp-opcode-0": UnknownOpCode,
    "08-malformed-tcp-short-envelope": MessageTooShort,
    "08-malformed-tcp-truncated-body": IncompleteMessage,
    "08-malformed-udp-bodylen-too-large": InvalidLength,
    "08-malformed-udp-envelope-only": MessageTooShort,
    "08-malformed-udp-garbage": LimitExceeded,
    "08-malformed-udp-handle-length-huge": LimitExceeded,
    # The reference reads a 300-byte handle out of 28 bytes plus its zero-filled buffer and
    # answers rc 100; idnode refuses to read bytes that are not there (rc 2).
    "08-malformed-udp-handle-length-past-end": MalformedBody,
    "08-malformed-udp-length-negative": InvalidLength,
    "08-malformed-udp-length-over-max": LimitExceeded,
    "08-malformed-udp-length-too-small": MessageTooShort,
    "08-malformed-udp-opcode-0": UnknownOpCode,
    "08-malformed-udp-opcode-unknown": UnknownOpCode,
    "08-malformed-udp-short-datagram": MessageTooShort,
    # Not an error: an incomplete fragment set is never answered (below).
    "08-malformed-udp-truncated-flag-missing-packets": None,
}
DIVERGES = {"08-malformed-udp-handle-length-past-end"}

# 08-* requests the reference answered normally: they must decode.
ACCEPTED = {
    "08-malformed-tcp-split-writes",
    "08-malformed-tcp-two-requests-one-connection",
    # Refused by the server's interface policy (UDP is query-only), not by the codec.
    "08-malformed-udp-admin-opcode-on-udp",
    "08-malformed-udp-length-exceeds-datagram",
    "08-malformed-udp-no-credential-length",
    "08-malformed-udp-protocol-version-1.0",
    "08-malformed-udp-protocol-version-3.0",
}


def refused(c: Captured) -> bool:
    return c.file in MALFORMED and c.direction == "client->server"


def well_formed() -> list[Captured]:
    """Every captured message with a header, except the requests idnode refuses."""
    return [c for name in FILES for c in messages(name) if "header" in c.decoded and not refused(c)]


def replies() -> list[Captured]:
    return [c for c in well_formed() if c.direction == "server->client"]


def _id(c: Captured) -> str:
    return f"{c.file}#{c.position}"


# --- the expected fields, from the JSON alone -------------------------------------------------


def text(field: Any) -> str:
    """A handle/text field: plain text, or {length, hex, text}."""
    if isinstance(field, str):
        return field
    return bytes.fromhex(field["hex"]).decode()


def expected_envelope(e: dict[str, Any]) -> Envelope:
    flags = int(e["flags_byte"], 16)
    assert flags & 3 == e["suggested_major"]
    assert bool(flags & 0x20) == e["truncated"]
    assert bool(flags & 0x40) == e["encrypted"]
    assert bool(flags & 0x80) == e["compressed"]
    return Envelope(
        e["protocol_major"],
        e["protocol_minor"],
        e["suggested_major"],
        e["suggested_minor"],
        flags & 0xFC,
        e["session_id"],
        e["request_id"],
        e["message_id"],
        e["message_length"],
    )


def expected_header(h: dict[str, Any]) -> Header:
    assert h["reserved"] == 0
    return Header(
        h["op_code"],
        h["response_code"],
        int(h["op_flags"], 16),
        h["site_info_serial"],
        h["recursion_count"],
        h["expiration"],
    )


def expected_value(v: dict[str, Any]) -> Value:
    assert bytes.fromhex(v["type_hex"]) == v["type"].encode()
    refs = tuple(Reference(text(r["handle"]), r["index"]) for r in v["references"])
    return Value(
        index=v["index"],
        type=v["type"],
        data=bytes.fromhex(v["data"]["hex"]),
        ttl=v["ttl"],
        ttl_type=v["ttl_type"],
        timestamp=v["timestamp"],
        permissions=int(v["permissions"], 16),
        references=refs,
    )


def _field(raw: bytes) -> bytes:
    return struct.pack(">i", len(raw)) + raw


def site_bytes(s: dict[str, Any]) -> bytes:
    """The site record built from the vector's decode of it (handle-native.md §5)."""
    major, minor = (int(x) for x in s["protocol_version"].split("."))
    out = struct.pack(
        ">HBBHBB",
        s["data_format_version"],
        major,
        minor,
        s["serial_number"],
        int(s["primary_mask"], 16),
        int(s["hash_option"].split()[0]),
    )
    out += _field(bytes.fromhex(s["hash_filter"]["hex"]))
    out += struct.pack(">i", len(s["attributes"]))
    for a in s["attributes"]:
        out += _field(bytes.fromhex(a["name"]["hex"])) + _field(bytes.fromhex(a["value"]["hex"]))
    out += struct.pack(">i", len(s["servers"]))
    for srv in s["servers"]:
        out += struct.pack(">i", srv["server_id"]) + bytes.fromhex(srv["address_hex"])
        out += _field(bytes.fromhex(srv["public_key"]["hex"]))
        out += struct.pack(">i", len(srv["interfaces"]))
        for i in srv["interfaces"]:
            out += struct.pack(">BBi", i["type"], i["protocol"], i["port"])
    return out


def expected_body(header: Header, b: dict[str, Any]) -> Body:
    op, rc = header.op_code, header.response_code
    if rc == 0:
        if op == OpCode.RESOLUTION:
            return ResolutionRequest(
                text(b["handle"]),
                tuple(b["requested_indexes"]),
                tuple(text(t) for t in b["requested_types"]),
            )
        if op == OpCode.GET_SITE_INFO:
            return SiteInfoRequest(text(b["handle"]))
        if op == OpCode.CREATE_HANDLE:
            return CreateHandleRequest(
                text(b["handle"]), tuple(expected_value(v) for v in b["values"])
            )
        if op == OpCode.DELETE_HANDLE:
            return DeleteHandleRequest(text(b["handle"]))
        if op == OpCode.RESPONSE_TO_CHALLENGE:
            return ChallengeAnswer(
                text(b["auth_type"]),
                text(b["user_id_handle"]),
                b["user_id_index"],
                bytes.fromhex(b["signed_response"]["hex"]),
            )
        if op == OpCode.SESSION_SETUP:
            return SessionSetupRequest(
                int(b["key_exchange_mode"].split()[0]),
                b["timeout_seconds"],
                text(b["identity_handle"]),
                b["identity_index"],
                bytes.fromhex(b["exchange_public_key"]["hex"]),
            )
    elif rc == ResponseCode.SUCCESS:
        if op == OpCode.RESOLUTION:
            return ResolutionResponse(
                text(b["handle"]), tuple(expected_value(v) for v in b["values"])
            )
        if op == OpCode.GET_SITE_INFO:
            return SiteInfoResponse(site_bytes(b["site_info"]))
        if op == OpCode.CREATE_HANDLE:
            return CreateHandleResponse(text(b["handle"]))
        if op == OpCode.DELETE_HANDLE:
            assert b == {}
            return EmptyResponse()
        if op == OpCode.SESSION_SETUP:
            return SessionSetupResponse(
                int(b["key_exchange_mode"].split()[0]), bytes.fromhex(b["data"]["hex"])
            )
    elif rc == ResponseCode.AUTHENTICATION_NEEDED:
        return Challenge(bytes.fromhex(b["nonce"]))
    else:
        return ErrorResponse(text(b["error_message"]))
    raise AssertionError(f"no expectation for op {op} rc {rc}: {b}")


def expected_credential(d: dict[str, Any]) -> Credential | None:
    if not d.get("credential_length"):
        assert "credential" not in d
        return None
    c = d["credential"]
    sig = bytes.fromhex(c["signature"]["hex"])
    assert c["signature_section_length"] == 8 + len(c["hash_algorithm"]) + len(sig)
    return Credential(
        c["signature_type"],
        c["hash_algorithm"],
        sig,
        c["signer_handle"],
        c["signer_index_or_session_counter"],
        c["version"],
        c["reserved"],
        c["flags"],
    )


def expected_message(c: Captured) -> Message:
    header = expected_header(c.decoded["header"])
    body = c.decoded["body"]
    digest = None
    if "request_digest" in body:
        body = dict(body)
        d = body.pop("request_digest")
        digest = Digest(d["hash_type"], bytes.fromhex(d["hex"]))
    return Message(
        expected_envelope(c.envelope),
        header,
        expected_body(header, body),
        expected_credential(c.decoded),
        digest,
    )


# --- tests ------------------------------------------------------------------------------------


def test_the_index_lists_every_file_and_every_message_is_covered() -> None:
    index = load("index")
    assert sorted(f["file"] for f in index["files"]) == sorted(f"{n}.json" for n in FILES)
    assert index["self_check"]["files"] == len(FILES) == 60
    # Every well-formed message decodes below; the rest are the 08-* requests refused below.
    decoded = sum(1 for n in FILES for m in load(n)["messages"] if "header" in m["decoded"]) + sum(
        1 for n in FILES for m in load(n)["messages"] if "reassembled" in m
    )
    assert decoded == index["self_check"]["decoded_messages"] == 122
    covered = {c.file for c in well_formed()} | set(MALFORMED)
    assert covered == set(FILES)


@pytest.mark.parametrize("c", well_formed(), ids=_id)
def test_captured_message_decodes_to_the_documented_fields(c: Captured) -> None:
    msg = receive_all(c)
    expected = expected_message(c)
    assert msg.envelope == expected.envelope
    assert msg.header == expected.header
    assert msg.body == expected.body
    assert msg.digest == expected.digest
    assert msg.credential == expected.credential
    assert len(msg.signed) == 24 + c.decoded["header"]["body_length"]
    assert OpCode(msg.header.op_code).name == c.decoded["header"]["op_code_name"][3:]
    if msg.header.response_code:
        rc_name = ResponseCode(msg.header.response_code).name
        assert "RC_" + rc_name == c.decoded["header"]["response_code_name"]


@pytest.mark.parametrize("c", replies(), ids=_id)
def test_captured_reply_reencodes_byte_for_byte(c: Captured) -> None:
    msg = receive_all(c)
    if c.transport == "tcp":
        assert encode(msg) == c.wire[0]
    else:
        message = encode_message(msg.header, msg.body, msg.credential, msg.digest)
        assert datagrams(msg.envelope, message) == c.wire


def test_reply_encodings_cover_every_reply_body_in_the_captures() -> None:
    kinds = {type(receive_all(c).body).__name__ for c in replies()}
    assert kinds == {
        "Challenge",
        "CreateHandleResponse",
        "EmptyResponse",
        "ErrorResponse",
        "ResolutionResponse",
        "SessionSetupResponse",
        "SiteInfoResponse",
    }


def _pairs() -> list[tuple[Captured, Captured]]:
    """(request, its reply) for every answered, well-formed request."""
    out = []
    for name in FILES:
        msgs = messages(name)
        for i, c in enumerate(msgs):
            if c.direction != "client->server" or "header" not in c.decoded or refused(c):
                continue
            rid = c.envelope["request_id"]
            reply = next(
                (r for r in msgs[i + 1 :] if r.envelope.get("request_id") == rid and r is not c),
                None,
            )
            if reply is not None and reply.direction == "server->client":
                out.append((c, reply))
    return out


@pytest.mark.parametrize("pair", _pairs(), ids=lambda p: _id(p[0]))
def test_reply_envelope_negotiates_like_the_reference(pair: tuple[Captured, Captured]) -> None:
    """Version, request id, session id and TC of every captured reply, from its request. A
    challenge names a new session, the answer's reply drops a pending challenge's id, a session
    setup reply names the new session: those ids are the server's choice and passed in."""
    request, reply = pair
    got = reply_envelope(receive_all(request).envelope, session_id=reply.envelope["session_id"])
    want = expected_envelope(reply.envelope)
    if len(reply.wire) > 1:
        want.flags &= (
            ~0x20
        )  # TC on a split reply is the splitting's (udp.datagrams), not the envelope's
    assert got == replace(want, message_id=0, message_length=0)


def test_two_replies_keep_the_requests_session() -> None:
    """Without an explicit session id the reply echoes the request's (09c, inside a session)."""
    request, reply = next(
        (q, r)
        for q, r in _pairs()
        if q.file.startswith("09c") and q.decoded["header"]["op_code"] == 101
    )
    assert (
        reply_envelope(receive_all(request).envelope).session_id
        == 5
        == reply.envelope["session_id"]
    )


# --- malformed requests -----------------------------------------------------------------------


def test_every_malformed_file_is_classified() -> None:
    assert set(MALFORMED) | ACCEPTED == {n for n in FILES if n.startswith("08-")}
    assert not set(MALFORMED) & ACCEPTED


def refuse(c: Captured) -> RemoteProtocolError:
    """Feed the request through its transport's framing and decoding; return the error."""
    with pytest.raises(RemoteProtocolError) as info:
        if c.transport == "tcp":
            framer = Framer()
            for chunk in tcp_chunks(c):
                framer.feed(chunk)
            framer.feed_eof()  # every malformed TCP capture half-closes after its bytes
            frame = framer.next_frame()
            assert frame is not None
            decode(frame)
        else:
            reassembler = Reassembler()
            for d in c.wire:
                receive(d, "127.0.0.1", 0.0, reassembler)
    return info.value


def tcp_chunks(c: Captured) -> list[bytes]:
    """The request's bytes cut as the relay saw the client write them."""
    sizes = [
        e["bytes"]
        for e in load(c.file).get("tcp_events", [])
        if e["direction"] == "client->server" and e["event"] == "data"
    ]
    data = b"".join(c.wire)
    if sum(sizes) != len(data):
        return [data]
    out, off = [], 0
    for n in sizes:
        out.append(data[off : off + n])
        off += n
    return out


@pytest.mark.parametrize("name", sorted(n for n, cls in MALFORMED.items() if cls), ids=str)
def test_malformed_requests_are_refused_with_the_reference_answer(name: str) -> None:
    request, reply = messages(name)
    error = refuse(request)
    assert type(error) is MALFORMED[name]
    assert error.answerable
    assert str(error)  # the detail for the log says what was wrong
    rc = reply.decoded["header"]["response_code"]
    if name in DIVERGES:
        assert rc == ResponseCode.HANDLE_NOT_FOUND
        assert error.response_code == ResponseCode.ERROR
        return
    assert error.response_code == rc
    assert error.message == text(reply.decoded["body"]["error_message"])
    # The reference built these replies without a parsed request (†): idnode's blind reply is
    # the same bytes.
    expiration = reply.decoded["header"]["expiration"]
    assert encode(blind_error(error.response_code, error.message, expiration)) == reply.wire[0]


def test_admin_op_code_on_udp_decodes_and_the_blind_reply_echoes_it() -> None:
    request, reply = messages("08-malformed-udp-admin-opcode-on-udp")
    msg = receive_all(request)
    assert msg.body == DeleteHandleRequest("88.118.8/NOPE1")
    h = reply.decoded["header"]
    refusal = blind_error(
        h["response_code"],
        text(reply.decoded["body"]["error_message"]),
        h["expiration"],
        op_code=msg.header.op_code,
    )
    assert encode(refusal) == reply.wire[0]


def test_incomplete_fragment_set_is_silent() -> None:
    """08-malformed-udp-truncated-flag-missing-packets: one fragment (of 60 bytes, where a
    first fragment has 492) of a 1000-byte message. The reference parks it and never answers;
    idnode refuses it at once, unanswered."""
    (c,) = messages("08-malformed-udp-truncated-flag-missing-packets")
    error = refuse(c)
    assert isinstance(error, FragmentError)
    assert not error.answerable


@pytest.mark.parametrize("name", sorted(ACCEPTED), ids=str)
def test_malformed_requests_the_reference_answered_decode(name: str) -> None:
    for c in messages(name):
        if c.direction == "client->server":
            assert receive_all(c) == expected_message(c)


def test_split_writes_and_pipelined_requests_frame_like_the_reference_reads_them() -> None:
    (request, _) = messages("08-malformed-tcp-split-writes")
    chunks = tcp_chunks(request)
    assert [len(x) for x in chunks] == [7, 26, 47]
    framer = Framer()
    for chunk in chunks[:-1]:
        framer.feed(chunk)
        assert framer.next_frame() is None
    framer.feed(chunks[-1])
    assert framer.next_frame() == request.wire[0]
    # Two requests in one write: both come out; answering only the first is the server's rule.
    first, second, _ = messages("08-malformed-tcp-two-requests-one-connection")
    writes = [
        e["bytes"]
        for e in load(first.file)["tcp_events"]
        if e["direction"] == "client->server" and e["event"] == "data"
    ]
    assert writes == [len(first.wire[0]) + len(second.wire[0])] == [160]
    framer = Framer()
    framer.feed(first.wire[0] + second.wire[0])
    framer.feed_eof()
    assert framer.next_frame() == first.wire[0]
    assert framer.next_frame() == second.wire[0]
    assert framer.next_frame() is None


# --- signatures and challenges ----------------------------------------------------------------


def server_key() -> rsa.RSAPublicKey:
    """The server's RSA key, as published in its site record (05-siteinfo-udp)."""
    (_, reply) = messages("05-siteinfo-udp")
    blob = bytes.fromhex(reply.decoded["body"]["site_info"]["servers"][0]["public_key"]["hex"])
    off = 4 + struct.unpack_from(">i", blob)[0]  # key type
    assert blob[4:off] == b"RSA_PUB_KEY"
    off += 2  # reserved
    fields = []
    for _ in range(2):  # exponent, modulus
        (n,) = struct.unpack_from(">i", blob, off)
        fields.append(int.from_bytes(blob[off + 4 : off + 4 + n], "big"))
        off += 4 + n
    return rsa.RSAPublicNumbers(fields[0], fields[1]).public_key()


SIGNED = [
    c for c in replies() if c.decoded.get("credential", {}).get("signature_type") == "HS_SIGNED"
]


def test_four_signed_replies_are_captured() -> None:
    assert len(SIGNED) == load("index")["self_check"]["hs_signed_signatures_verified"] == 4


@pytest.mark.parametrize("c", SIGNED, ids=_id)
def test_signed_reply_verifies_over_the_codecs_signed_bytes(c: Captured) -> None:
    msg = receive_all(c)
    assert msg.credential is not None
    data = signed_bytes(msg.envelope, msg.credential.signer_index, msg.signed)
    check = c.entry.get("signature_check") or c.decoded.get("signature_check")
    assert check is not None and check["valid"]
    assert data.hex().startswith(check["signed_prefix_hex"])
    key = server_key()
    key.verify(msg.credential.signature, data, padding.PKCS1v15(), hashes.SHA256())
    # Over the header and body alone (the pre-2.6 form) the signature must not verify.
    with pytest.raises(InvalidSignature):
        key.verify(msg.credential.signature, msg.signed, padding.PKCS1v15(), hashes.SHA256())


def challenge_exchanges() -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, check)
        for name in FILES
        for check in load(name).get("challenge_checks", [])
        if "answer_entry" in check
    ]


def test_four_secret_key_answers_are_captured() -> None:
    n = load("index")["self_check"]["hs_seckey_answers_verified"]
    assert len(challenge_exchanges()) == n == 4


@pytest.mark.parametrize("exchange", challenge_exchanges(), ids=lambda e: e[0])
def test_challenge_digest_and_secret_key_answer_recompute(
    exchange: tuple[str, dict[str, Any]],
) -> None:
    name, check = exchange
    entries = load(name)["messages"]

    def at(i: int) -> Message:
        (c,) = [c for c in messages(name) if c.position == i]
        return receive_all(c)

    original, challenge, answer = (
        at(check[k]) for k in ("original_request_entry", "challenge_entry", "answer_entry")
    )
    assert isinstance(challenge.body, Challenge)
    assert challenge.body.nonce.hex() == check["nonce"]
    # The 402's digest is SHA-256 of the original request's header and body.
    assert challenge.digest == request_digest(original.signed)
    assert challenge.header.op_code == original.header.op_code
    assert isinstance(answer.body, ChallengeAnswer)
    assert answer.body.auth_type == "HS_SECKEY"
    assert answer.envelope.session_id == challenge.envelope.session_id
    parsed = decode_secret_key_answer(answer.body.answer)
    assert encode_secret_key_answer(parsed) == answer.body.answer
    documented = entries[check["answer_entry"]]["decoded"]["body"]["signed_response"]["decoded"]
    assert (
        parsed.scheme,
        parsed.salt.hex(),
        parsed.iterations,
        parsed.key_bits,
        parsed.mac.hex(),
    ) == (
        int(documented["digest_alg"], 16),
        documented["salt_hex"],
        documented["iterations"],
        documented["key_length_bits"],
        documented["mac_hex"],
    )
    secret = check["answer_check"]["password"].encode()
    mac = secret_key_mac(secret, parsed, challenge.body.nonce, challenge.digest.digest)
    assert mac.hex() == check["answer_check"]["recomputed_mac_hex"]
    assert (mac == parsed.mac) is check["answer_check"]["valid"]
    assert (
        secret_key_mac(b"wrong", parsed, challenge.body.nonce, challenge.digest.digest)
        != parsed.mac
    )
