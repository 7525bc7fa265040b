"""The ``Handle`` HTTP authentication scheme's headers, as the reference server reads and
writes them: pure text in, fields out.

Challenge (in a 401, or a session's JSON): ``WWW-Authenticate: Handle sessionId="S",
nonce="<base64 of 16 bytes>"[, error="..."]``.

Answer: ``Authorization: Handle [version="0", ]sessionId="S", id="300%3A0.NA%2F88.118.8",
type="HS_PUBKEY", cnonce="<base64>", alg="SHA256", signature="<base64>"`` where the signature
is over the nonce's bytes followed by the cnonce's. Parameters are ``name=token`` or
``name="quoted string"`` separated by commas, names in any case; ``id`` is percent-decoded
(clients send it encoded or not). ``Handle sessionId="S"`` alone names an authenticated
session.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from urllib.parse import unquote

SCHEME = "handle"
_TOKEN = r"[-A-Za-z0-9!#$%&'*+.`^_|~]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_PARAM = re.compile(rf"\s*({_TOKEN})\s*=\s*({_TOKEN}|{_QUOTED})\s*(,?)", re.DOTALL)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_SIGNING = ("id", "type", "alg", "signature")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class HandleAuthorization:
    """The parameters of an ``Authorization: Handle`` header, names lower-cased."""

    params: dict[str, str]

    def get(self, name: str) -> str | None:
        return self.params.get(name.lower())

    @property
    def session_id(self) -> str | None:
        return self.get("sessionId")

    @property
    def signing(self) -> bool:
        """It answers a challenge (else it only names a session)."""
        return any(name in self.params for name in _SIGNING)

    @property
    def missing(self) -> list[str]:
        """The fields a signed answer lacks."""
        need = ("sessionId", "id", "type", "cnonce", "alg", "signature")
        return [name for name in need if not self.get(name)]


def parse_params(text: str) -> dict[str, str] | None:
    """``a="x", b=y`` as ``{"a": "x", "b": "y"}`` (names lower-cased, the first of a name
    kept); None if ``text`` is not such a list."""
    params: dict[str, str] = {}
    pos, end = 0, len(text)
    while pos < end:
        m = _PARAM.match(text, pos)
        if m is None:
            return None
        name, value, comma = m.group(1).lower(), m.group(2), m.group(3)
        if value.startswith('"'):
            value = _ESCAPE.sub(r"\1", value[1:-1])
        if name == "id":
            value = unquote(value)
        params.setdefault(name, value)
        pos = m.end()
        if not comma and text[pos:].strip():
            return None
    return params or None


def parse_authorization(header: str) -> HandleAuthorization | None:
    """The fields of an ``Authorization: Handle ...`` header; None if the scheme is another
    or the parameters do not parse."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != SCHEME:
        return None
    params = parse_params(rest)
    return HandleAuthorization(params) if params is not None else None


def _quote(text: str) -> str:
    text = _CONTROL.sub("", text.encode("ascii", "replace").decode("ascii"))
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def challenge(session_id: str, nonce: bytes, error: str | None = None) -> str:
    """The ``WWW-Authenticate`` value inviting a signature of ``nonce`` in ``session_id``."""
    out = f'Handle sessionId="{session_id}", nonce="{base64.b64encode(nonce).decode("ascii")}"'
    if error:
        out += f", error={_quote(error)}"
    return out
