"""Administration over the native protocol (resolver/native/admin.py) on real TCP sockets:
the captured admin exchanges (09a-09e) replayed against the in-process listener and compared
field by field with the reference's answers (nonces, session ids, expirations aside); the whole
flow with a secret and with an RSA key made here; refusals, the throttle, replayed and expired
answers, authorisation as the HTTP API's, hostile bodies; and ``idnode admin``.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, padding, rsa

from registry.auth import Authenticator
from registry.errors import AuthenticationFailed
from registry.model import admin as adm
from registry.model.identifiers import parse
from registry.model.pubkey import pubkey_from_jwk
from registry.model.values import HS_ADMIN, HS_PUBKEY, Value
from registry.proofs import SecretProof
from registry.signing.keys import public_jwk_of
from registry.store.chain import AuditQuery
from resolver.config import load
from resolver.http.app import make_app
from resolver.native import client as native_client
from resolver.native import decode, encode
from resolver.native.admin import HANDLES_PER_MESSAGE
from resolver.native.adminclient import PrivateKey, Proof, SecretKey, administer
from resolver.native.challenge import decode_secret_key_answer, proof_of
from resolver.native.codes import CN, OVRW, OpCode, ResponseCode
from resolver.native.listener import start_native
from resolver.native.messages import (
    AddValueRequest,
    Challenge,
    ChallengeAnswer,
    CreateHandleRequest,
    CreateHandleResponse,
    DeleteHandleRequest,
    ErrorResponse,
    ListHandlesRequest,
    ListHandlesResponse,
    Message,
    ModifyValueRequest,
    RemoveValueRequest,
    ResolutionRequest,
    ResolutionResponse,
)
from resolver.native.pending import PendingChallenges
from tests.procs import CLI, ROOT, clean_env
from tests.test_native_server import (
    PREFIX,
    SECRET,
    WAIT,
    Native,
    UdpPeer,
    assert_same_reply,
    pairs,
    tcp_exchange,
    vector_node,
)
from tests.test_native_vectors import Captured, expected_message, messages

OTHER_ADMIN = adm.AdminRef(300, "0.NA/88.118.9")  # the admin of another prefix (conftest)
OTHER_SECRET = b"ent9-secret"
ME = adm.AdminRef(300, PREFIX)
KEY_INDEX = 301  # the prefix handle's HS_PUBKEY: replaced by a key made here


@dataclass
class Admin(Native):
    http: str
    session: aiohttp.ClientSession
    key: rsa.RSAPrivateKey


@pytest.fixture
async def native(tmp_path: Path) -> AsyncIterator[Admin]:
    """The vector node (tests/test_native_server.py) served over native TCP/UDP and HTTP,
    its prefix handle's HS_PUBKEY 301 replaced by an RSA key made here, which an HS_ADMIN
    value at 101 makes an admin of the prefix."""
    data = tmp_path / "node"
    node = await vector_node(data, signing_alg="RS256")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    blob = pubkey_from_jwk(public_jwk_of(key.public_key()))
    rights = adm.encode_admin(adm.AdminData(adm.AdminRef(KEY_INDEX, PREFIX), adm.ALL_RIGHTS))
    await node.registry.put_values(
        parse(PREFIX), [Value(KEY_INDEX, HS_PUBKEY, blob), Value(101, HS_ADMIN, rights)]
    )
    listener = await start_native(node, "127.0.0.1", 0)
    http = TestServer(make_app(load(data), node), port=0)
    await http.start_server()
    host, port = listener.address
    try:
        async with aiohttp.ClientSession() as session:
            url = str(http.make_url("")).rstrip("/")
            yield Admin(node, listener, host, port, url, session, key)
    finally:
        await http.close()
        await listener.close()
        await node.close()


async def http_get(native: Admin, handle: str) -> tuple[int, dict[str, object]]:
    async with native.session.get(f"{native.http}/api/handles/{handle}") as resp:
        return resp.status, await resp.json()


async def one_reply(native: Native, frame: bytes, local: str | None = None) -> Message:
    """Send ``frame`` on a new connection (from ``local`` address), return the one reply."""
    if local is None:
        frames, closed = await tcp_exchange(native, [frame])
        assert closed and len(frames) == 1
        return decode(frames[0])
    reader, writer = await asyncio.open_connection(native.host, native.port, local_addr=(local, 0))
    try:
        writer.write(frame)
        writer.write_eof()
        async with asyncio.timeout(WAIT):
            return decode(await reader.read())
    finally:
        writer.close()


def answer_frame(captured: Captured, session: int, answer: bytes, auth: str = "HS_SECKEY") -> bytes:
    """The captured challenge answer, its session id and answer bytes replaced."""
    msg = decode(captured.wire[0])
    assert isinstance(msg.body, ChallengeAnswer)
    body = replace(msg.body, answer=answer, auth_type=auth)
    return encode(replace(msg, envelope=replace(msg.envelope, session_id=session), body=body))


async def run_captured(
    native: Native, name: str, secret: bytes = SECRET
) -> tuple[Message, Message]:
    """Replay the captured exchange ``name``: its request (the challenge must be the
    captured one but for the nonce and session id), then an answer made with ``secret`` for
    the new nonce (the final reply must be the captured one)."""
    (request, challenge), (answer, final) = pairs(name)
    got = await one_reply(native, request.wire[0])
    assert_same_reply(got, expected_message(challenge), session=False)
    assert isinstance(got.body, Challenge) and got.digest is not None
    assert got.envelope.session_id > 0
    proof = SecretKey(ME, secret)
    mine = await proof.answer(got.body.nonce, got.digest.digest)
    done = await one_reply(native, answer_frame(answer, got.envelope.session_id, mine))
    assert_same_reply(done, expected_message(final))
    return got, done


# --- the captured exchanges ---------------------------------------------------------------------


def test_every_captured_admin_request_decodes() -> None:
    seen = set()
    names = ("09a-admin-create-tcp", "09b-admin-delete-tcp", "09d-admin-create-wrong-secret-tcp")
    for name in (*names, "09e-admin-create-existing-tcp"):
        for c in messages(name):
            if c.direction == "client->server":
                msg = decode(c.wire[0])
                seen.add(type(msg.body))
                if isinstance(msg.body, ChallengeAnswer):
                    assert msg.body.identity_handle == PREFIX and msg.body.identity_index == 300
                    parsed = decode_secret_key_answer(msg.body.answer)
                    assert (parsed.iterations, parsed.key_bits) == (10_000, 160)
    assert seen == {CreateHandleRequest, DeleteHandleRequest, ChallengeAnswer}


async def test_captured_delete_then_create_are_answered_as_the_reference(native: Admin) -> None:
    """09b (delete VEC-ADMIN-1: challenge, then rc 1 with an empty body), then 09a (create
    it again: challenge with the same SHA-256 digest of the request, then rc 1 with the
    handle); the reply carries the answer's request id and session id 0. HTTP sees each."""
    await run_captured(native, "09b-admin-delete-tcp")
    status, _ = await http_get(native, "88.118.8/VEC-ADMIN-1")
    assert status == 404
    _, done = await run_captured(native, "09a-admin-create-tcp")
    assert done.body == CreateHandleResponse("88.118.8/VEC-ADMIN-1")
    status, body = await http_get(native, "88.118.8/VEC-ADMIN-1")
    assert status == 200
    assert [v["type"] for v in body["values"]][:3] == ["HS_ADMIN", "URL", "HS_VLIST"]  # type: ignore[index]


