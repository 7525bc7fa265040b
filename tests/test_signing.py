"""registry.signing: keys, JWS, digests, certificates, the Signer and the offline verifier.

The PKI used throughout: a top-level root ``300:0.NA/88`` (self-issued HS_CERT in 0.NA/88,
``derivedPrefixes`` on 0.NA/88) certifies the node ``300:0.NA/88.118`` (HS_CERT in
0.NA/88.118, ``derivedPrefixes`` + ``handlesUnderThisPrefix`` on 0.NA/88.118), which signs.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from registry.model.identifiers import handle_key
from registry.model.values import PERM_DEFAULT, Reference, Value
from registry.model.wire import encode_value
from registry.signing import jws
from registry.signing._b64 import b64url_decode, b64url_encode
from registry.signing.claims import (
    HS_CERT,
    HS_SIGNATURE,
    Signer,
    first_free_index,
    issue_cert,
    sign_record,
    signature_claims,
    signing_rate,
)
from registry.signing.digests import signed_values, value_digest
from registry.signing.keys import (
    ALGORITHMS,
    JwkError,
    KeyFileError,
    SigningKey,
    jwk_thumbprint,
    public_key_from_jwk,
    verify_signature,
)
from registry.signing.perms import permits
from registry.signing.verify import Report, ValueStatus, verify_record

NOW = 1_700_000_000
YEAR = 365 * 86400
DAY = 86400
ROOT = "300:0.NA/88"
NODE = "300:0.NA/88.118"
HANDLE = "88.118.8/A"
NODE_PERMS = [("0.NA/88.118", "derivedPrefixes"), ("0.NA/88.118", "handlesUnderThisPrefix")]


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {alg: SigningKey.generate(alg) for alg in ALGORITHMS}


@pytest.fixture(scope="module")
def other() -> SigningKey:
    return SigningKey.generate()


def record() -> list[Value]:
    return [
        Value(1, "URL", b"https://example.org/a"),
        Value(2, "EMAIL", b"owner@example.org", ttl=3600),
        Value(3, "SECRET", b"admins only", permissions=0b1100),
        Value(100, "HS_ADMIN", b"\x00\x0f" + bytes(20), references=(Reference("0.NA/88", 300),)),
    ]


class World:
    """Records by handle (what ``fetch`` answers) plus the keys of a two-level PKI."""

    def __init__(self, root: SigningKey, node: SigningKey) -> None:
        self.root, self.node = root, node
        self.records: dict[str, list[Value]] = {}
        self.put_cert(
            "0.NA/88", self.cert(ROOT, root, ROOT, root, [("0.NA/88", "derivedPrefixes")])
        )
        self.put_cert("0.NA/88.118", self.cert(ROOT, root, NODE, node, NODE_PERMS))

    @staticmethod
    def cert(
        iss: str,
        iss_key: SigningKey,
        sub: str,
        sub_key: SigningKey,
        perms: Sequence[tuple[str, str]],
        now: int = NOW - 100,
        validity: int = YEAR,
    ) -> str:
        return issue_cert(iss, iss_key, sub, sub_key.public_jwk(), perms, now, validity)

    def put_cert(self, where: str, text: str, index: int = 700) -> None:
        values = [v for v in self.records.get(handle_key(where), []) if v.index != index]
        self.records[handle_key(where)] = [*values, Value(index, HS_CERT, text.encode())]

    async def fetch(self, handle: str) -> Sequence[Value] | None:
        return self.records.get(handle_key(handle))

    def sign(self, handle: str = HANDLE, values: Sequence[Value] | None = None) -> list[Value]:
        signer = Signer(self.node, NODE, DAY)
        return list(signer.sign_values(handle, record() if values is None else values, NOW))

    async def verify(
        self,
        values: Sequence[Value],
        handle: str = HANDLE,
        *,
        now: int = NOW,
        roots: Sequence[dict[str, Any]] | None = None,
    ) -> Report:
        trust = [self.root.public_jwk()] if roots is None else roots
        return await verify_record(handle, values, fetch=self.fetch, trust_roots=trust, now=now)


@pytest.fixture
def world(keys: dict[str, SigningKey]) -> World:
    return World(keys["EdDSA"], keys["ES256"])


def sig_value(text: str, index: int = 400) -> Value:
    return Value(index, HS_SIGNATURE, text.encode())


def replace(values: list[Value], at: int, **changes: Any) -> list[Value]:
    return [dataclasses.replace(v, **changes) if v.index == at else v for v in values]


def assert_fails(report: Report, fragment: str) -> None:
    assert not report.ok
    assert any(fragment in r for r in report.reasons), report.reasons


# --- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ALGORITHMS)
async def test_round_trip_per_algorithm(keys: dict[str, SigningKey], alg: str) -> None:
    w = World(keys[alg], keys[alg])
    values = w.sign()
    report = await w.verify(values)
    assert report.ok, report.reasons
    assert report.reasons == []
    assert report.values == {
        1: ValueStatus.VERIFIED,
        2: ValueStatus.VERIFIED,
        3: ValueStatus.NOT_PUBLIC,
        100: ValueStatus.VERIFIED,
        400: ValueStatus.SIGNATURE,
    }
    (sig,) = report.signatures
    assert sig.trusted and sig.reason is None
    assert (sig.issuer, sig.subject, sig.chain) == (NODE, HANDLE, [NODE, ROOT])
    assert (sig.not_before, sig.expires) == (NOW - 600, NOW + DAY)
    assert sig.verified == [1, 2, 100] and sig.mismatched == [] and sig.missing == []
    assert "trusted" in str(sig)


async def test_two_level_chain_covers_derived_prefixes_and_their_handles(world: World) -> None:
    for handle in ("88.118.8/x", "0.NA/88.118.8", "88.118/y", "88.118.8.1/z"):
        report = await world.verify(world.sign(handle), handle)
        assert report.ok, (handle, report.reasons)


async def test_filtered_answer_verifies_the_values_present(world: World) -> None:
    values = world.sign()
    report = await world.verify([values[0], values[-1]])
    assert report.ok, report.reasons
    assert report.values == {1: ValueStatus.VERIFIED, 400: ValueStatus.SIGNATURE}
    assert report.signatures[0].missing == [2, 100]


async def test_timestamps_are_not_signed(world: World) -> None:
    values = replace(world.sign(), 1, timestamp=NOW + 5)
    assert (await world.verify(values)).ok


# --- tampering -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"type": "URL2"},
        {"data": b"https://evil.example/a"},
        {"ttl": 1},
        {"ttl_type": 1},
        {"permissions": 0b1111},
        {"references": (Reference("0.NA/88", 301),)},
    ],
    ids=lambda c: next(iter(c)),
)
async def test_changing_a_signed_field_breaks_that_value(world: World, change: Any) -> None:
    report = await world.verify(replace(world.sign(), 1, **change))
    assert_fails(report, "digest mismatch for index 1")
    assert report.values[1] is ValueStatus.DIGEST_MISMATCH
    assert report.values[2] is ValueStatus.VERIFIED
    assert report.signatures[0].trusted  # the signature itself is fine
    assert report.signatures[0].mismatched == [1]


async def test_moved_value_has_no_digest(world: World) -> None:
    report = await world.verify(replace(world.sign(), 2, index=5))
    assert_fails(report, "no digest for index 5")
    assert report.values[5] is ValueStatus.UNSIGNED


async def test_added_value_is_unsigned(world: World) -> None:
    report = await world.verify([*world.sign(), Value(7, "URL", b"https://added.example")])
    assert_fails(report, "no digest for index 7")
    assert report.values[1] is ValueStatus.VERIFIED


async def test_dropped_digest(world: World) -> None:
    claims = signature_claims(HANDLE, record(), NODE, NOW, DAY)
    claims["digests"]["digests"] = [d for d in claims["digests"]["digests"] if d["index"] != 2]
    values = [*record(), sig_value(jws.encode({}, claims, world.node))]
    report = await world.verify(values)
    assert_fails(report, "no digest for index 2")
    assert report.values[2] is ValueStatus.UNSIGNED
    assert report.values[1] is ValueStatus.VERIFIED


async def test_payload_edited_after_signing_is_a_bad_signature(world: World) -> None:
    values = world.sign()
    head, body, sig = values[-1].data.decode().split(".")
    payload = orjson.loads(b64url_decode(body))
    payload["digests"]["digests"].pop()
    forged = f"{head}.{b64url_encode(orjson.dumps(payload))}.{sig}"
    report = await world.verify([*values[:-1], sig_value(forged)])
    assert_fails(report, "bad signature: does not verify with the key of 300:0.NA/88.118")
    assert report.values[1] is ValueStatus.UNTRUSTED


async def test_signature_swapped_between_records(world: World) -> None:
    other = world.sign("88.118.8/OTHER")
    report = await world.verify([*record(), other[-1]])
    assert_fails(report, "signature is for 88.118.8/OTHER, not 88.118.8/A")
    assert report.values[1] is ValueStatus.UNTRUSTED


async def test_subject_comparison_ignores_ascii_case(world: World) -> None:
    assert (await world.verify(world.sign("88.118.8/a"), "88.118.8/A")).ok


# --- validity --------------------------------------------------------------------------------


async def test_expired_signature(world: World) -> None:
    report = await world.verify(world.sign(), now=NOW + DAY)
    assert_fails(report, "signature expired at 2023-11-15T22:13:20Z")
    assert (await world.verify(world.sign(), now=NOW + DAY - 1)).ok


async def test_signature_not_yet_valid(world: World) -> None:
    report = await world.verify(world.sign(), now=NOW - 601)
    assert_fails(report, "signature not valid before 2023-11-14T22:03:20Z")
    assert (await world.verify(world.sign(), now=NOW - 600)).ok


async def test_expired_certificate(world: World) -> None:
    world.put_cert(
        "0.NA/88.118",
        world.cert(ROOT, world.root, NODE, world.node, NODE_PERMS, now=NOW - 2 * DAY, validity=DAY),
    )
    assert_fails(await world.verify(world.sign()), "certificate 300:0.NA/88.118 expired at")


# --- permissions -----------------------------------------------------------------------------

PERM_CASES = [
    # perm, perm handle, covered, not covered
    ("everything", "0.NA/0.NA", ["99.1/x", "0.NA/99"], []),
    ("thisHandle", "88.118.8/x", ["88.118.8/x", "88.118.8/X"], ["88.118.8/y", "0.NA/88.118.8"]),
    ("thisHandle", "0.NA/88.118", ["0.NA/88.118", "88.118/x"], ["0.NA/88.118.8", "88.118.8/x"]),
    (
        "derivedPrefixes",
        "0.NA/88.118",
        ["0.NA/88.118.8", "88.118.8/x", "88.118.8.1/x", "0.na/88.118.9"],
        ["0.NA/88.118", "88.118/x", "88.1180/x", "0.NA/88.1180", "88.119/x"],
    ),
    (
        "handlesUnderThisPrefix",
        "0.NA/88.118",
        ["88.118/x", "88.118/Y"],
        ["0.NA/88.118", "88.118.8/x", "88.1180/x"],
    ),
    ("noSuchPerm", "0.NA/88.118", [], ["88.118/x"]),
]


@pytest.mark.parametrize(("perm", "where", "inside", "outside"), PERM_CASES)
def test_permission_scopes(perm: str, where: str, inside: list[str], outside: list[str]) -> None:
    for handle in inside:
        assert permits([(where, perm)], handle), handle
    for handle in outside:
        assert not permits([(where, perm)], handle), handle


@pytest.mark.parametrize(("perm", "where", "inside", "outside"), PERM_CASES[:5])
async def test_certificate_permission_end_to_end(
    world: World, perm: str, where: str, inside: list[str], outside: list[str]
) -> None:
    world.put_cert(
        "0.NA/88", world.cert(ROOT, world.root, ROOT, world.root, [("0.NA/0.NA", "everything")])
    )
    world.put_cert("0.NA/88.118", world.cert(ROOT, world.root, NODE, world.node, [(where, perm)]))
    assert (await world.verify(world.sign(inside[0]), inside[0])).ok
    if outside:
        report = await world.verify(world.sign(outside[0]), outside[0])
        assert_fails(report, f"certificate 300:0.NA/88.118 does not permit signing {outside[0]}")


async def test_every_link_must_cover_the_handle(world: World) -> None:
    """Handle's rule: the root's perms (derivedPrefixes on 0.NA/88) bound what it certifies."""
    world.put_cert(
        "0.NA/88.118", world.cert(ROOT, world.root, NODE, world.node, [("0.NA/0.NA", "everything")])
    )
    report = await world.verify(world.sign("99.1/x"), "99.1/x")
    assert_fails(report, "certificate 300:0.NA/88 does not permit signing 99.1/x")
    assert not any("300:0.NA/88.118 does not" in r for r in report.reasons)


# --- chains ----------------------------------------------------------------------------------


async def test_untrusted_root(world: World, other: SigningKey) -> None:
    report = await world.verify(world.sign(), roots=[other.public_jwk()])
    assert_fails(
        report, f"chain ends at an untrusted root 300:0.NA/88 (key thumbprint {world.root.kid})"
    )
    assert report.values[1] is ValueStatus.UNTRUSTED


async def test_certificate_signed_by_the_wrong_key(world: World, other: SigningKey) -> None:
    world.put_cert("0.NA/88.118", world.cert(ROOT, other, NODE, world.node, NODE_PERMS))
    report = await world.verify(world.sign())
    assert_fails(
        report,
        "bad signature on certificate 300:0.NA/88.118: does not verify with the key of 300:0.NA/88",
    )


async def test_certificate_with_corrupted_signature(world: World) -> None:
    text = world.cert(ROOT, world.root, NODE, world.node, NODE_PERMS)
    head, body, sig = text.split(".")
    flipped = "A" if sig[0] != "A" else "B"
    world.put_cert("0.NA/88.118", f"{head}.{body}.{flipped}{sig[1:]}")
    assert_fails(await world.verify(world.sign()), "bad signature on certificate 300:0.NA/88.118")


async def test_signature_by_a_key_the_certificate_does_not_name(world: World) -> None:
    stranger = SigningKey.generate("ES256")  # the certified key's type, another key
    values = list(Signer(stranger, NODE, DAY).sign_values(HANDLE, record(), NOW))
    assert_fails(
        await world.verify(values), "bad signature: does not verify with the key of 300:0.NA/88.118"
    )


async def test_loop_in_chain(world: World) -> None:
    x, y = "300:0.NA/77.1", "300:0.NA/77.2"
    world.put_cert(
        "0.NA/77.1", world.cert(y, world.root, x, world.node, [("0.NA/0.NA", "everything")])
    )
    world.put_cert(
        "0.NA/77.2", world.cert(x, world.node, y, world.root, [("0.NA/0.NA", "everything")])
    )
    values = list(Signer(world.node, x, DAY).sign_values(HANDLE, record(), NOW))
    report = await world.verify(values)
    assert_fails(report, "loop in certificate chain at 300:0.NA/77.1")
    assert report.signatures[0].chain == [x, y]


async def test_chain_too_long(world: World) -> None:
    ids = [f"300:0.NA/66.{i}" for i in range(12)]
    for i, sub in enumerate(ids):
        iss = ids[i + 1] if i + 1 < len(ids) else ROOT
        world.put_cert(
            sub.split(":")[1],
            world.cert(iss, world.root, sub, world.root, [("0.NA/0.NA", "everything")]),
        )
    values = list(Signer(world.root, ids[0], DAY).sign_values(HANDLE, record(), NOW))
    assert_fails(await world.verify(values), "certificate chain longer than 10")


async def test_missing_certificate_and_unresolvable_issuer(world: World) -> None:
    values = list(Signer(world.node, "300:0.NA/88.118.9", DAY).sign_values(HANDLE, record(), NOW))
    assert_fails(
        await world.verify(values),
        "cannot resolve 0.NA/88.118.9 for the certificate of 300:0.NA/88.118.9: not found",
    )
    world.records[handle_key("0.NA/88.118.9")] = [Value(1, "URL", b"x")]
    assert_fails(
        await world.verify(values), "no certificate for 300:0.NA/88.118.9 in 0.NA/88.118.9"
    )


async def test_fetch_errors_are_reasons(world: World) -> None:
    async def broken(handle: str) -> Sequence[Value] | None:
        raise RuntimeError("connection refused")

    report = await verify_record(
        HANDLE, world.sign(), fetch=broken, trust_roots=[world.root.public_jwk()], now=NOW
    )
    assert_fails(report, "RuntimeError: connection refused")


async def test_latest_certificate_about_the_subject_is_used(
    world: World, other: SigningKey
) -> None:
    """Key rotation at the same identity: the newest HS_CERT (by iat) wins, as in Handle."""
    old = world.cert(ROOT, world.root, NODE, other, NODE_PERMS, now=NOW - 1000)
    world.put_cert("0.NA/88.118", old, index=699)
    assert (await world.verify(world.sign())).ok


async def test_explicit_chain_of_value_references(world: World) -> None:
    """The keyring layout: root and signing key certified in one handle (0.NA/88.118)."""
    root_id, signer_id = "600:0.NA/88.118", "601:0.NA/88.118"
    everything = [("0.NA/0.NA", "everything")]
    world.put_cert(
        "0.NA/88.118", world.cert(root_id, world.root, root_id, world.root, everything), 700
    )
    world.put_cert(
        "0.NA/88.118", world.cert(root_id, world.root, signer_id, world.node, NODE_PERMS), 701
    )
    implicit = list(Signer(world.node, signer_id, DAY).sign_values(HANDLE, record(), NOW))
    assert (await world.verify(implicit)).ok
    chain = ["701:0.NA/88.118", "700:0.NA/88.118"]
    explicit = list(
        Signer(world.node, signer_id, DAY, chain=chain).sign_values(HANDLE, record(), NOW)
    )
    assert jws.decode(explicit[-1].data.decode()).payload["chain"] == chain
    report = await world.verify(explicit)
    assert report.ok, report.reasons
    assert report.signatures[0].chain == [signer_id, root_id]
    wrong = list(
        Signer(world.node, signer_id, DAY, chain=["700:0.NA/88.118"]).sign_values(
            HANDLE, record(), NOW
        )
    )
    assert_fails(
        await world.verify(wrong),
        "certificate at 700:0.NA/88.118 is for 600:0.NA/88.118, not 601:0.NA/88.118",
    )


async def test_several_signatures(world: World, other: SigningKey) -> None:
    """A value is verified when any trusted signature covers it; the others are reported."""
    ours = world.sign()
    theirs = Signer(other, "300:0.NA/55", DAY).sign_values(HANDLE, record(), NOW)[-1]
    report = await world.verify([*ours, dataclasses.replace(theirs, index=401)])
    assert report.ok
    assert [s.trusted for s in report.signatures] == [True, False]
    assert (
        report.signatures[1].reason
        == "cannot resolve 0.NA/55 for the certificate of 300:0.NA/55: not found"
    )
    assert any(r.startswith("HS_SIGNATURE 401: cannot resolve") for r in report.reasons)


async def test_no_signature(world: World) -> None:
    report = await world.verify(record())
    assert report.reasons == ["no HS_SIGNATURE value"]
    assert not report.ok and report.values[1] is ValueStatus.UNSIGNED


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xfe", "signature is not UTF-8 text"),
        (
            b"not a jws",
            "malformed signature: JWS has 1 parts, not 3 (header.payload.signature)",
        ),
        (b"e30.e30.AA", "malformed signature: JWS header has no 'alg'"),
    ],
)
async def test_malformed_signature_values(world: World, data: bytes, reason: str) -> None:
    report = await world.verify([*record(), Value(400, HS_SIGNATURE, data)])
    assert report.signatures[0].reason == reason
    assert_fails(report, reason)


async def test_malformed_payload_and_digest_alg(world: World) -> None:
    claims = signature_claims(HANDLE, record(), NODE, NOW, DAY)
    del claims["sub"]
    report = await world.verify([*record(), sig_value(jws.encode({}, claims, world.node))])
    assert_fails(report, "malformed signature payload: 'sub' is missing or not a string")
    claims = signature_claims(HANDLE, record(), NODE, NOW, DAY)
    claims["digests"]["alg"] = "MD5"
    report = await world.verify([*record(), sig_value(jws.encode({}, claims, world.node))])
    assert_fails(report, "unsupported digest algorithm 'MD5'")


@pytest.mark.parametrize(
    ("alg", "reason"),
    [
        ("none", "signature: unsupported algorithm 'none'"),
        ("HS256", "signature: unsupported algorithm 'HS256'"),
        (
            "RS256",
            "signature: key of 300:0.NA/88.118 unusable: algorithm RS256 does not fit a EC key",
        ),
    ],
)
async def test_algorithm_must_fit_the_certified_key(world: World, alg: str, reason: str) -> None:
    claims = signature_claims(HANDLE, record(), NODE, NOW, DAY)
    signing_input = (
        b64url_encode(orjson.dumps({"alg": alg})) + "." + b64url_encode(orjson.dumps(claims))
    )
    text = signing_input + "." + b64url_encode(world.node.sign(signing_input.encode()))
    assert_fails(await world.verify([*record(), sig_value(text)]), reason)


# --- the Signer ------------------------------------------------------------------------------


def test_signer_appends_one_signature_at_the_first_free_index(keys: dict[str, SigningKey]) -> None:
    signer = Signer(keys["EdDSA"], NODE, DAY)
    values = [*record(), Value(400, "URL", b"https://example.org/400")]
    out = signer.sign_values(HANDLE, values, NOW)
    assert list(out[:-1]) == values
    sig = out[-1]
    assert (sig.index, sig.type, sig.ttl, sig.permissions) == (
        401,
        HS_SIGNATURE,
        86400,
        PERM_DEFAULT,
    )
    again = signer.sign_values(HANDLE, out, NOW + 1)  # its own old signature is replaced
    assert [v.index for v in again] == [1, 2, 3, 100, 400, 401]
    assert again[-1].data != sig.data


def test_signer_keeps_others_and_drops_its_own_issuers(keys: dict[str, SigningKey]) -> None:
    old = Signer(keys["ES256"], "601:0.NA/88.118", DAY).sign_values(HANDLE, record(), NOW)
    foreign = Signer(keys["ES256"], "300:0.NA/55", DAY).sign_values(HANDLE, record(), NOW)[-1]
    values = [*old, dataclasses.replace(foreign, index=401)]
    new = Signer(keys["EdDSA"], "602:0.NA/88.118", DAY, own_issuers=["601:0.na/88.118"])
    out = new.sign_values(HANDLE, values, NOW)
    issuers = [jws.decode(v.data.decode()).payload["iss"] for v in out if v.type == HS_SIGNATURE]
    assert issuers == ["300:0.NA/55", "602:0.NA/88.118"]
    assert out[-1].index == 400
    assert Signer(keys["EdDSA"], "602:0.NA/88.118", DAY).owns(out[-1])


def test_signer_adds_nothing_without_public_values(keys: dict[str, SigningKey]) -> None:
    signer = Signer(keys["EdDSA"], NODE, DAY)
    signed = signer.sign_values(HANDLE, record(), NOW)
    private = [v for v in signed if not v.public_read or v.type == HS_SIGNATURE]
    assert signer.sign_values(HANDLE, private, NOW) == (record()[2],)


def test_signer_refuses_a_bad_issuer(keys: dict[str, SigningKey]) -> None:
    with pytest.raises(ValueError, match="not an identity"):
        Signer(keys["EdDSA"], "0.NA/88.118", DAY)


def test_first_free_index() -> None:
    assert first_free_index([]) == 400
    assert (
        first_free_index([Value(400, "A", b""), Value(401, "A", b""), Value(403, "A", b"")]) == 402
    )
    assert first_free_index([Value(1, "A", b"")], base=1) == 2


def test_signing_rate_is_a_positive_number() -> None:
    assert signing_rate("EdDSA", 3) > 0


# --- formats Handle.Net reads ----------------------------------------------------------------


def test_signature_payload_as_handle_writes_it(keys: dict[str, SigningKey]) -> None:
    text = sign_record(HANDLE, record(), keys["RS256"], NODE, NOW, DAY)
    token = jws.decode(text)
    assert text.startswith("eyJhbGciOiJSUzI1NiJ9.")  # exactly {"alg":"RS256"}
    assert token.header == {"alg": "RS256"}
    assert list(token.payload) == ["digests", "iss", "sub", "exp", "nbf", "iat"]
    assert token.payload["iss"] == NODE and token.payload["sub"] == HANDLE
    assert (token.payload["iat"], token.payload["nbf"], token.payload["exp"]) == (
        NOW,
        NOW - 600,
        NOW + DAY,
    )
    digests = token.payload["digests"]
    assert digests["alg"] == "SHA-256"
    assert [d["index"] for d in digests["digests"]] == [1, 2, 100]  # public, not HS_SIGNATURE
    assert digests["digests"][0] == {"index": 1, "digest": value_digest(record()[0])}
    raw = b64url_decode(text.split(".")[1])
    assert b'{"digests":{"alg":"SHA-256","digests":[{"index":1,"digest":"' in raw  # compact


@pytest.mark.parametrize("chain", [None, ["700:0.NA/88.118", "0.NA/88"]])
@pytest.mark.parametrize("handle", [HANDLE, 'ä/"\\ \u2028\x01', "88.118.8/" + "x" * 300])
def test_signature_payload_is_the_claims_serialised(
    keys: dict[str, SigningKey], chain: list[str] | None, handle: str
) -> None:
    """The payload the signer assembles from fixed parts is, byte for byte, what
    serialising the claims would give (the form Handle.Net reads)."""
    values = [*record(), Value(400, "HS_SIGNATURE", b"old"), Value(2**31 - 1, "X", b"")]
    signer = Signer(keys["EdDSA"], NODE, DAY, chain=chain)
    signed = [(v.index, encode_value(v)) for v in signed_values(values)]
    claims = signature_claims(handle, values, NODE, NOW, DAY, chain)
    assert signer.payload_json(handle, signed, NOW) == orjson.dumps(claims)
    sig = signer.signature(handle, values, NOW)
    assert sig is not None
    assert jws.decode(sig.data.decode()).payload == claims
    assert (
        jws.decode(sig.data.decode()).signing_input.split(b".")[1]
        == b64url_encode(orjson.dumps(claims)).encode()
    )


def test_value_digest_is_sha256_of_the_wire_form_without_index_and_timestamp() -> None:
    import base64
    import hashlib

    v = Value(1, "URL", b"https://example.org/a", timestamp=12345)
    body = (
        b"\x00"
        + (86400).to_bytes(4, "big")
        + b"\x0e"
        + (3).to_bytes(4, "big")
        + b"URL"
        + (21).to_bytes(4, "big")
        + b"https://example.org/a"
        + bytes(4)
    )
    assert value_digest(v) == base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert value_digest(v).endswith("=") and len(value_digest(v)) == 44  # standard, padded
    assert value_digest(dataclasses.replace(v, index=9, timestamp=0)) == value_digest(v)


def test_signed_values_are_public_and_not_signatures() -> None:
    values = [*record(), Value(400, "hs_signature", b"x"), Value(401, "HS_CERT", b"y")]
    assert [v.index for v in signed_values(values)] == [1, 2, 100, 401]


def test_certificate_payload_as_handle_writes_it(keys: dict[str, SigningKey]) -> None:
    jwk = keys["RS256"].public_jwk()
    text = issue_cert(ROOT, keys["EdDSA"], NODE, jwk, NODE_PERMS, NOW, YEAR)
    payload = jws.decode(text).payload
    assert list(payload) == ["perms", "publicKey", "iss", "sub", "exp", "nbf", "iat"]
    assert payload["perms"][0] == {"handle": "0.NA/88.118", "perm": "derivedPrefixes"}
    assert payload["publicKey"] == {"kty": "RSA", "n": jwk["n"], "e": "AQAB"}  # no alg, no kid
    with pytest.raises(ValueError, match="unknown permission"):
        issue_cert(ROOT, keys["EdDSA"], NODE, jwk, [("0.NA/88", "all")], NOW, YEAR)
    with pytest.raises(JwkError):
        issue_cert(
            ROOT, keys["EdDSA"], NODE, {"kty": "RSA", "n": "AQAB", "e": "AQAB"}, [], NOW, YEAR
        )


# --- JWS -------------------------------------------------------------------------------------


def b64j(obj: object) -> str:
    return b64url_encode(orjson.dumps(obj))


GOOD_HEAD, GOOD_BODY = b64j({"alg": "EdDSA"}), b64j({"iss": "x"})


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "JWS has 1 parts, not 3"),
        (f"{GOOD_HEAD}.{GOOD_BODY}", "JWS has 2 parts, not 3"),
        (f"{GOOD_HEAD}.{GOOD_BODY}.AA.AA", "JWS has 4 parts, not 3"),
        (f"{GOOD_HEAD}=.{GOOD_BODY}.AA", "JWS header is not unpadded base64url"),
        (f"{GOOD_HEAD}.{GOOD_BODY}.A+/A", "JWS signature is not unpadded base64url"),
        (f"{GOOD_HEAD}.{GOOD_BODY}.A", "JWS signature is not unpadded base64url"),
        (f"{GOOD_HEAD}.{GOOD_BODY}.AB", "JWS signature is not canonical base64url"),
        (f"{GOOD_HEAD}.{GOOD_BODY}.", "JWS signature is empty"),
        (f"{b64url_encode(b'{nope')}.{GOOD_BODY}.AA", "JWS header is not JSON"),
        (f"{b64url_encode(bytes([0xFF]))}.{GOOD_BODY}.AA", "JWS header is not JSON"),
        (f"{b64j(['alg'])}.{GOOD_BODY}.AA", "JWS header is not a JSON object"),
        (f"{b64j({'typ': 'JWT'})}.{GOOD_BODY}.AA", "JWS header has no 'alg'"),
        (f"{b64j({'alg': 5})}.{GOOD_BODY}.AA", "JWS header has no 'alg'"),
        (f"{b64j({'alg': 'EdDSA', 'crit': ['b64']})}.{GOOD_BODY}.AA", "'crit'"),
        (f"{GOOD_HEAD}.{b64j([1])}.AA", "JWS payload is not a JSON object"),
        (f"{GOOD_HEAD}.{GOOD_BODY}.é", "JWS signature is not unpadded base64url"),
        ("x" * 70000, "JWS longer than"),
    ],
)
def test_decode_rejects_malformed_jws(text: str, reason: str) -> None:
    with pytest.raises(jws.JwsError) as exc:
        jws.decode(text)
    assert reason in exc.value.reason


def test_decode_and_encode(keys: dict[str, SigningKey]) -> None:
    text = jws.encode({}, {"a": 1, "é": "<&>"}, keys["ES256"])
    token = jws.decode(f"  {text}\n")
    assert token.header == {"alg": "ES256"} and token.payload == {"a": 1, "é": "<&>"}
    assert len(token.signature) == 64  # JOSE r || s
    assert verify_signature(
        keys["ES256"].public_jwk(), "ES256", token.signing_input, token.signature
    )
    with pytest.raises(ValueError, match="does not match"):
        jws.encode({"alg": "RS256"}, {}, keys["ES256"])


def test_rfc8037_ed25519_vector() -> None:
    """RFC 8037 appendix A: an Ed25519 JWS and its key's thumbprint."""
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    text = (
        "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-"
        "09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
    )
    head, body, sig = text.split(".")
    assert verify_signature(jwk, "EdDSA", f"{head}.{body}".encode(), b64url_decode(sig))
    assert jwk_thumbprint(jwk) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_ed25519_signatures_are_rfc8037s_and_openssls() -> None:
    """Ed25519 keys sign with libsodium: RFC 8037 A.4's signature for its key and input, and
    for any input the very bytes OpenSSL makes (Ed25519 is deterministic)."""
    d = b64url_decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
    private = ed25519.Ed25519PrivateKey.from_private_bytes(d)
    key = SigningKey(private)
    signing_input = b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
    assert b64url_encode(key.sign(signing_input)) == (
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
    )
    for n in (0, 1, 63, 64, 65, 600, 10_000):
        data = os.urandom(n)
        assert key.sign(data) == private.sign(data)


