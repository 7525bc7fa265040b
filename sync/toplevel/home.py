"""The top-level node's data directory: its database and its root key and certificate.

``DIR/root.pem`` is the root signing key (PKCS#8 PEM, mode 0600, encrypted when
``IDNODE_KEY_PASSPHRASE`` is set, as the node's keys are). Its self-issued certificate
(identity ``300:0.0/0.0``, perms ``everything``, ten years) is kept in the database, so it
stays the same across restarts. Both are made once by :func:`init`.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.keyring import file_lock
from registry.signing import jws
from registry.signing.claims import issue_cert
from registry.signing.keys import SigningKey
from sync.toplevel import store
from sync.toplevel.records import ROOT_IDENTITY, ROOT_PERMS, ROOT_VALIDITY

KEY_FILE = "root.pem"
LOCK_FILE = ".lock"
PASSPHRASE_ENV = "IDNODE_KEY_PASSPHRASE"
ROOT_CERT = "root_cert"


@dataclass(frozen=True)
class Root:
    """The top-level's root: its key and its self-issued certificate (compact JWS)."""

    key: SigningKey
    cert: str

    @property
    def jwk(self) -> dict[str, Any]:
        return self.key.public_jwk()


def passphrase() -> bytes | None:
    text = os.environ.get(PASSPHRASE_ENV)
    return text.encode("utf-8") if text else None


def _cert_fits(cert: str, key: SigningKey) -> bool:
    try:
        payload = jws.decode(cert).payload
    except jws.JwsError:
        return False
    return payload.get("publicKey") == key.public_jwk()


def init(data: Path, alg: str) -> tuple[Root, bool]:
    """Create (or find) the data directory, its database and root; True when created now.
    An existing root key is kept whatever ``alg`` says."""
    data.mkdir(parents=True, exist_ok=True)
    os.chmod(data, 0o700)  # it holds the root key
    with file_lock(data / LOCK_FILE):  # one init at a time
        conn = store.connect(store.db_path(data), create=True)
        try:
            key_path = data / KEY_FILE
            created = not key_path.exists()
            if created:
                SigningKey.generate(alg).save(key_path, passphrase())
            key = SigningKey.load(key_path, passphrase())
            cert = store.get_meta(conn, ROOT_CERT)
            if cert is None or not _cert_fits(cert, key):
                cert = issue_cert(
                    ROOT_IDENTITY,
                    key,
                    ROOT_IDENTITY,
                    key.public_jwk(),
                    ROOT_PERMS,
                    int(time.time()),
                    ROOT_VALIDITY,
                )
                with store.write(conn):
                    store.set_meta(conn, ROOT_CERT, cert)
        finally:
            conn.close()
    return Root(key, cert), created


def open_db(data: Path) -> sqlite3.Connection:
    """A connection to an initialised data directory's database."""
    return store.connect(store.db_path(data))


def load_root(data: Path, conn: sqlite3.Connection) -> Root:
    key = SigningKey.load(data / KEY_FILE, passphrase())
    cert = store.get_meta(conn, ROOT_CERT)
    if cert is None or not _cert_fits(cert, key):
        raise store.StoreError(
            f"{data} has no root certificate for its key: run 'idnode toplevel init --data {data}'"
        )
    return Root(key, cert)