async def test_captured_create_of_an_existing_handle_is_refused_before_any_challenge(
    native: Admin,
) -> None:
    ((request, reply),) = pairs("09e-admin-create-existing-tcp")
    got = await one_reply(native, request.wire[0])
    assert_same_reply(got, expected_message(reply))
    assert len(native.listener.service.admin.pending) == 0  # type: ignore[union-attr]


async def test_captured_wrong_secret_is_refused_as_the_reference(native: Admin) -> None:
    """09d: an answer made with the wrong secret gets rc 403, empty message, op 100."""
    await run_captured(native, "09d-admin-create-wrong-secret-tcp", secret=b"not-the-secret")
    assert await native.node.store.get("88.118.8/VEC-ADMIN-3") is None


async def test_session_setup_is_answered_not_supported(native: Admin) -> None:
    """Sessions are not implemented: 09c's session setup (op 400, over UDP) gets rc 5."""
    (setup, _), *_ = pairs("09c-admin-genericbatch-session")
    assert setup.transport == "udp" and decode(setup.wire[0]).header.op_code == 400
    loop = asyncio.get_running_loop()
    got: asyncio.Future[bytes] = loop.create_future()

    class Peer(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            if not got.done():
                got.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(Peer, remote_addr=(native.host, native.port))
    try:
        for datagram in setup.wire:
            transport.sendto(datagram)
        async with asyncio.timeout(WAIT):
            reply = decode(await got)
    finally:
        transport.close()
    assert reply.header.op_code == OpCode.SESSION_SETUP
    assert reply.header.response_code == ResponseCode.OPERATION_NOT_SUPPORTED
    assert reply.envelope.request_id == setup.envelope["request_id"]


# --- the whole flow -----------------------------------------------------------------------------


def values(*specs: tuple[int, str, str]) -> tuple[Value, ...]:
    return tuple(Value(i, t, d.encode()) for i, t, d in specs)


async def admin(native: Native, body: object, proof: Proof, flags: int = 0) -> list[Message]:
    return await administer(native.host, native.port, body, proof, flags=flags)  # type: ignore[arg-type]


def ok(replies: list[Message]) -> Message:
    assert [r.header.response_code for r in replies][-1:] == [ResponseCode.SUCCESS], replies
    return replies[-1]


async def test_create_add_modify_remove_list_delete_with_a_secret_and_a_key(
    native: Admin,
) -> None:
    secret = SecretKey(ME, SECRET)
    key = PrivateKey(adm.AdminRef(KEY_INDEX, PREFIX), native.key)
    handle = "88.118.8/NATIVE-1"
    admin_value = Value(100, HS_ADMIN, adm.encode_admin(adm.AdminData(ME, adm.ALL_RIGHTS)))
    created = ok(
        await admin(
            native,
            CreateHandleRequest(handle, (admin_value, *values((1, "URL", "https://a.example")))),
            secret,
        )
    )
    assert created.body == CreateHandleResponse(handle)
    ok(await admin(native, AddValueRequest(handle, values((2, "EMAIL", "x@example.org"))), key))
    ok(
        await admin(
            native, ModifyValueRequest(handle, values((1, "URL", "https://b.example"))), secret
        )
    )
    status, body = await http_get(native, handle)
    assert status == 200
    got = {v["index"]: v["data"]["value"] for v in body["values"]}  # type: ignore[index,union-attr]
    assert got[1] == "https://b.example" and got[2] == "x@example.org"
    ok(await admin(native, RemoveValueRequest(handle, (2,)), key))
    status, body = await http_get(native, handle)
    assert 2 not in {v["index"] for v in body["values"]}  # type: ignore[index,union-attr]
    listed = await admin(native, ListHandlesRequest(PREFIX), key)
    handles = [h for r in listed if isinstance(r.body, ListHandlesResponse) for h in r.body.handles]
    assert handle in handles and "88.118.8/ITEM-000042" in handles
    ok(await admin(native, DeleteHandleRequest(handle), key))
    status, _ = await http_get(native, handle)
    assert status == 404
    # Each write is in the audit log, named as the native protocol's, by who proved it.
    entries = await native.node.store.audit_entries(AuditQuery(), 0, 1000)
    mine = [(e.action, e.identity) for e in entries if e.handle.upper() == handle.upper()]
    assert [a for a, _ in mine] == ["create", "update", "update", "update", "delete"], mine
    assert all(
        e.transport == "native" and e.address == "127.0.0.1"
        for e in entries
        if e.handle.upper() == handle.upper()
    )
    assert {i for _, i in mine} == {f"300:{PREFIX}", f"{KEY_INDEX}:{PREFIX}"}, mine


async def test_add_without_overwrite_refuses_a_taken_index_and_modify_a_missing_one(
    native: Admin,
) -> None:
    secret = SecretKey(ME, SECRET)
    handle = "88.118.8/ITEM-000042"
    (refused,) = await admin(native, AddValueRequest(handle, values((1, "URL", "x"))), secret)
    assert refused.header.response_code == ResponseCode.VALUE_ALREADY_EXISTS
    ok(
        await admin(
            native, AddValueRequest(handle, values((1, "URL", "https://c.example"))), secret, OVRW
        )
    )
    # A modify of a value that is not there is refused before any challenge (rc 200).
    (missing,) = await admin(native, ModifyValueRequest(handle, values((77, "URL", "x"))), secret)
    assert missing.header.response_code == ResponseCode.VALUES_NOT_FOUND
    assert missing.envelope.session_id == 0


async def test_a_list_of_many_handles_comes_in_messages_flagged_cn(native: Admin) -> None:
    records = [(parse(f"88.118.8/MANY-{i:03}"), list(values((1, "URL", "u")))) for i in range(120)]
    await native.node.registry.import_records(records)
    replies = await admin(native, ListHandlesRequest(PREFIX), SecretKey(ME, SECRET))
    assert len(replies) >= 3
    assert [bool(r.header.op_flags & CN) for r in replies] == [True] * (len(replies) - 1) + [False]
    sizes = [len(r.body.handles) for r in replies if isinstance(r.body, ListHandlesResponse)]
    assert all(s == HANDLES_PER_MESSAGE for s in sizes[:-1]) and sum(sizes) >= 122
    assert len({r.envelope.request_id for r in replies}) == 1


async def test_a_challenge_for_restricted_values_is_answered_with_them(native: Admin) -> None:
    """04c: a PO-clear resolution of the prefix handle is challenged; answered as its admin,
    the reply is the resolution with the HS_SECKEY value, under the answer's request id."""
    ((request, challenge),) = pairs("04c-resolve-prefix-nonpublic-tcp")
    got = await one_reply(native, request.wire[0])
    assert_same_reply(got, expected_message(challenge), session=False)
    assert isinstance(got.body, Challenge) and got.digest is not None
    proof = SecretKey(ME, SECRET)
    body = ChallengeAnswer(
        "HS_SECKEY", PREFIX, 300, await proof.answer(got.body.nonce, got.digest.digest)
    )
    answer = native_client.request(body, session_id=got.envelope.session_id)
    done = await one_reply(native, encode(answer))
    assert done.header.op_code == OpCode.RESOLUTION
    assert done.header.response_code == ResponseCode.SUCCESS
    assert done.envelope.request_id == answer.envelope.request_id
    assert done.envelope.session_id == 0
    assert isinstance(done.body, ResolutionResponse) and done.body.handle == PREFIX
    assert 300 in {v.index for v in done.body.values}
    # Another prefix's admin proves itself but may not read them: the core's refusal.
    got = await one_reply(native, request.wire[0])
    assert isinstance(got.body, Challenge) and got.digest is not None
    other = SecretKey(OTHER_ADMIN, OTHER_SECRET)
    body = ChallengeAnswer(
        "HS_SECKEY", OTHER_ADMIN.handle, 300, await other.answer(got.body.nonce, got.digest.digest)
    )
    answer = native_client.request(body, session_id=got.envelope.session_id)
    refused = await one_reply(native, encode(answer))
    assert refused.header.response_code == ResponseCode.INSUFFICIENT_PERMISSIONS


async def test_a_udp_challenge_is_answered_over_udp(native: Admin) -> None:
    """Over UDP (query-only) a PO-clear resolution is challenged too; an answer from another
    address finds no challenge (rc 405), the one from the same address gets the restricted
    values."""
    loop = asyncio.get_running_loop()
    transport, peer = await loop.create_datagram_endpoint(
        UdpPeer, remote_addr=(native.host, native.port)
    )
    try:
        ask = native_client.request(ResolutionRequest(PREFIX), public_only=False)
        peer.send([encode(ask)])
        got, _ = await peer.reply()
        assert isinstance(got.body, Challenge) and got.digest is not None
        proof = SecretKey(ME, SECRET)
        body = ChallengeAnswer(
            "HS_SECKEY", PREFIX, 300, await proof.answer(got.body.nonce, got.digest.digest)
        )
        answer = native_client.request(body, session_id=got.envelope.session_id)
        # From another address: not its challenge (the entry stays for the right peer).
        other_transport, other = await loop.create_datagram_endpoint(
            UdpPeer, local_addr=("127.0.0.2", 0), remote_addr=(native.host, native.port)
        )
        try:
            other.send([encode(answer)])
            foreign, _ = await other.reply()
        finally:
            other_transport.close()
        assert foreign.header.response_code == ResponseCode.AUTHEN_TIMEOUT
        peer.send([encode(answer)])
        done, _ = await peer.reply()
    finally:
        transport.close()
    assert done.header.response_code == ResponseCode.SUCCESS
    assert isinstance(done.body, ResolutionResponse)
    assert 300 in {v.index for v in done.body.values}


# --- refusals -----------------------------------------------------------------------------------


async def test_wrong_secret_and_wrong_key_are_refused_then_throttled(native: Admin) -> None:
    """Wrong proofs get rc 403; after the throttle's free failures the next attempt (even a
    right one) is answered "too busy" (rc 3) without being checked, as HTTP answers 429."""
    body = CreateHandleRequest("88.118.8/GUESS", values((1, "URL", "u")))
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wrong = [SecretKey(ME, b"guess"), PrivateKey(adm.AdminRef(KEY_INDEX, PREFIX), other_key)]
    throttle = native.node.throttle
    throttle.base = 120.0  # the first delay: longer than this test takes on a busy machine
    free = throttle.free
    for n in range(free):
        (reply,) = await admin(native, body, wrong[n % 2])
        assert reply.header.response_code == ResponseCode.AUTHENTICATION_FAILED
        assert reply.header.op_code == OpCode.CREATE_HANDLE
        assert reply.body == ErrorResponse("")
    (reply,) = await admin(native, body, SecretKey(ME, SECRET))
    assert reply.header.response_code == ResponseCode.SERVER_TOO_BUSY
    assert isinstance(reply.body, ErrorResponse) and "retry" in reply.body.message
    assert await native.node.store.get("88.118.8/GUESS") is None
    refusals = await native.node.store.audit_entries(AuditQuery(action="refused"), 0, 100)
    assert any(e.transport == "native" and e.handle == PREFIX for e in refusals), refusals


async def test_replayed_expired_and_foreign_answers_are_refused(native: Admin) -> None:
    (request, _), (answer, _) = pairs("09b-admin-delete-tcp")
    proof = SecretKey(ME, SECRET)

    async def challenge() -> tuple[int, bytes]:
        got = await one_reply(native, request.wire[0])
        assert isinstance(got.body, Challenge) and got.digest is not None
        return got.envelope.session_id, await proof.answer(got.body.nonce, got.digest.digest)

    def timed_out(reply: Message) -> None:
        assert reply.header.response_code == ResponseCode.AUTHEN_TIMEOUT
        assert reply.header.op_code == OpCode.RESPONSE_TO_CHALLENGE
        assert reply.envelope.request_id == answer.envelope["request_id"]

    # From another address than the challenge went to: not that peer's challenge.
    session, mine = await challenge()
    timed_out(await one_reply(native, answer_frame(answer, session, mine), local="127.0.0.2"))
    # Answered once: the replay finds nothing.
    done = await one_reply(native, answer_frame(answer, session, mine))
    assert done.header.response_code == ResponseCode.SUCCESS
    timed_out(await one_reply(native, answer_frame(answer, session, mine)))
    # Expired: the table's clock moved past the challenge timeout.
    pending = native.listener.service.admin.pending  # type: ignore[union-attr]
    session, mine = await challenge()
    start = pending.clock
    pending.clock = lambda: start() + pending.timeout + 1
    timed_out(await one_reply(native, answer_frame(answer, session, mine)))


async def test_another_prefixs_admin_gets_the_http_apis_response_code(native: Admin) -> None:
    handle = "88.118.8/NOT-YOURS"
    (reply,) = await admin(
        native,
        CreateHandleRequest(handle, values((1, "URL", "u"))),
        SecretKey(OTHER_ADMIN, OTHER_SECRET),
    )
    basic = base64.b64encode(b"300%3A0.NA%2F88.118.9:" + OTHER_SECRET).decode()
    async with native.session.put(
        f"{native.http}/api/handles/{handle}",
        json={"values": [{"index": 1, "type": "URL", "data": {"format": "string", "value": "u"}}]},
        headers={"Authorization": f"Basic {basic}"},
    ) as resp:
        http_code = (await resp.json())["responseCode"]
    assert http_code in (ResponseCode.INVALID_ADMIN, ResponseCode.INSUFFICIENT_PERMISSIONS)
    assert reply.header.response_code == http_code, (reply, http_code)
    assert await native.node.store.get(handle.upper()) is None


async def test_malformed_admin_bodies_get_a_protocol_error_and_the_server_goes_on(
    native: Admin,
) -> None:
    (request, _), (answer, _) = pairs("09a-admin-create-tcp")
    frame = request.wire[0]
    # A value list count that the body cannot hold: refused by the codec, connection closed.
    broken = bytearray(frame)
    broken[20 + 24 + 4 + 20 : 20 + 24 + 4 + 20 + 4] = (10**6).to_bytes(4, "big")
    reply = await one_reply(native, bytes(broken))
    assert reply.header.response_code == ResponseCode.ERROR and reply.envelope.request_id == -1
    # A challenge answer whose HS_SECKEY bytes are garbage: the original op's error reply.
    got = await one_reply(native, pairs("09b-admin-delete-tcp")[0][0].wire[0])
    bad = await one_reply(native, answer_frame(answer, got.envelope.session_id, b"\x22\xff"))
    assert bad.header.response_code == ResponseCode.ERROR
    assert bad.header.op_code == OpCode.DELETE_HANDLE
    # Absurd PBKDF2 parameters are refused, not computed.
    got = await one_reply(native, pairs("09b-admin-delete-tcp")[0][0].wire[0])
    raw = bytes([0x22]) + (16).to_bytes(4, "big") + bytes(16) + (10**9).to_bytes(4, "big")
    raw += (160).to_bytes(4, "big") + (20).to_bytes(4, "big") + bytes(20)
    bad = await one_reply(native, answer_frame(answer, got.envelope.session_id, raw))
    assert bad.header.response_code == ResponseCode.ERROR
    # Still answering, and nothing was deleted.
    status, _ = await http_get(native, "88.118.8/VEC-ADMIN-1")
    assert status == 200
    ok(await admin(native, DeleteHandleRequest("88.118.8/VEC-ADMIN-1"), SecretKey(ME, SECRET)))


# --- the parts ------------------------------------------------------------------------------------


def test_the_pending_table_is_bounded_answered_once_and_expires() -> None:
    now = [0.0]
    table = PendingChallenges(timeout=10, max_entries=3, clock=lambda: now[0])
    msg = decode(pairs("09b-admin-delete-tcp")[0][0].wire[0])
    ids = [table.issue(msg, "a", b"n", b"d") for _ in range(5)]
    assert len(table) == 3 and len(set(ids)) == 5
    assert table.take(ids[0], "a") is None  # pushed out by newer ones
    assert table.take(ids[4], "b") is None and table.take(ids[4], "a") is not None
    assert table.take(ids[4], "a") is None
    now[0] = 10.0
    assert table.take(ids[3], "a") is None and len(table) == 0


async def test_the_registry_checks_the_captured_mac_and_signatures(native: Admin) -> None:
    """The registry's proofs: 09a's captured answer (recomputed MAC with "secret"), RSA
    with SHA-256 and SHA-1, DSA; a wrong proof is AuthenticationFailed."""
    auth: Authenticator = native.node.registry.authenticator
    vector = json.loads(
        (ROOT / "tests/vectors/handle-native/09a-admin-create-tcp.json").read_text()
    )
    check = vector["challenge_checks"][0]
    answer = decode(bytes.fromhex(vector["messages"][2]["hex"])).body
    assert isinstance(answer, ChallengeAnswer)
    digest = bytes.fromhex(vector["messages"][1]["decoded"]["body"]["request_digest"]["hex"])
    message = bytes.fromhex(check["nonce"]) + digest
    proof = proof_of(decode_secret_key_answer(answer.answer))
    who = await auth.verify_secret_mac(adm.AdminRef(0, PREFIX), proof, message)
    assert who.identity == ME
    with pytest.raises(AuthenticationFailed):
        await auth.verify_secret_mac(ME, replace(proof, mac=bytes(20)), message)
    with pytest.raises(AuthenticationFailed):
        await auth.verify_secret_mac(ME, SecretProof(0x02, b"x"), message)

    rsa_id = adm.AdminRef(KEY_INDEX, PREFIX)
    for alg, h in (("SHA-256", hashes.SHA256()), ("SHA1", hashes.SHA1())):
        sig = native.key.sign(b"data", padding.PKCS1v15(), h)
        assert (await auth.verify_signature(rsa_id, b"data", sig, alg)).identity == rsa_id
        with pytest.raises(AuthenticationFailed):
            await auth.verify_signature(rsa_id, b"other", sig, alg)
    with pytest.raises(AuthenticationFailed):
        await auth.verify_signature(ME, b"data", sig, "SHA1")  # 300 is a secret, not a key

    dsa_key = dsa.generate_private_key(2048)
    blob = pubkey_from_jwk(_dsa_jwk(dsa_key.public_key()))
    await native.node.registry.put_values(parse(PREFIX), [Value(302, HS_PUBKEY, blob)])
    dsa_id = adm.AdminRef(302, PREFIX)
    sig = dsa_key.sign(b"data", hashes.SHA256())
    assert (await auth.verify_signature(dsa_id, b"data", sig, "SHA-256")).identity == dsa_id
    with pytest.raises(AuthenticationFailed):
        await auth.verify_signature(dsa_id, b"data", sig, "SHA1")


def _dsa_jwk(key: dsa.DSAPublicKey) -> dict[str, str]:
    from registry.signing._b64 import uint_to_b64url

    n = key.public_numbers()
    p = n.parameter_numbers
    return {
        "kty": "DSA",
        "y": uint_to_b64url(n.y),
        "p": uint_to_b64url(p.p),
        "q": uint_to_b64url(p.q),
        "g": uint_to_b64url(p.g),
    }


# --- idnode admin -------------------------------------------------------------------------------


async def test_idnode_admin_creates_lists_and_deletes_with_a_secret_file_and_a_key_file(
    native: Admin, tmp_path: Path
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(SECRET + b"\n")
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(
        native.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = f"{native.host}:{native.port}"

    async def idnode(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            *CLI, "admin", "--native", server, *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=clean_env(),
        )  # fmt: skip
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    with_secret = ("--identity", "300:0.NA/88.118.8", "--secret-file", str(secret_file))
    with_key = ("--identity", f"{KEY_INDEX}:0.NA/88.118.8", "--key", str(key_file))
    code, out, err = await idnode(
        *with_secret, "create", "88.118.8/CLI-1", "--value", "1:URL=https://cli.example"
    )
    assert code == 0, err
    assert json.loads(out) == {"responseCode": 1, "handle": "88.118.8/CLI-1"}
    code, out, err = await idnode(*with_key, "list", PREFIX)
    assert code == 0, err
    assert "88.118.8/CLI-1" in json.loads(out)["handles"]
    code, out, err = await idnode(*with_key, "delete", "88.118.8/CLI-1")
    assert code == 0, err
    code, out, err = await idnode(*with_key, "delete", "88.118.8/CLI-1")
    assert code == 2 and "responseCode 100" in err