# --- keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_key_sign_verify_and_jwk(keys: dict[str, SigningKey], alg: str) -> None:
    key = keys[alg]
    jwk = key.public_jwk()
    assert key.alg == alg and "alg" not in jwk and "kid" not in jwk
    assert key.kid == jwk_thumbprint(jwk)
    sig = key.sign(b"data")
    assert verify_signature(jwk, alg, b"data", sig)
    assert not verify_signature(jwk, alg, b"other", sig)
    assert not verify_signature(jwk, alg, b"data", sig[:-1] + bytes([sig[-1] ^ 1]))
    for wrong in ALGORITHMS:
        if wrong != alg:
            with pytest.raises(JwkError, match="does not fit"):
                verify_signature(jwk, wrong, b"data", sig)
    if alg == "RS256":
        assert public_key_from_jwk(jwk).key_size == 2048  # type: ignore[union-attr]


@pytest.mark.parametrize("passphrase", [None, b"correct horse"])
def test_key_files(tmp_path: Path, keys: dict[str, SigningKey], passphrase: bytes | None) -> None:
    path = tmp_path / "signing.pem"
    for alg in ALGORITHMS:
        keys[alg].save(path, passphrase)  # the second and third saves replace the file
        assert path.stat().st_mode & 0o777 == 0o600
        loaded = SigningKey.load(path, passphrase)
        assert (loaded.alg, loaded.kid) == (alg, keys[alg].kid)
    assert os.listdir(tmp_path) == ["signing.pem"]  # no temporary files left behind
    pem = path.read_bytes()
    assert (b"ENCRYPTED" in pem) == (passphrase is not None)


