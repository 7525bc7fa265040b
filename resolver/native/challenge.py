"""Challenge material (handle-native.md §4-§5): request digests and the HS_SECKEY answer.

A server challenges with rc 402: the reply's digest prefix is a digest of the request's header
and body (:attr:`Message.signed <resolver.native.messages.Message.signed>`), its body a random
nonce. The client answers with op 200 (:class:`~resolver.native.messages.ChallengeAnswer`),
whose ``answer`` for HS_SECKEY at 2.7+ is ``u8 0x22, bytes salt, i32 iterations,
i32 key bits, bytes mac`` with ``key = PBKDF2-HMAC-SHA1(secret, salt, iterations, bits/8)`` and
``mac = HMAC-SHA1(key, nonce ‖ digest)``; below 2.7 it is ``u8 0x02`` + a bare
``SHA-1(secret ‖ nonce ‖ digest ‖ secret)``.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from registry.proofs import SCHEME_PBKDF2, SCHEME_SHA1, SecretProof, check_proof, secret_mac
from resolver.native.codes import DigestType
from resolver.native.errors import LocalProtocolError, MalformedBody
from resolver.native.messages import Digest

ANSWER_PBKDF2 = SCHEME_PBKDF2
ANSWER_SHA1 = SCHEME_SHA1
DEFAULT_ITERATIONS = 10_000
DEFAULT_KEY_BITS = 160

_I32 = struct.Struct(">i")
_HASHES = {DigestType.MD5: "md5", DigestType.SHA1: "sha1", DigestType.SHA256: "sha256"}


def request_digest(header_and_body: bytes, hash_type: int = DigestType.SHA256) -> Digest:
    """The digest a reply with RD carries of the request (2.7+ peers: SHA-256)."""
    if hash_type == DigestType.LEGACY_MD5:
        name = "md5"
    else:
        try:
            name = _HASHES[DigestType(hash_type)]
        except (ValueError, KeyError):
            raise LocalProtocolError(f"unknown digest type {hash_type}") from None
    return Digest(hash_type, hashlib.new(name, header_and_body).digest())


@dataclass(slots=True)
class SecretKeyAnswer:
    """A decoded HS_SECKEY answer. ``scheme`` 0x22: PBKDF2 fields set; 0x02: only ``mac``."""

    scheme: int
    mac: bytes
    salt: bytes = b""
    iterations: int = 0
    key_bits: int = 0


def _field(data: bytes, off: int) -> tuple[bytes, int]:
    if off + 4 > len(data):
        raise MalformedBody("challenge answer ends before a length")
    (n,) = _I32.unpack_from(data, off)
    off += 4
    if n < 0 or off + n > len(data):
        raise MalformedBody(f"challenge answer field of length {n} runs past its end")
    return data[off : off + n], off + n


def decode_secret_key_answer(answer: bytes) -> SecretKeyAnswer:
    if not answer:
        raise MalformedBody("empty HS_SECKEY answer")
    scheme = answer[0]
    if scheme == ANSWER_SHA1:
        return SecretKeyAnswer(scheme, answer[1:])
    if scheme != ANSWER_PBKDF2:
        raise MalformedBody(f"unknown HS_SECKEY answer scheme 0x{scheme:02x}")
    salt, off = _field(answer, 1)
    if off + 8 > len(answer):
        raise MalformedBody("HS_SECKEY answer ends before its PBKDF2 parameters")
    iterations, bits = struct.unpack_from(">ii", answer, off)
    mac, off = _field(answer, off + 8)
    if off != len(answer):
        raise MalformedBody("stray bytes after the HS_SECKEY answer")
    return SecretKeyAnswer(scheme, mac, salt, iterations, bits)


def encode_secret_key_answer(answer: SecretKeyAnswer) -> bytes:
    if answer.scheme == ANSWER_SHA1:
        return bytes((ANSWER_SHA1,)) + answer.mac
    if answer.scheme != ANSWER_PBKDF2:
        raise LocalProtocolError(f"unknown HS_SECKEY answer scheme {answer.scheme}")
    return b"".join(
        (
            bytes((ANSWER_PBKDF2,)),
            _I32.pack(len(answer.salt)),
            answer.salt,
            struct.pack(">ii", answer.iterations, answer.key_bits),
            _I32.pack(len(answer.mac)),
            answer.mac,
        )
    )


def proof_of(answer: SecretKeyAnswer) -> SecretProof:
    """``answer`` as the registry checks it (:mod:`registry.proofs`); MalformedBody for a
    scheme or parameters a server should not compute."""
    proof = SecretProof(answer.scheme, answer.mac, answer.salt, answer.iterations, answer.key_bits)
    try:
        check_proof(proof)
    except ValueError as exc:
        raise MalformedBody(str(exc)) from None
    return proof


def secret_key_mac(secret: bytes, answer: SecretKeyAnswer, nonce: bytes, digest: bytes) -> bytes:
    """The MAC a holder of ``secret`` computes for ``answer``'s scheme and parameters, over the
    challenge ``nonce`` and the raw request ``digest`` (what a client sends). PBKDF2 is slow by
    design (10 000 rounds): call it off the event loop. Raises for parameters a server should
    not compute."""
    return secret_mac(secret, proof_of(answer), nonce + digest)


@dataclass(slots=True)
class PublicKeyAnswer:
    """A decoded HS_PUBKEY answer: ``bytes hash algorithm`` (``SHA-256``, ``SHA1``) and
    ``bytes signature`` over ``nonce ‖ digest`` by the identity's private key."""

    hash_algorithm: str
    signature: bytes


def decode_public_key_answer(answer: bytes) -> PublicKeyAnswer:
    raw_alg, off = _field(answer, 0)
    signature, off = _field(answer, off)
    if off != len(answer) or not signature:
        raise MalformedBody("HS_PUBKEY answer is not a hash name and a signature")
    try:
        return PublicKeyAnswer(raw_alg.decode("ascii"), signature)
    except UnicodeDecodeError:
        raise MalformedBody("HS_PUBKEY answer's hash name is not ASCII") from None


def encode_public_key_answer(answer: PublicKeyAnswer) -> bytes:
    alg = answer.hash_algorithm.encode("ascii")
    return _I32.pack(len(alg)) + alg + _I32.pack(len(answer.signature)) + answer.signature
