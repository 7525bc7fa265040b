"""Reading signature and certificate payloads, strictly: each defect is a :class:`ClaimsError`
naming the member, since payloads come from records anyone may have written."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from registry.model.identifiers import handle_key


def parse_identity(text: str) -> tuple[int, str]:
    """``"300:0.NA/88.118"`` → ``(300, "0.NA/88.118")``. As Handle's ``ValueReference``
    reads it: without a leading all-digit index the whole text is the handle (index 0)."""
    head, sep, tail = text.partition(":")
    if sep and head.isascii() and head.isdigit():
        return int(head), tail
    return 0, text


def identity_key(text: str) -> str:
    """A comparable form of an identity: index, and the handle ASCII-upper-cased."""
    index, handle = parse_identity(text)
    return f"{index}:{handle_key(handle)}"


class ClaimsError(ValueError):
    """A payload member that is missing or of the wrong shape."""


@dataclass(frozen=True, slots=True)
class Claims:
    """What signatures and certificates share. Times may be absent (Handle allows it)."""

    iss: str
    sub: str
    iat: int | None
    nbf: int | None
    exp: int | None
    chain: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SignatureClaims(Claims):
    digest_alg: str
    digests: dict[int, str]  # value index → standard base64 digest


@dataclass(frozen=True, slots=True)
class CertClaims(Claims):
    public_key: dict[str, Any]
    perms: tuple[tuple[str, str], ...]  # (handle, perm)

    @property
    def self_issued(self) -> bool:
        return identity_key(self.iss) == identity_key(self.sub)


def _str(obj: Mapping[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value:
        raise ClaimsError(f"'{name}' is missing or not a string")
    return value


def _int(obj: Mapping[str, Any], name: str, *, optional: bool = True) -> int | None:
    value = obj.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ClaimsError(f"'{name}' is not an integer")
    return value


def _list(obj: Mapping[str, Any], name: str) -> list[Any]:
    value = obj.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ClaimsError(f"'{name}' is not a list")
    return value


def _common(payload: Mapping[str, Any]) -> dict[str, Any]:
    chain = _list(payload, "chain")
    if not all(isinstance(link, str) and link for link in chain):
        raise ClaimsError("'chain' holds something other than identifiers")
    return {
        "iss": _str(payload, "iss"),
        "sub": _str(payload, "sub"),
        "iat": _int(payload, "iat"),
        "nbf": _int(payload, "nbf"),
        "exp": _int(payload, "exp"),
        "chain": tuple(chain),
    }


def signature_claims_of(payload: Mapping[str, Any]) -> SignatureClaims:
    common = _common(payload)
    digests = payload.get("digests")
    if not isinstance(digests, dict):
        raise ClaimsError("'digests' is missing or not an object")
    out: dict[int, str] = {}
    for item in _list(digests, "digests"):
        if not isinstance(item, dict):
            raise ClaimsError("a digest entry is not an object")
        index = _int(item, "index", optional=False)
        assert index is not None
        if index in out:
            raise ClaimsError(f"two digests for index {index}")
        out[index] = _str(item, "digest")
    return SignatureClaims(**common, digest_alg=_str(digests, "alg"), digests=out)


def cert_claims_of(payload: Mapping[str, Any]) -> CertClaims:
    common = _common(payload)
    public_key = payload.get("publicKey")
    if not isinstance(public_key, dict):
        raise ClaimsError("'publicKey' is missing or not an object")
    perms = []
    for item in _list(payload, "perms"):
        if not isinstance(item, dict):
            raise ClaimsError("a permission is not an object")
        perms.append((_str(item, "handle"), _str(item, "perm")))
    return CertClaims(**common, public_key=public_key, perms=tuple(perms))
