"""Verifying a record's signatures offline, as a client does, Handle.Net's way.

For each HS_SIGNATURE: parse it; compare its digests with the values present; build the
certificate chain (the issuer ``N:H``'s certificate is the HS_CERT in ``H`` whose ``sub`` is
``N:H``, or follows the signature's ``chain`` claim; then that certificate's issuer, and so on
up to a self-issued one); then check every signature along it, every validity period, that
every certificate's perms cover the signed identifier (Handle's ``ChainVerifier`` rule, see
:mod:`registry.signing.perms`) and that the root's key is a trusted one (by JWK thumbprint).

A value is verified when a trusted signature carries its exact digest. Nothing here raises
on bad input: every failure becomes a specific reason in the :class:`Report`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from registry.model.identifiers import handle_key
from registry.model.values import Value, type_key
from registry.signing import jws
from registry.signing.claims import HS_CERT
from registry.signing.digests import DIGEST_ALG, is_signature, signed_values, value_digest
from registry.signing.keys import ALGORITHMS, JwkError, jwk_thumbprint, verify_signature
from registry.signing.payloads import (
    CertClaims,
    Claims,
    ClaimsError,
    cert_claims_of,
    identity_key,
    parse_identity,
    signature_claims_of,
)
from registry.signing.perms import permits

MAX_CHAIN = 10  # certificates from the signer's up to the root; longer chains are refused

Fetch = Callable[[str], Awaitable[Sequence[Value] | None]]


class ValueStatus(StrEnum):
    VERIFIED = "verified"
    DIGEST_MISMATCH = "digest mismatch"
    UNTRUSTED = "untrusted"  # its digest matches, but only in signatures that failed
    UNSIGNED = "unsigned"  # no signature has a digest for it
    NOT_PUBLIC = "not public"  # not publicly readable: never signed
    SIGNATURE = "signature"  # an HS_SIGNATURE value itself


@dataclass
class SignatureReport:
    index: int  # of the HS_SIGNATURE value
    issuer: str | None = None
    subject: str | None = None
    chain: list[str] = field(default_factory=list)  # identities, the signer's first
    not_before: int | None = None
    expires: int | None = None
    trusted: bool = False  # signature, chain, validity and permissions all good
    verified: list[int] = field(default_factory=list)  # indexes whose digest matches
    mismatched: list[int] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)  # digested, absent (filtered answers)
    reason: str | None = None  # the first of ``reasons``
    reasons: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        chain = " -> ".join(self.chain) or self.issuer or "?"
        span = f"{_when(self.not_before)} .. {_when(self.expires)}"
        verdict = "trusted" if self.trusted else "; ".join(self.reasons)
        return f"index {self.index} by {chain}, valid {span}: {verdict}"


@dataclass
class Report:
    ok: bool  # every given public value verified by a trusted signature
    values: dict[int, ValueStatus]
    signatures: list[SignatureReport]
    reasons: list[str]


@dataclass(frozen=True, slots=True)
class _Cert:
    jws: jws.Jws
    claims: CertClaims


def _when(t: int | None) -> str:
    if t is None:
        return "-"
    try:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return str(t)


def _time_reasons(what: str, claims: Claims, now: int) -> list[str]:
    out = []
    if claims.nbf is not None and now < claims.nbf:
        out.append(f"{what} not valid before {_when(claims.nbf)}")
    if claims.exp is not None and now >= claims.exp:
        out.append(f"{what} expired at {_when(claims.exp)}")
    return out


def _signature_reason(token: jws.Jws, jwk: Mapping[str, Any], what: str, by: str) -> str | None:
    """Why ``token`` does not verify with ``jwk`` (the key of ``by``), or None."""
    if token.alg not in ALGORITHMS:
        return f"{what}: unsupported algorithm {token.alg!r}"
    try:
        good = verify_signature(jwk, token.alg, token.signing_input, token.signature)
    except JwkError as exc:
        return f"{what}: key of {by} unusable: {exc}"
    return None if good else f"bad {what}: does not verify with the key of {by}"


class _Fetcher:
    """``fetch`` with a per-verification cache; its failures become reasons."""

    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch
        self._cache: dict[str, tuple[Sequence[Value] | None, str]] = {}

    async def __call__(self, handle: str) -> tuple[Sequence[Value] | None, str]:
        key = handle_key(handle)
        if key not in self._cache:
            try:
                values = await self._fetch(handle)
                self._cache[key] = (values, "not found" if values is None else "")
            except Exception as exc:
                self._cache[key] = (None, f"{type(exc).__name__}: {exc}")
        return self._cache[key]


def _read_cert(value: Value) -> _Cert | None:
    try:
        token = jws.decode(value.data.decode("utf-8"))
        return _Cert(token, cert_claims_of(token.payload))
    except (UnicodeDecodeError, jws.JwsError, ClaimsError):
        return None


async def _find_cert(link: str, subject: str, fetch: _Fetcher) -> tuple[_Cert | None, str]:
    """The certificate about ``subject`` found at ``link``: a value reference ``N:H`` names
    it exactly; a handle ``H`` means its latest (by ``iat``) HS_CERT about ``subject``."""
    index, where = parse_identity(link)
    values, error = await fetch(where)
    if values is None:
        return None, f"cannot resolve {where} for the certificate of {subject}: {error}"
    want = identity_key(subject)
    if index:
        found = next((v for v in values if v.index == index), None)
        cert = _read_cert(found) if found is not None else None
        if cert is None:
            return None, f"no certificate at {link} (for {subject})"
        if identity_key(cert.claims.sub) != want:
            return None, f"certificate at {link} is for {cert.claims.sub}, not {subject}"
        return cert, ""
    certs = [
        c
        for v in values
        if type_key(v.type) == HS_CERT
        and (c := _read_cert(v)) is not None
        and identity_key(c.claims.sub) == want
    ]
    if not certs:
        return None, f"no certificate for {subject} in {where}"
    return max(certs, key=lambda c: c.claims.iat if c.claims.iat is not None else -1), ""


async def _build_chain(first: Claims, fetch: _Fetcher) -> tuple[list[_Cert], str]:
    """Certificates from the signer's up to a self-issued one; a reason if it breaks."""
    certs: list[_Cert] = []
    pending: list[str] = []
    seen: set[str] = set()
    child = first
    while True:
        if len(certs) >= MAX_CHAIN:
            return certs, f"certificate chain longer than {MAX_CHAIN}"
        if identity_key(child.iss) in seen:
            return certs, f"loop in certificate chain at {child.iss}"
        seen.add(identity_key(child.iss))
        if not pending:  # Handle: follow an explicit chain, else the issuer's own handle
            pending = list(child.chain) or [parse_identity(child.iss)[1]]
        cert, reason = await _find_cert(pending.pop(0), child.iss, fetch)
        if cert is None:
            return certs, reason
        certs.append(cert)
        if cert.claims.self_issued:
            return certs, ""
        child = cert.claims


