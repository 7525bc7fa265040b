"""Identifiers as DNS names in a zone, and back.

The mapping is a bijection between *canonical* handles and the names it writes. A handle's
canonical form is its store key (:func:`registry.model.identifiers.handle_key`): ASCII letters
upper-cased, every other character untouched. Handles and DNS names both ignore ASCII case,
so a letter's case means nothing on either side and names are written in lower case; the
characters whose case does matter to a handle (non-ASCII ones: there is no Unicode folding)
travel as their exact UTF-8 bytes. So ``to_handle(to_name(h)) == handle_key(h)`` for every
handle that fits, and ``to_name(to_handle(n)) == n`` (ignoring case) for every name that
``to_handle`` accepts; any other name in the zone names no handle.

In the zone ``id.example.``::

    88.118.8/ITEM-000042   item-000042._.8.118.88.id.example.
    88.118.8/gb/t-1234     _8t12ul1d64p36d0._.8.118.88.id.example.
    88.118.8/              _.8.118.88.id.example.
    0.NA/88.118.8          8.118.88.id.example.
    0.NA/a b               _84g44._.na.0.id.example.

- The prefix's labels follow the zone, last label first, one DNS label each: the name
  ``8.118.88.<zone>`` can be delegated to the node serving prefix ``88.118.8``, and every
  identifier of that prefix (and of the prefixes under it) lies inside the delegation.
- The *marker* label ``_`` separates the prefix from the suffix, which comes before it; the
  empty suffix is no label at all. A name without a marker is the prefix handle
  ``0.NA/<prefix>`` (the record describing a prefix, which lives with that prefix, as in
  Handle). A prefix handle whose local part is no valid prefix (``0.NA/a b``) takes the
  general form, under ``na.0.<zone>``.
- A *word* (the suffix, or one prefix label) is written in one of two forms, after ASCII
  upper-casing (the canonical form):

  plain
      when it is a hostname label — 1 to 63 ASCII letters, digits and ``-``, starting and
      ending with a letter or digit, without ``--`` as third and fourth characters (RFC 5890
      reserves those, for ``xn--``): the word in lower case, one label.
  encoded
      otherwise: the base32hex (RFC 4648 §7: ``0-9a-v``, lower case, no padding) of its
      UTF-8 bytes, its first 62 characters in the label ``_<chars>`` and the rest, left to
      right, in *continuation* labels ``__<chars>`` of 61 characters (the last one may be
      shorter). A prefix label must fit one label: 38 bytes encoded.

  No plain label holds ``_``, an encoded one has a base32hex character after its ``_`` and
  a continuation label two ``_``, so the three never mix up with each other or the marker.

Every label is thus at most 63 bytes of ``a-z``, ``0-9``, ``-`` and ``_``. A name longer than
DNS's 255 bytes (wire form) cannot be written: :class:`NameTooLong`. With the zone
``id.example.`` and the prefix ``88.118.8``, suffixes fit up to 138 bytes encoded.

``to_handle`` takes exactly what ``to_name`` writes. For a name outside the zone it raises
:class:`NotInZone` (a DNS server answers REFUSED); for one inside that names no handle,
:class:`NotAHandle` (NXDOMAIN), or its subclass :class:`AboveHandles` for the tail of a long
suffix's name (whose first label is a continuation label), which other names lie under.

DNS reads NXDOMAIN as "nothing at or below this name" (RFC 8020), so a server must not answer
it for a name that others lie under: those tails, the names of prefix handles (above their
prefix's identifiers and sub-prefixes) and those of empty suffixes (``_.<prefix>``, above
every suffix). :func:`is_leaf` is False for those two kinds of handle: a missing record is
NXDOMAIN only for a leaf, NODATA otherwise.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence

import dns.exception
import dns.name

from registry.errors import InvalidHandle, NotResponsible
from registry.model.identifiers import NA_PREFIX, check_prefix, parse
from resolver.config import ConfigError

MARKER = b"_"
MAX_LABEL = 63
MAX_NAME = 255  # bytes of the name's wire form, length octets and root label included

# A plain label: a hostname label (RFC 1123) that is not a reserved ``??--`` one (RFC 5890).
_PLAIN = re.compile(rb"(?!..--)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_ENCODED = re.compile(rb"_[0-9a-v]{1,62}")
_CONTINUED = re.compile(rb"__[0-9a-v]{1,61}")
_FIRST = MAX_LABEL - 1  # base32hex characters in an encoded word's first label
_NEXT = MAX_LABEL - 2  # ... and in each continuation label


class NotInZone(NotResponsible):
    """A name outside the zone (a DNS server answers REFUSED)."""


class NotAHandle(InvalidHandle):
    """A name in the zone that names no handle: the apex, or labels that no handle is
    written as (a DNS server answers NXDOMAIN)."""


class AboveHandles(NotAHandle):
    """A name that is no handle's but lies above the names of long suffixes (its first label
    is a continuation label): a DNS server answers NODATA, not NXDOMAIN."""


class NameTooLong(InvalidHandle):
    """A handle whose name would break DNS's limits (63-byte labels, 255-byte names)."""