def test_key_file_errors(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    encrypted = keys["EdDSA"].to_pem(b"right")
    plain = keys["EdDSA"].to_pem(None)
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        SigningKey.from_pem(encrypted, b"wrong")
    with pytest.raises(KeyFileError, match="a passphrase is needed"):
        SigningKey.from_pem(encrypted, None)
    with pytest.raises(KeyFileError, match="not encrypted"):
        SigningKey.from_pem(plain, b"pass")
    with pytest.raises(KeyFileError, match="not a PEM private key"):
        SigningKey.from_pem(b"garbage", None)
    with pytest.raises(KeyFileError, match="cannot read"):
        SigningKey.load(tmp_path / "missing.pem", None)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    small = rsa.generate_private_key(65537, 1024).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(KeyFileError, match="unsupported key"):
        SigningKey.from_pem(small, None)
    with pytest.raises(ValueError, match="unsupported algorithm"):
        SigningKey.generate("HS256")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"kty": "oct"}, "unsupported JWK key type"),
        ({"alg": "RS256"}, "does not fit key type"),
        ({"d": "AAAA"}, "private key material"),
        ({"crv": "P-384"}, "unsupported EC curve"),
        ({"x": "AAAA"}, "32 bytes"),
        ({"x": "not base64!"}, "not base64url"),
        ({"y": None}, "missing or not a string"),
        ({"x": b64url_encode(bytes(32))}, "not on curve"),
    ],
)
def test_public_key_from_jwk_is_strict(
    keys: dict[str, SigningKey], change: dict[str, Any], reason: str
) -> None:
    jwk = {**keys["ES256"].public_jwk(), **change}
    with pytest.raises(JwkError, match=reason):
        public_key_from_jwk(jwk)


def test_public_key_from_jwk_other_types(keys: dict[str, SigningKey]) -> None:
    rsa_jwk = keys["RS256"].public_jwk()
    assert public_key_from_jwk({**rsa_jwk, "alg": "RS256"})  # a fitting alg is fine
    with pytest.raises(JwkError, match="at least 2048"):
        public_key_from_jwk({**rsa_jwk, "n": rsa_jwk["n"][:100]})
    with pytest.raises(JwkError, match="unsupported OKP curve"):
        public_key_from_jwk({**keys["EdDSA"].public_jwk(), "crv": "X25519"})
    with pytest.raises(JwkError, match="JSON object"):
        public_key_from_jwk(["kty"])  # type: ignore[arg-type]
    padded = {**rsa_jwk, "n": b64url_encode(b"\x00" + b64url_decode(rsa_jwk["n"]))}
    assert jwk_thumbprint(padded) == jwk_thumbprint(rsa_jwk)  # one key, one thumbprint
