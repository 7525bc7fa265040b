"""What an HS_CERT's ``perms`` let its subject sign, as Handle.Net's ``HandleVerifier`` decides.

Each permission is ``{handle, perm}``; ``handle`` is normally a prefix handle ``0.NA/P``:

``everything``              any identifier at all.
``thisHandle``              ``handle`` itself, and, when it is ``0.NA/P``, identifiers ``P/…``.
``derivedPrefixes``         derived prefix handles ``0.NA/P.…`` and identifiers under derived
                            prefixes ``P.…/…`` (not ``0.NA/P`` nor ``P/…`` themselves).
``handlesUnderThisPrefix``  identifiers ``P/…`` (not ``0.NA/P``, not derived prefixes).

Unknown perms grant nothing. Handle.Net requires *every* certificate of a chain, the
self-issued root's included, to authorise the signed identifier (its ``ChainVerifier``
checks each link against that identifier, not against the link below), so authority only
narrows going down. Comparison ignores ASCII case, as identifiers do in idnode.
"""

from __future__ import annotations

from collections.abc import Iterable

from registry.model.identifiers import NA_PREFIX, handle_key

EVERYTHING = "everything"
THIS_HANDLE = "thisHandle"
DERIVED_PREFIXES = "derivedPrefixes"
HANDLES_UNDER_THIS_PREFIX = "handlesUnderThisPrefix"
PERMS = (EVERYTHING, THIS_HANDLE, DERIVED_PREFIXES, HANDLES_UNDER_THIS_PREFIX)

_NA = NA_PREFIX + "/"
_ROOT_HANDLE = _NA + NA_PREFIX  # Handle's zero-NA handle of an identifier without '/'


def _under_prefix(key: str, perm_key: str) -> bool:
    """``P/…`` under ``0.NA/P``."""
    return perm_key.startswith(_NA) and key.startswith(perm_key[len(_NA) :] + "/")


def _derived(key: str, perm_key: str) -> bool:
    """``0.NA/P.…`` derived from ``0.NA/P``."""
    return key.startswith(_NA) and key.startswith(perm_key + ".")


def _zero_na(key: str) -> str:
    prefix, sep, _ = key.partition("/")
    return _NA + prefix if sep else _ROOT_HANDLE


def permits(perms: Iterable[tuple[str, str]], handle: str) -> bool:
    """True when some permission in ``perms`` covers signing ``handle``."""
    key = handle_key(handle)
    for perm_handle, perm in perms:
        perm_key = handle_key(perm_handle)
        if perm == EVERYTHING:
            return True
        if perm == THIS_HANDLE and (key == perm_key or _under_prefix(key, perm_key)):
            return True
        if perm == DERIVED_PREFIXES and (
            _derived(key, perm_key) or _derived(_zero_na(key), perm_key)
        ):
            return True
        if perm == HANDLES_UNDER_THIS_PREFIX and _under_prefix(key, perm_key):
            return True
    return False