def zone_name(text: str) -> dns.name.Name:
    """The zone ``text`` names (``id.example`` and ``id.example.`` alike), or
    :class:`ConfigError`."""
    if not text.strip():
        raise ConfigError("the DNS zone is empty")
    try:
        return dns.name.from_text(text)
    except (dns.exception.DNSException, UnicodeError) as exc:
        raise ConfigError(f"invalid DNS zone {text!r}: {exc}") from None


def _is_plain(word: bytes) -> bool:
    """Whether a canonical word has the plain form (bytes.lower() folds ASCII only)."""
    return _PLAIN.fullmatch(word.lower()) is not None


def _base32(word: bytes) -> bytes:
    return base64.b32hexencode(word).rstrip(b"=").lower()


def _word_labels(word: bytes) -> list[bytes]:
    """The labels of a canonical word (none for the empty word)."""
    if not word:
        return []
    if _is_plain(word):
        return [word.lower()]
    b32 = _base32(word)
    rest = range(_FIRST, len(b32), _NEXT)
    return [MARKER + b32[:_FIRST], *(b"__" + b32[i : i + _NEXT] for i in rest)]


def _word(labels: Sequence[bytes]) -> bytes:
    """The canonical word that ``labels`` (lower case) are the form of, or NotAHandle."""
    if not labels:
        return b""
    first = labels[0]
    if _PLAIN.fullmatch(first):
        if len(labels) > 1:
            raise NotAHandle(f"label {_shown(labels[1])} is not part of a handle's name")
        return first.upper()
    if first[:2] == b"__":
        if all(_CONTINUED.fullmatch(label) for label in labels):
            raise AboveHandles("the name lies above the names of long suffixes")
        raise NotAHandle(f"label {_shown(first)} is not part of a handle's name")
    last = len(labels) - 1
    for i, label in enumerate(labels):
        form = _ENCODED if i == 0 else _CONTINUED
        if not form.fullmatch(label) or (i < last and len(label) != MAX_LABEL):
            raise NotAHandle(f"label {_shown(label)} is not part of a handle's name")
    b32 = b"".join(label[1 if i == 0 else 2 :] for i, label in enumerate(labels))
    try:
        word = base64.b32hexdecode(b32 + b"=" * (-len(b32) % 8), casefold=True)
    except binascii.Error:
        raise NotAHandle(f"{_shown(b32)} is not base32hex") from None
    # Only the form to_name writes is accepted: padding bits zero, no lower-case letters
    # (the canonical form has none), and encoded only when there is no plain form.
    if _base32(word) != b32 or word != word.upper() or _is_plain(word):
        raise NotAHandle(f"{_shown(b32)} is not how a handle is written")
    return word


def _shown(label: bytes) -> str:
    return repr(label.decode("ascii", "backslashreplace"))


def _text(word: bytes) -> str:
    try:
        return word.decode("utf-8")
    except UnicodeDecodeError:
        raise NotAHandle("the name does not encode UTF-8 text") from None


def _is_prefix(text: str) -> bool:
    try:
        check_prefix(text)
    except InvalidHandle:
        return False
    return True


