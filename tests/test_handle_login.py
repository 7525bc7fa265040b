"""Public-key login over HTTP (``Authorization: Handle``, the sessions API, ``idnode put
--key``) against a real server, with keys the tests make. See handle-rest.md §Authentication
and the module docs of resolver.http.handleauth and registry.sessions."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from registry.model.jsonvalues import value_to_json
from registry.model.pubkey import pubkey_from_jwk
from registry.model.values import HS_PUBKEY, Value
from registry.sessions import Sessions
from registry.signing.keys import SigningKey
from resolver.http.handleauth import parse_params
from resolver.remotewrite import answer_header
from tests.conftest import ENT8_ADMIN, ENT9_ADMIN, JSON, Server
from tests.procs import CLI, ROOT, clean_env

ENT8_HANDLE, ENT9_HANDLE = "0.NA/88.118.8", "0.NA/88.118.9"
ID8, ID9 = f"301:{ENT8_HANDLE}", f"301:{ENT9_HANDLE}"
BODY = {"values": [{"index": 1, "type": "URL", "data": "https://example.org/k"}]}
CHALLENGE = re.compile(r'Handle sessionId="([^"]+)", nonce="([^"]+)"(?:, error="([^"]*)")?')


def key_values(key: SigningKey, identity_handle: str) -> list[dict[str, Any]]:
    """The key's HS_PUBKEY at 301 and an HS_ADMIN at 101 that gives 301:HANDLE every right
    (a prefix's admins are whoever its HS_ADMIN values name)."""
    pubkey = value_to_json(Value(301, HS_PUBKEY, pubkey_from_jwk(key.public_jwk())))
    admin = {
        "index": 101,
        "type": "HS_ADMIN",
        "data": {
            "format": "admin",
            "value": {"handle": identity_handle, "index": 301, "permissions": "011111111111"},
        },
    }
    return [pubkey, admin]


async def publish(server: Server, key: SigningKey, handle: str = ENT8_HANDLE) -> None:
    """Publish ``key`` for ``301:handle`` the way an admin would: over the API, with its
    secret."""
    admin = ENT8_ADMIN if handle == ENT8_HANDLE else ENT9_ADMIN
    async with server.session.put(
        server.api(handle) + "?index=301&index=101",
        json={"values": key_values(key, handle)},
        headers={**admin, **JSON},
    ) as r:
        assert r.status in (200, 201), await r.text()


def challenge_of(headers: Any) -> tuple[str, bytes, str | None]:
    """The Handle challenge of a 401: (sessionId, nonce, error); it must be the only one
    unless the client sent no credentials."""
    found = [CHALLENGE.fullmatch(v) for v in headers.getall("WWW-Authenticate", [])]
    matches = [m for m in found if m]
    assert len(matches) == 1, headers.getall("WWW-Authenticate", [])
    sid, nonce, error = matches[0].groups()
    return sid, base64.b64decode(nonce), error


async def put(server: Server, handle: str, auth: str | None) -> tuple[int, Any, Any]:
    headers = {**JSON, **({"Authorization": auth} if auth else {})}
    async with server.session.put(server.api(handle), json=BODY, headers=headers) as r:
        text = await r.text()
        return r.status, (json.loads(text) if text else None), r.headers


async def challenged(server: Server, handle: str = "88.118.8/K-0") -> tuple[str, bytes]:
    """A challenge, as a client gets one: from the 401 of a write without credentials."""
    status, body, headers = await put(server, handle, None)
    assert status == 401 and body["responseCode"] == 402
    assert headers.getall("WWW-Authenticate")[0] == 'Basic realm="handle"'
    sid, nonce, error = challenge_of(headers)
    assert error is None and len(nonce) == 16
    return sid, nonce


@pytest.fixture
def rsa_key() -> SigningKey:
    return SigningKey.generate("RS256")


# ------------------------------------------------------------------ signing in


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
async def test_signed_answer_to_the_401_challenge_writes(server: Server, alg: str) -> None:
    key = SigningKey.generate(alg)
    await publish(server, key)
    sid, nonce = await challenged(server)
    status, body, _ = await put(server, "88.118.8/K-1", answer_header(sid, nonce, ID8, key))
    assert (status, body) == (201, {"responseCode": 1, "handle": "88.118.8/K-1"})
    # The session id alone now stands for the identity.
    status, body, _ = await put(server, "88.118.8/K-2", f'Handle sessionId="{sid}"')
    assert (status, body["responseCode"]) == (201, 1)


async def test_sessions_api_as_reference_clients_use_it(
    server: Server, rsa_key: SigningKey
) -> None:
    await publish(server, rsa_key)
    async with server.session.post(f"{server.url}/api/sessions") as r:
        assert r.status == 201
        assert r.headers["Location"] == "/api/sessions/this"
        created = await r.json()
    sid, nonce = created["sessionId"], base64.b64decode(created["nonce"])
    this = f"{server.url}/api/sessions/this"
    # The answer's fields may come in a JSON body, as some clients send them.
    fields = parse_params(answer_header(sid, nonce, ID8, rsa_key).partition(" ")[2])
    assert fields is not None
    async with server.session.put(this, json=fields) as r:
        signed_in = await r.json()
        assert r.status == 200, signed_in
    assert signed_in["authenticated"] is True and signed_in["id"] == ID8
    assert signed_in["sessionId"] == sid and base64.b64decode(signed_in["nonce"]) != nonce
    by_session = {"Authorization": f'Handle sessionId="{sid}"'}
    async with server.session.get(this, headers=by_session) as r:
        assert (r.status, (await r.json())["authenticated"]) == (200, True)
    status, body, _ = await put(server, "88.118.8/K-3", by_session["Authorization"])
    assert (status, body["responseCode"]) == (201, 1)
    async with server.session.delete(this, headers=by_session) as r:
        assert r.status == 204
    # Logged out: the session is gone, and a write with it is challenged afresh.
    status, body, headers = await put(server, "88.118.8/K-4", by_session["Authorization"])
    assert (status, body) == (401, None)
    new_sid, _, error = challenge_of(headers)
    assert new_sid != sid and error
    async with server.session.get(this, headers=by_session) as r:
        assert r.status == 403


async def test_header_on_sessions_this_and_percent_encoded_id(
    server: Server, rsa_key: SigningKey
) -> None:
    await publish(server, rsa_key)
    async with server.session.post(f"{server.url}/api/sessions/") as r:
        created = await r.json()
    header = answer_header(created["sessionId"], base64.b64decode(created["nonce"]), ID8, rsa_key)
    assert f'id="{quote(ID8, safe="")}"' in header
    async with server.session.post(
        f"{server.url}/api/sessions/this", headers={"Authorization": header}
    ) as r:
        assert r.status == 200
        assert (await r.json())["authenticated"] is True


# ------------------------------------------------------------------ refusals


async def test_wrong_key_is_refused_then_throttled(server: Server, rsa_key: SigningKey) -> None:
    await publish(server, rsa_key)
    stranger = SigningKey.generate("RS256")  # never published
    sid, nonce = await challenged(server)
    free = server.node.throttle.free
    for _ in range(free):
        status, body, headers = await put(
            server, "88.118.8/K-W", answer_header(sid, nonce, ID8, stranger)
        )
        assert (status, body) == (401, None)
        # No Basic offered to a client speaking the Handle scheme; the same session again,
        # with a fresh nonce to answer.
        assert len(headers.getall("WWW-Authenticate")) == 1
        again, nonce, error = challenge_of(headers)
        assert again == sid and error == "Identity not verified"
    status, body, headers = await put(
        server, "88.118.8/K-W", answer_header(sid, nonce, ID8, rsa_key)
    )
    assert status == 429 and int(headers["Retry-After"]) >= 1, body
    async with server.session.get(server.api("88.118.8/K-W")) as r:
        assert r.status == 404


async def test_replayed_answer_is_refused(server: Server, rsa_key: SigningKey) -> None:
    await publish(server, rsa_key)
    sid, nonce = await challenged(server)
    header = answer_header(sid, nonce, ID8, rsa_key)
    status, _, _ = await put(server, "88.118.8/K-R1", header)
    assert status == 201
    status, body, headers = await put(server, "88.118.8/K-R2", header)
    assert (status, body) == (401, None)
    again, fresh, error = challenge_of(headers)
    assert again == sid and fresh != nonce and error == "Identity not verified"
    async with server.session.get(server.api("88.118.8/K-R2")) as r:
        assert r.status == 404


async def test_expired_session_gets_a_fresh_challenge(server: Server, rsa_key: SigningKey) -> None:
    now = [1000.0]
    server.node.sessions = Sessions(ttl=60, clock=lambda: now[0])
    await publish(server, rsa_key)
    sid, nonce = await challenged(server)
    status, _, _ = await put(server, "88.118.8/K-E1", answer_header(sid, nonce, ID8, rsa_key))
    assert status == 201
    now[0] += 59  # in use: its idle time restarts
    status, _, _ = await put(server, "88.118.8/K-E2", f'Handle sessionId="{sid}"')
    assert status == 201
    now[0] += 61
    status, body, headers = await put(server, "88.118.8/K-E3", f'Handle sessionId="{sid}"')
    assert (status, body) == (401, None)
    fresh, nonce, error = challenge_of(headers)
    assert fresh != sid and error
    # The fresh challenge works.
    status, _, _ = await put(server, "88.118.8/K-E3", answer_header(fresh, nonce, ID8, rsa_key))
    assert status == 201


async def test_another_prefix_admin_is_forbidden(server: Server, rsa_key: SigningKey) -> None:
    await publish(server, rsa_key, ENT9_HANDLE)
    sid, nonce = await challenged(server)
    status, body, _ = await put(server, "88.118.8/K-F", answer_header(sid, nonce, ID9, rsa_key))
    assert status == 403 and body["responseCode"] == 401, body
    status, body, _ = await put(server, "88.118.9/K-F", f'Handle sessionId="{sid}"')
    assert (status, body["responseCode"]) == (201, 1)


@pytest.mark.parametrize(
    "change",
    [
        {"type": "HS_SECKEY"},  # an RSA signature is no MAC under the secret
        {"type": "HS_OTHER"},
        {"alg": "MD5"},
        {"cnonce": "!!!"},
        {"id": f"300:{ENT8_HANDLE}"},  # the identity of the secret, not of the key
        {"sessionId": "nope"},
    ],
)
async def test_bad_answers_are_401(
    server: Server, rsa_key: SigningKey, change: dict[str, str]
) -> None:
    await publish(server, rsa_key)
    sid, nonce = await challenged(server)
    fields = parse_params(answer_header(sid, nonce, ID8, rsa_key).partition(" ")[2])
    assert fields is not None
    fields.update({k.lower(): v for k, v in change.items()})
    header = "Handle " + ", ".join(f'{k}="{v}"' for k, v in fields.items())
    status, body, headers = await put(server, "88.118.8/K-B", header)
    assert (status, body) == (401, None)
    challenge_of(headers)


def seckey_header(sid: str, nonce: bytes, secret: bytes, alg: str) -> str:
    """An HS_SECKEY answer as Handle.Net's clients compute it (``Util.doMac``)."""
    import hashlib
    import hmac

    cnonce = os.urandom(16)
    data, extra = nonce + cnonce, ""
    if alg == "HMAC-SHA256":
        mac = hmac.new(secret, data, "sha256").digest()
    elif alg == "SHA1":
        mac = hashlib.sha1(secret + data + secret).digest()
    else:  # PBKDF2-HMAC-SHA1
        salt = os.urandom(16)
        key = hashlib.pbkdf2_hmac("sha1", secret, salt, 10_000, 20)
        mac = hmac.new(key, data, "sha1").digest()
        extra = f', salt="{base64.b64encode(salt).decode()}", iterations="10000", length="160"'
    return (
        f'Handle sessionId="{sid}", id="{quote("300:" + ENT8_HANDLE, safe="")}", '
        f'type="HS_SECKEY", cnonce="{base64.b64encode(cnonce).decode()}", alg="{alg}", '
        f'signature="{base64.b64encode(mac).decode()}"{extra}'
    )


@pytest.mark.parametrize("alg", ["HMAC-SHA256", "SHA1", "PBKDF2-HMAC-SHA1"])
async def test_secret_key_answer(server: Server, alg: str) -> None:
    sid, nonce = await challenged(server)
    status, _, headers = await put(
        server, "88.118.8/K-S", seckey_header(sid, nonce, b"wrong-secret", alg)
    )
    assert status == 401
    _, nonce, _ = challenge_of(headers)
    status, body, _ = await put(
        server, "88.118.8/K-S", seckey_header(sid, nonce, b"ent8-secret", alg)
    )
    assert (status, body["responseCode"]) == (201, 1)


async def test_session_not_yet_signed_into_needs_authentication(server: Server) -> None:
    sid, _ = await challenged(server)
    status, body, headers = await put(server, "88.118.8/K-N", f'Handle sessionId="{sid}"')
    assert (status, body["responseCode"]) == (401, 402)
    assert len(headers.getall("WWW-Authenticate")) == 1  # no Basic for a Handle client
    assert challenge_of(headers)[0] == sid


# ------------------------------------------------------------------ the CLI


async def idnode(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``idnode ARGS`` without blocking the loop the test server runs on."""
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        cwd=ROOT,
        env=clean_env(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_put_and_delete_with_key(server: Server, tmp_path: Path) -> None:
    keyfile = tmp_path / "login.pem"
    passphrase = {"IDNODE_LOGIN_KEY_PASSPHRASE": "pass phrase"}
    code, out, err = await idnode("keys", "login", "--out", str(keyfile), env=passphrase)
    assert code == 0, err
    assert os.stat(keyfile).st_mode & 0o777 == 0o600
    assert b"ENCRYPTED" in keyfile.read_bytes()
    (published,) = json.loads(out)["values"]
    assert published["index"] == 301 and published["type"] == HS_PUBKEY
    key = SigningKey.load(keyfile, b"pass phrase")
    assert published["data"] == {"format": "key", "value": key.public_jwk()}
    await publish(server, key)

    remote = ("--server", server.url, "--identity", ID8, "--key", str(keyfile))
    code, out, err = await idnode(
        "put", "88.118.8/CLI-1", "--value", "1:URL=https://example.org/c", *remote, env=passphrase
    )
    assert (code, out.strip()) == (0, "created 88.118.8/CLI-1"), err
    async with server.session.get(server.api("88.118.8/CLI-1") + "?index=1") as r:
        assert (await r.json())["values"][0]["data"]["value"] == "https://example.org/c"
    code, out, err = await idnode("delete", "88.118.8/CLI-1", *remote, env=passphrase)
    assert (code, out.strip()) == (0, "deleted 88.118.8/CLI-1"), err
    async with server.session.get(server.api("88.118.8/CLI-1")) as r:
        assert r.status == 404

    # Another identity's key, and half the flags: clear refusals, nothing written.
    stranger = tmp_path / "stranger.pem"
    SigningKey.generate("EdDSA").save(stranger, None)
    code, _, err = await idnode(
        "put", "88.118.8/CLI-2", "--value", "URL=x", *remote[:4], "--key", str(stranger)
    )
    assert code == 2 and "signing in as 301:0.NA/88.118.8 failed" in err, err
    code, _, err = await idnode("put", "88.118.8/CLI-2", "--value", "URL=x", *remote[:2])
    assert code == 2 and "--server, --identity and --key together" in err
    async with server.session.get(server.api("88.118.8/CLI-2")) as r:
        assert r.status == 404


async def test_client_signs_in_again_when_its_session_is_gone(
    server: Server, rsa_key: SigningKey
) -> None:
    from resolver.remotewrite import RemoteNode

    await publish(server, rsa_key)
    remote = RemoteNode(server.session, server.url, ID8, rsa_key)
    values = [Value(1, "URL", b"https://example.org/again")]
    status, _ = await remote.put("88.118.8/K-A", values, add=False, overwrite=True)
    first = remote.session_id
    assert status == 201 and first is not None
    # As if the session expired, or the next request reached another worker.
    assert server.node.sessions.end(first)
    await remote.delete("88.118.8/K-A", ())
    assert remote.session_id not in (None, first)
    async with server.session.get(server.api("88.118.8/K-A")) as r:
        assert r.status == 404


# ------------------------------------------------------------------ the pieces alone


def test_handle_algorithm_names() -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa

    from registry.signing._b64 import uint_to_b64url
    from registry.signing.handlesig import UnsupportedSignature, verify_pubkey_signature
    from registry.signing.keys import public_jwk_of

    data = os.urandom(32)
    rsa_priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_blob = pubkey_from_jwk(public_jwk_of(rsa_priv.public_key()))
    sha1 = rsa_priv.sign(data, padding.PKCS1v15(), hashes.SHA1())
    sha256 = rsa_priv.sign(data, padding.PKCS1v15(), hashes.SHA256())
    for alg in ("SHA1", "sha-1", "SHA", "SHA1withRSA"):
        assert verify_pubkey_signature(rsa_blob, alg, data, sha1), alg
    for alg in ("SHA256", "SHA-256", "SHA2", "SHA256withRSA"):
        assert verify_pubkey_signature(rsa_blob, alg, data, sha256), alg
    assert not verify_pubkey_signature(rsa_blob, "SHA256", data, sha1)
    assert not verify_pubkey_signature(rsa_blob, "SHA256", data + b"x", sha256)
    for alg in ("MD5", "SHA256withDSA", "EdDSA", ""):
        with pytest.raises(UnsupportedSignature):
            verify_pubkey_signature(rsa_blob, alg, data, sha256)

    dsa_priv = dsa.generate_private_key(2048)
    nums = dsa_priv.public_key().public_numbers()
    p, q, g = nums.parameter_numbers.p, nums.parameter_numbers.q, nums.parameter_numbers.g
    members = {"y": nums.y, "p": p, "q": q, "g": g}
    dsa_jwk = {"kty": "DSA", **{k: uint_to_b64url(v) for k, v in members.items()}}
    dsa_blob = pubkey_from_jwk(dsa_jwk)
    assert verify_pubkey_signature(dsa_blob, "SHA256", data, dsa_priv.sign(data, hashes.SHA256()))
    assert verify_pubkey_signature(
        dsa_blob, "SHA1withDSA", data, dsa_priv.sign(data, hashes.SHA1())
    )

    ec_priv = ec.generate_private_key(ec.SECP256R1())
    ec_blob = pubkey_from_jwk(public_jwk_of(ec_priv.public_key()))
    der = ec_priv.sign(data, ec.ECDSA(hashes.SHA256()))  # Java's SHA256withECDSA: DER
    assert verify_pubkey_signature(ec_blob, "SHA256withECDSA", data, der)
    with pytest.raises(UnsupportedSignature):
        verify_pubkey_signature(ec_blob, "SHA1", data, der)

    short = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    short_blob = pubkey_from_jwk(public_jwk_of(short.public_key()))
    with pytest.raises(UnsupportedSignature):
        verify_pubkey_signature(
            short_blob, "SHA1", data, short.sign(data, padding.PKCS1v15(), hashes.SHA1())
        )


def test_session_table_bounds_and_expiry() -> None:
    from registry.authz import Principal
    from registry.model.admin import AdminRef

    now = [0.0]
    table = Sessions(
        ttl=100, challenge_ttl=10, max_challenges=3, max_sessions=2, clock=lambda: now[0]
    )
    who = Principal(AdminRef(301, ENT8_HANDLE))
    signed = [table.challenge() for _ in range(2)]
    for s in signed:
        table.authenticate(s, who)
    flood = [table.challenge() for _ in range(50)]  # anonymous 401s
    assert all(table.get(s.id) is s for s in signed)  # never pushed out by challenges
    assert len(table) == 2 + 3 and table.get(flood[0].id) is None
    nonce = flood[-1].nonce
    assert table.take_nonce(flood[-1]) == nonce and flood[-1].nonce != nonce
    now[0] = 11
    assert table.get(flood[-1].id) is None  # an unanswered challenge lapses
    assert table.get(signed[0].id) is signed[0]  # (restarts its idle time)
    now[0] = 105
    assert table.get(signed[1].id) is None and table.get(signed[0].id) is signed[0]
    third = table.challenge()
    table.authenticate(third, who)
    assert table.end(signed[0].id) and not table.end(signed[0].id)


def test_authorization_header_parsing() -> None:
    from resolver.http.handleauth import challenge, parse_authorization

    got = parse_authorization(
        'handle SESSIONID=abc,id="300%3A0.NA%2F88.118.8" , type=HS_PUBKEY,cnonce="a\\"b"'
    )
    assert got is not None and got.session_id == "abc" and got.get("id") == "300:0.NA/88.118.8"
    assert got.get("cnonce") == 'a"b' and got.signing and "alg" in " ".join(got.missing)
    assert parse_authorization('Handle sessionId="abc"') is not None
    for bad in ("Handle", 'Handle sessionId="abc" id="x"', "Handle =x", "Basic abc", 'Handle a="'):
        assert parse_authorization(bad) is None, bad
    assert challenge("s", b"\0" * 16, 'bad "x"\r\n') == (
        'Handle sessionId="s", nonce="AAAAAAAAAAAAAAAAAAAAAA==", error="bad \\"x\\""'
    )
