"""Native administration as the reference client does it: send the request over TCP; when
the server challenges (rc 402), check that the challenge's digest is of that request, answer
it on a new connection with a proof of the identity — an HS_SECKEY secret (PBKDF2-HMAC-SHA1,
as 2.7+ clients do) or an HS_PUBKEY private key (a SHA-256 signature) — and return the
replies to the original request.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, padding, rsa

from registry.model.admin import AdminRef
from resolver.native.challenge import (
    ANSWER_PBKDF2,
    DEFAULT_ITERATIONS,
    DEFAULT_KEY_BITS,
    PublicKeyAnswer,
    SecretKeyAnswer,
    encode_public_key_answer,
    encode_secret_key_answer,
    request_digest,
    secret_key_mac,
)
from resolver.native.client import NativeClientError, exchange_tcp_all, request
from resolver.native.codes import ResponseCode
from resolver.native.messages import Body, Challenge, ChallengeAnswer, Message
from resolver.native.writers import encode_payload

_SALT_BYTES = 16


class Proof(Protocol):
    """What answers a challenge for an identity."""

    @property
    def identity(self) -> AdminRef: ...

    @property
    def auth_type(self) -> str:
        """``HS_SECKEY`` or ``HS_PUBKEY``."""
        ...

    async def answer(self, nonce: bytes, digest: bytes) -> bytes:
        """The answer bytes of op 200 for a challenge's ``nonce`` and raw request
        ``digest``."""
        ...


@dataclass(frozen=True)
class SecretKey:
    """An identity proven by its HS_SECKEY secret."""

    identity: AdminRef
    secret: bytes
    auth_type: str = "HS_SECKEY"

    async def answer(self, nonce: bytes, digest: bytes) -> bytes:
        params = SecretKeyAnswer(
            ANSWER_PBKDF2, b"", os.urandom(_SALT_BYTES), DEFAULT_ITERATIONS, DEFAULT_KEY_BITS
        )
        params.mac = await asyncio.to_thread(secret_key_mac, self.secret, params, nonce, digest)
        return encode_secret_key_answer(params)


@dataclass(frozen=True)
class PrivateKey:
    """An identity proven by the private key of its HS_PUBKEY (RSA or DSA)."""

    identity: AdminRef
    key: rsa.RSAPrivateKey | dsa.DSAPrivateKey
    auth_type: str = "HS_PUBKEY"

    @classmethod
    def load(cls, identity: AdminRef, path: Path, passphrase: bytes | None = None) -> PrivateKey:
        """The key of a PEM file (PKCS#8 or traditional); NativeClientError if it is not an
        RSA or DSA private key."""
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), passphrase)
        except (OSError, ValueError, TypeError) as exc:
            raise NativeClientError(f"{path}: {exc}") from None
        if not isinstance(key, rsa.RSAPrivateKey | dsa.DSAPrivateKey):
            raise NativeClientError(f"{path}: not an RSA or DSA private key")
        return cls(identity, key)

    async def answer(self, nonce: bytes, digest: bytes) -> bytes:
        data = nonce + digest
        if isinstance(self.key, rsa.RSAPrivateKey):
            signature = self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        else:
            signature = self.key.sign(data, hashes.SHA256())
        return encode_public_key_answer(PublicKeyAnswer("SHA-256", signature))


async def administer(
    host: str, port: int, body: Body, proof: Proof, *, flags: int = 0
) -> list[Message]:
    """The replies to the admin request ``body`` (with op ``flags``, e.g. OVRW), answering
    the server's challenge with ``proof``."""
    msg = request(body, flags=flags)
    replies = await exchange_tcp_all(host, port, msg)
    first = replies[0]
    if first.header.response_code != ResponseCode.AUTHENTICATION_NEEDED:
        return replies
    challenge, digest = first.body, first.digest
    if not isinstance(challenge, Challenge) or digest is None:
        raise NativeClientError("a challenge without a nonce or a request digest")
    mine = request_digest(encode_payload(msg.header, msg.body), digest.hash_type)
    if mine.digest != digest.digest:  # never sign what we did not ask for
        raise NativeClientError("the challenge is not for the request sent")
    answer = ChallengeAnswer(
        proof.auth_type,
        proof.identity.handle,
        proof.identity.index,
        await proof.answer(challenge.nonce, digest.digest),
    )
    return await exchange_tcp_all(host, port, request(answer, session_id=first.envelope.session_id))