def is_leaf(handle: str) -> bool:
    """Whether no other handle's name lies under the name of ``handle`` (valid). False for
    a prefix handle written as its prefix's name (``0.NA/88.118.8``: above the prefix's
    identifiers) and for an empty suffix (``88.118.8/``: above every suffix)."""
    ident = parse(handle)
    return bool(ident.local) and not (ident.is_prefix_handle and _is_prefix(ident.local))


class NameMap:
    """The mapping between handles and DNS names in ``zone`` (an absolute name)."""

    __slots__ = ("_room", "_zone", "zone")

    def __init__(self, zone: dns.name.Name) -> None:
        if not zone.is_absolute():
            raise ValueError(f"the zone {zone} is not an absolute name")
        self.zone = zone
        self._zone = tuple(label.lower() for label in zone.labels)
        # wire bytes left for the handle's labels
        self._room = MAX_NAME - sum(len(label) + 1 for label in zone.labels)

    def to_name(self, handle: str) -> dns.name.Name:
        """The name of ``handle`` in lower case. Raises :class:`InvalidHandle` for an invalid
        handle, :class:`NameTooLong` when its name would not fit DNS's limits."""
        ident = parse(handle)
        prefix, _, local = ident.key.partition("/")
        if ident.is_prefix_handle and _is_prefix(local):
            labels = self._prefix_labels(local)
        else:
            labels = [*_word_labels(local.encode("utf-8")), MARKER, *self._prefix_labels(prefix)]
        size = sum(len(label) + 1 for label in labels)
        if size > self._room:
            over = MAX_NAME - self._room + size
            raise NameTooLong(f"its DNS name would be {over} bytes long, over {MAX_NAME}")
        return dns.name.Name([*labels, *self.zone.labels])

    @staticmethod
    def _prefix_labels(prefix: str) -> list[bytes]:
        out = []
        for label in reversed(prefix.split(".")):
            labels = _word_labels(label.encode("utf-8"))
            if len(labels) != 1:
                raise NameTooLong(f"prefix label {label!r} does not fit one DNS label")
            out.append(labels[0])
        return out

    def to_handle(self, name: dns.name.Name) -> str:
        """The canonical handle ``name`` (any case) is the name of. Raises
        :class:`NotInZone` for a name outside the zone, :class:`NotAHandle` for one inside
        that names no handle: the zone apex, labels no handle is written as, or
        (:class:`AboveHandles`) the tail of a long suffix's name."""
        labels = name.labels
        cut = len(labels) - len(self._zone)
        if cut < 0 or tuple(label.lower() for label in labels[cut:]) != self._zone:
            raise NotInZone(f"not in the zone {self.zone}")
        if cut == 0:
            raise NotAHandle("the zone apex names no handle")
        inner = [label.lower() for label in labels[:cut]]
        marker = cut - 1  # the marker nearest the zone: suffixes hold none
        while marker >= 0 and inner[marker] != MARKER:
            marker -= 1
        prefix_labels = inner[marker + 1 :]
        if not prefix_labels:
            raise NotAHandle("the name has no prefix labels")
        prefix = ".".join([self._prefix_label(label) for label in reversed(prefix_labels)])
        if marker < 0:
            if not _is_prefix(prefix):
                raise NotAHandle(f"{prefix!r} is not a prefix")
            text = f"{NA_PREFIX}/{prefix}"
        else:
            suffix = _text(_word(inner[:marker]))
            if prefix == NA_PREFIX and _is_prefix(suffix):
                raise NotAHandle(f"the prefix handle {NA_PREFIX}/{suffix} is written without '_'")
            text = f"{prefix}/{suffix}"
        try:
            parse(text)
        except InvalidHandle as exc:
            raise NotAHandle(f"{text!r} is no valid handle: {exc.message}") from None
        return text

    @staticmethod
    def _prefix_label(label: bytes) -> str:
        if _PLAIN.fullmatch(label):  # the common case, first
            return label.upper().decode("ascii")
        if not _ENCODED.fullmatch(label):
            raise NotAHandle(f"label {_shown(label)} is no prefix label")
        text = _text(_word((label,)))
        if "." in text or "/" in text:
            raise NotAHandle(f"prefix label {text!r} holds '.' or '/'")
        return text