def _chain_reasons(
    sig: jws.Jws, certs: list[_Cert], handle: str, roots: set[str], now: int
) -> list[str]:
    out = []
    signer = certs[0].claims
    reason = _signature_reason(sig, signer.public_key, "signature", signer.sub)
    if reason:
        out.append(reason)
    for i, cert in enumerate(certs):
        parent = certs[i + 1].claims if i + 1 < len(certs) else cert.claims
        what = f"signature on certificate {cert.claims.sub}"
        reason = _signature_reason(cert.jws, parent.public_key, what, parent.sub)
        if reason:
            out.append(reason)
        out += _time_reasons(f"certificate {cert.claims.sub}", cert.claims, now)
        if not permits(cert.claims.perms, handle):
            out.append(f"certificate {cert.claims.sub} does not permit signing {handle}")
    root = certs[-1].claims
    try:
        thumbprint = jwk_thumbprint(root.public_key)
    except JwkError as exc:
        return [*out, f"root certificate {root.sub} has an unusable key: {exc}"]
    if thumbprint not in roots:
        out.append(f"chain ends at an untrusted root {root.sub} (key thumbprint {thumbprint})")
    return out


async def _check_signature(
    value: Value,
    handle: str,
    digests: Mapping[int, str],
    fetch: _Fetcher,
    roots: set[str],
    now: int,
) -> SignatureReport:
    rep = SignatureReport(value.index)
    try:
        token = jws.decode(value.data.decode("utf-8"))
        claims = signature_claims_of(token.payload)
    except UnicodeDecodeError:
        rep.reasons.append("signature is not UTF-8 text")
        return rep
    except jws.JwsError as exc:
        rep.reasons.append(f"malformed signature: {exc.reason}")
        return rep
    except ClaimsError as exc:
        rep.reasons.append(f"malformed signature payload: {exc}")
        return rep
    rep.issuer, rep.subject = claims.iss, claims.sub
    rep.not_before, rep.expires = claims.nbf, claims.exp
    if claims.digest_alg != DIGEST_ALG:
        rep.reasons.append(f"unsupported digest algorithm {claims.digest_alg!r}")
    else:
        for index, digest in digests.items():
            if index in claims.digests:
                good = claims.digests[index] == digest
                (rep.verified if good else rep.mismatched).append(index)
        rep.missing = sorted(set(claims.digests) - set(digests))
    if handle_key(claims.sub) != handle_key(handle):
        rep.reasons.append(f"signature is for {claims.sub}, not {handle}")
    rep.reasons += _time_reasons("signature", claims, now)
    certs, reason = await _build_chain(claims, fetch)
    rep.chain = [c.claims.sub for c in certs]
    if reason:
        rep.reasons.append(reason)
    else:
        rep.reasons += _chain_reasons(token, certs, handle, roots, now)
    rep.trusted = not rep.reasons
    return rep


