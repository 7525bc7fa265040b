"""Identifier parsing and normalisation.

An identifier is ``PREFIX/LOCAL`` in UTF-8. Matching is ASCII case-insensitive (no Unicode
folding), so every identifier has a *key*: its UTF-8 bytes ASCII-upper-cased. Stores index
by key; answers echo the identifier as the client wrote it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from registry.errors import InvalidHandle

NA_PREFIX = "0.NA"
MAX_HANDLE_BYTES = 2048
MAX_PREFIX_BYTES = 255


# Regexes, not per-character Python loops: parse() runs on every resolution.
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_SPACE = re.compile(r"[\s\x00-\x1f\x7f]")


def handle_key(handle: str) -> str:
    """The store key of ``handle``: ASCII letters upper-cased, everything else untouched."""
    # bytes.upper() folds ASCII only, which is exactly Handle's case-insensitivity.
    return handle.encode("utf-8", "surrogatepass").upper().decode("utf-8", "surrogatepass")


@dataclass(frozen=True, slots=True)
class Identifier:
    """A parsed identifier: ``text`` as given, ``prefix`` and ``local`` split at the first '/'."""

    text: str
    prefix: str
    local: str
    key: str
    prefix_key: str  # the prefix as matched (ASCII upper case)
    is_prefix_handle: bool  # ``0.NA/<prefix>``, the record that describes a prefix

    @property
    def na_handle(self) -> str:
        """The prefix handle that holds this identifier's NA admins: ``0.NA/<prefix>``."""
        return f"{NA_PREFIX}/{self.prefix}"


def parse(text: str) -> Identifier:
    """Parse and validate an identifier, raising :class:`InvalidHandle` (responseCode 102)."""
    if not text:
        raise InvalidHandle("Empty handle invalid")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidHandle("Handle is not valid UTF-8") from None
    if size > MAX_HANDLE_BYTES:
        raise InvalidHandle(f"Handle longer than {MAX_HANDLE_BYTES} bytes")
    prefix, sep, local = text.partition("/")
    if not sep:
        raise InvalidHandle("Handle has no '/' between prefix and local name")
    if not prefix:
        raise InvalidHandle("Handle has an empty prefix")
    check_prefix(prefix)
    if _CONTROL.search(text):
        raise InvalidHandle("Handle contains control characters")
    key = handle_key(text)
    prefix_key = key.partition("/")[0]
    return Identifier(text, prefix, local, key, prefix_key, prefix_key == NA_PREFIX)


def check_prefix(prefix: str) -> str:
    """Validate a prefix such as ``88.118.8``: dot-separated non-empty labels, no '/'."""
    if not prefix:
        raise InvalidHandle("Empty prefix invalid")
    if "/" in prefix:
        raise InvalidHandle("A prefix contains no '/'")
    if len(prefix.encode("utf-8")) > MAX_PREFIX_BYTES:
        raise InvalidHandle(f"Prefix longer than {MAX_PREFIX_BYTES} bytes")
    if prefix[0] == "." or prefix[-1] == "." or ".." in prefix:
        raise InvalidHandle(f"Prefix {prefix!r} has an empty label")
    if _SPACE.search(prefix):
        raise InvalidHandle("Prefix contains whitespace or control characters")
    return prefix


def prefix_handle(prefix: str) -> str:
    """``88.118.8`` → ``0.NA/88.118.8``."""
    return f"{NA_PREFIX}/{prefix}"


def ancestors(prefix: str) -> list[str]:
    """Proper ancestor prefixes, nearest first: ``88.118.8`` → ``["88.118", "88"]``."""
    labels = prefix.split(".")
    return [".".join(labels[:n]) for n in range(len(labels) - 1, 0, -1)]


def is_within(prefix_key: str, homed_key: str) -> bool:
    """True when ``prefix_key`` equals ``homed_key`` or is derived from it (both keys)."""
    return prefix_key == homed_key or prefix_key.startswith(homed_key + ".")


def served_prefix(ident: Identifier) -> str:
    """The prefix whose home decides where ``ident`` lives.

    ``88.118.8/x`` lives with prefix ``88.118.8``; the prefix handle ``0.NA/88.118.8`` lives
    with ``88.118.8`` too (a node is home for its prefixes' own records).
    """
    return ident.local if ident.is_prefix_handle else ident.prefix


def homed_in(ident: Identifier, homed_keys: tuple[str, ...]) -> bool:
    """Whether a node homed on the prefixes ``homed_keys`` (keys) is home for ``ident``."""
    key = handle_key(served_prefix(ident)) if ident.is_prefix_handle else ident.prefix_key
    return any(is_within(key, h) for h in homed_keys)
