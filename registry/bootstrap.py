"""The standard values of a prefix handle, as ``idnode init`` and ``idnode prefix create``
write them (and as an admin would PUT them over HTTP)."""

from __future__ import annotations

import secrets

from registry.model import admin as adm
from registry.model.identifiers import prefix_handle
from registry.model.values import HS_ADMIN, HS_PUBKEY, HS_SECKEY, PERM_SECRET, Value

ADMIN_VALUE_INDEX = 100
SECKEY_INDEX = 300


def new_secret() -> str:
    return secrets.token_urlsafe(24)


def prefix_values(prefix: str, secret: str) -> list[Value]:
    """``0.NA/<prefix>``: HS_ADMIN at 100 granting every right to ``300:0.NA/<prefix>``, and
    that identity's HS_SECKEY at 300 (readable by admins only)."""
    return admin_values(prefix, secret.encode("utf-8"), None)


def admin_values(prefix: str, secret: bytes | None, public_key: bytes | None) -> list[Value]:
    """:func:`prefix_values` with the identity's credential a secret (plain, or sealed
    already) or an HS_PUBKEY blob (public, as keys are)."""
    handle = prefix_handle(prefix)
    admin = adm.AdminData(adm.AdminRef(SECKEY_INDEX, handle), adm.ALL_RIGHTS)
    if secret is not None:
        cred = Value(SECKEY_INDEX, HS_SECKEY, secret, permissions=PERM_SECRET)
    else:
        assert public_key is not None
        cred = Value(SECKEY_INDEX, HS_PUBKEY, public_key)
    return [Value(ADMIN_VALUE_INDEX, HS_ADMIN, adm.encode_admin(admin)), cred]