def _value_status(index: int, reports: list[SignatureReport]) -> tuple[ValueStatus, str]:
    trusted = [r for r in reports if r.trusted]
    if any(index in r.verified for r in trusted):
        return ValueStatus.VERIFIED, ""
    if any(index in r.mismatched for r in reports):
        return ValueStatus.DIGEST_MISMATCH, f"digest mismatch for index {index}"
    if any(index in r.verified for r in reports):
        return ValueStatus.UNTRUSTED, f"index {index} is signed only by failed signatures"
    return ValueStatus.UNSIGNED, f"no digest for index {index}"


async def verify_record(
    handle: str,
    values: Sequence[Value],
    *,
    fetch: Fetch,
    trust_roots: Sequence[Mapping[str, Any]],
    now: int,
) -> Report:
    """Check ``handle``'s ``values`` (all or some of them, with their HS_SIGNATURE values).

    ``fetch(handle)`` returns a record's values (or None) so certificates can be found;
    ``trust_roots`` are the JWKs of trusted root keys. Signatures that fail, or are by
    issuers nobody trusts, are reported and otherwise ignored: a value is verified when any
    trusted signature covers it.
    """
    roots = {jwk_thumbprint(jwk) for jwk in trust_roots}
    digests = {v.index: value_digest(v) for v in signed_values(values)}
    fetcher = _Fetcher(fetch)
    reports = [
        await _check_signature(v, handle, digests, fetcher, roots, now)
        for v in values
        if is_signature(v)
    ]
    for rep in reports:
        rep.reason = rep.reasons[0] if rep.reasons else None
    reasons = [f"HS_SIGNATURE {r.index}: {why}" for r in reports for why in r.reasons]
    if not reports:
        reasons.append("no HS_SIGNATURE value")
    statuses: dict[int, ValueStatus] = {}
    for v in values:
        if is_signature(v):
            statuses[v.index] = ValueStatus.SIGNATURE
        elif not v.public_read:
            statuses[v.index] = ValueStatus.NOT_PUBLIC
        else:
            statuses[v.index], why = _value_status(v.index, reports)
            if why and reports:
                reasons.append(why)
    ok = any(r.trusted for r in reports) and all(
        statuses[i] is ValueStatus.VERIFIED for i in digests
    )
    return Report(ok=ok, values=statuses, signatures=reports, reasons=reasons)
