"""Trust roots given as PEM public keys become the JWKs the node's own keys publish (one
converter, registry.signing.keys.public_jwk_of); other kinds of key are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519

from registry.signing.keys import PrivateKey, SigningKey
from resolver.verification import VerifyError, load_trust_root


def pem(path: Path, public: object) -> Path:
    assert hasattr(public, "public_bytes")
    path.write_bytes(
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


@pytest.mark.parametrize(
    "private",
    [
        ed25519.Ed25519PrivateKey.generate(),
        ec.generate_private_key(ec.SECP256R1()),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ],
    ids=["EdDSA", "ES256", "RS256"],
)
def test_a_pem_trust_root_is_the_keys_published_jwk(tmp_path: Path, private: PrivateKey) -> None:
    root = load_trust_root(pem(tmp_path / "root.pem", private.public_key()))
    assert root == SigningKey(private).public_jwk()


@pytest.mark.parametrize(
    "public",
    [
        ec.generate_private_key(ec.SECP384R1()).public_key(),
        x25519.X25519PrivateKey.generate().public_key(),
    ],
    ids=["P-384", "X25519"],
)
def test_other_kinds_of_key_are_refused_as_trust_roots(tmp_path: Path, public: object) -> None:
    with pytest.raises(VerifyError, match="unsupported trust root key type"):
        load_trust_root(pem(tmp_path / "root.pem", public))
