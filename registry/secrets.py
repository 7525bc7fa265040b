"""Secrets at rest: HS_SECKEY data is sealed with AES-256-GCM under a key kept in the data
directory (file mode 0600).

A one-way hash would not do: the native protocol's challenge-response (HMAC over the secret)
needs the secret itself. The key file never leaves the data directory; the store and exports
hold only sealed bytes.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_MAGIC = b"IDNSEAL1"
_NONCE = 12
KEY_FILE = "secrets.key"


class Sealer:
    """Seals and unseals secret value data. ``aad`` binds a sealed blob to its value type."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("sealing key must be 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def load(cls, data_dir: Path) -> Sealer:
        """The sealer of an initialised data directory; ``FileNotFoundError`` when its key is
        missing, ``ValueError`` when the file is not a key."""
        return cls((data_dir / KEY_FILE).read_bytes())

    @classmethod
    def load_or_create(cls, data_dir: Path) -> Sealer:
        """The data directory's sealer, creating its key first if there is none: for
        ``idnode init`` only, as a new key makes every sealed secret unreadable."""
        path = data_dir / KEY_FILE
        if not path.exists():
            key = AESGCM.generate_key(bit_length=256)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(key)
                f.flush()
                os.fsync(f.fileno())
            return cls(key)
        return cls.load(data_dir)

    @staticmethod
    def is_sealed(data: bytes) -> bool:
        return data.startswith(_MAGIC)

    def seal(self, plain: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return _MAGIC + nonce + self._aead.encrypt(nonce, plain, _MAGIC)

    def unseal(self, data: bytes) -> bytes:
        """The secret; data that was never sealed is returned as it is."""
        if not data.startswith(_MAGIC):
            return data
        nonce = data[len(_MAGIC) : len(_MAGIC) + _NONCE]
        return self._aead.decrypt(nonce, data[len(_MAGIC) + _NONCE :], _MAGIC)


def secrets_equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison of two secrets."""
    return hmac.compare_digest(a, b)
