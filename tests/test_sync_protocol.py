"""The intake protocol (``sync.protocol``): signing and checking requests, and the shape
checks both sides share."""

from __future__ import annotations

import pytest

from registry.signing.keys import SigningKey
from sync import protocol


def test_protocol_round_trip_and_fixes() -> None:
    key = SigningKey.generate()
    header = protocol.sign_request(key, "app1", "POST", "/p?q=1", b"{}", 1000, "n" * 22)
    auth = protocol.parse_auth(header)
    assert (auth.app, auth.ts, auth.nonce) == ("app1", 1000, "n" * 22)
    jwk, alg = key.public_jwk(), "EdDSA"
    assert protocol.check_signature(auth, jwk, alg, "POST", "/p?q=1", b"{}")
    assert not protocol.check_signature(auth, jwk, alg, "POST", "/p?q=2", b"{}")
    assert not protocol.check_signature(auth, jwk, "ES256", "POST", "/p?q=1", b"{}")
    # Non-ASCII digits are no timestamp (int() would have raised on them).
    for ts in ("²", "١٢", "-1", "1" * 13):
        bad = header.replace('ts="1000"', f'ts="{ts}"')
        with pytest.raises(protocol.ProtocolError, match="ts"):
            protocol.parse_auth(bad)
    # Empty labels make no prefix.
    for text in ("88..1", "88.118.", "88.118/x", ".88", ""):
        assert not protocol.valid_prefix(text), text
    assert protocol.valid_prefix("88.118.8")
    item = {
        "id": "s",
        "kind": "stats",
        "prefix": "88.118",
        "start": 0,
        "seconds": 60,
        "registrations": 2**63,
        "updates": 0,
        "deletions": 0,
        "resolutions": 0,
    }
    with pytest.raises(protocol.ProtocolError, match="registrations"):
        protocol.check_item(item)
    protocol.check_item(item | {"registrations": 2**63 - 1})
