"""Signed records (issue 5): HS_SIGNATURE and HS_CERT values as Handle.Net 9 makes them.

Pure code, no I/O besides the key files of :mod:`.keys`: ``keys`` (algorithms, key files,
JWKs), ``jws`` (compact JWS), ``digests`` (what a signature covers), ``perms`` (what a
certificate permits), ``claims`` (writing payloads; the write path's :class:`Signer`),
``payloads`` (reading them) and ``verify`` (checking a record and its chain offline).
"""

from registry.signing.claims import (
    HS_CERT,
    HS_SIGNATURE,
    PERMS,
    SIGNATURE_INDEX_BASE,
    Signer,
    cert_claims,
    first_free_index,
    issue_cert,
    sign_record,
    signature_claims,
    signing_rate,
)
from registry.signing.digests import signed_values, value_digest
from registry.signing.jws import Jws, JwsError
from registry.signing.keys import (
    ALGORITHMS,
    JwkError,
    KeyFileError,
    SigningKey,
    jwk_thumbprint,
    public_key_from_jwk,
    verify_signature,
)
from registry.signing.verify import Report, SignatureReport, ValueStatus, verify_record

__all__ = [
    "ALGORITHMS",
    "HS_CERT",
    "HS_SIGNATURE",
    "PERMS",
    "SIGNATURE_INDEX_BASE",
    "JwkError",
    "Jws",
    "JwsError",
    "KeyFileError",
    "Report",
    "SignatureReport",
    "Signer",
    "SigningKey",
    "ValueStatus",
    "cert_claims",
    "first_free_index",
    "issue_cert",
    "jwk_thumbprint",
    "public_key_from_jwk",
    "sign_record",
    "signature_claims",
    "signed_values",
    "signing_rate",
    "value_digest",
    "verify_record",
    "verify_signature",
]
