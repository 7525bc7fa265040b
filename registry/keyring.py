"""The node's signing keys: a long-lived root and rotating signing keys, in ``DATA/keys/``.

- The **root key** is the node's trust anchor: its certificate (``HS_CERT`` at index 700 of
  the node's prefix handle, identity ``600:0.NA/<prefix>``) is self-issued until the node is
  registered with a top-level node, which then issues it instead. Clients configure the root's
  public key (``idnode keys show``) as their trust root.
- **Signing keys** ``n = 1, 2, …`` (identity ``600+n:0.NA/<prefix>``, ``HS_PUBKEY`` at 600+n,
  ``HS_CERT`` at 700+n issued by the root) sign records. Rotation adds key n+1, switches new
  writes to it and re-signs every record; retired keys' certificates stay published until the
  signatures they made have expired, so no answer is ever unverifiable during a rotation.

``state.json`` names the current key, the retired ones and the rotation's progress (the last
key re-signed), so an interrupted rotation resumes where it stopped. Key files are PKCS#8 PEM,
mode 0600, encrypted when a passphrase is configured (``IDNODE_KEY_PASSPHRASE``).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry.atomicfile import write_atomic
from registry.model.identifiers import prefix_handle
from registry.model.pubkey import pubkey_from_jwk
from registry.model.values import HS_PUBKEY, Value
from registry.signing.claims import HS_CERT, issue_cert
from registry.signing.keys import SigningKey

KEYS_DIR = "keys"
STATE = "state.json"
ROOT_CERT = "root-cert.jws"  # the root's certificate as issued by the top-level node
ROOT_INDEX = 600
CERT_OFFSET = 100  # HS_CERT of identity 600+n lives at 700+n
ROOT_VALIDITY = 10 * 365 * 86400
CERT_VALIDITY = 2 * 365 * 86400


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (created, mode 0600) between processes."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.lockf(fd, fcntl.LOCK_UN)
        os.close(fd)


@dataclass
class KeyState:
    alg: str
    current: int = 1
    retired: list[dict[str, int]] = field(default_factory=list)  # {"n", "retired_at"}
    rotation: dict[str, Any] | None = None  # {"to": n, "after": key | None}

    def to_json(self) -> dict[str, Any]:
        return {
            "alg": self.alg,
            "current": self.current,
            "retired": self.retired,
            "rotation": self.rotation,
        }


class Keyring:
    """Keys of the node homed on ``prefixes``, kept in ``data_dir/keys``; they are published
    in the first prefix's handle."""

    def __init__(
        self, data_dir: Path, prefixes: Sequence[str], passphrase: bytes | None = None
    ) -> None:
        self.dir = data_dir / KEYS_DIR
        self.prefixes = tuple(prefixes)
        self.handle = prefix_handle(self.prefixes[0])
        self.passphrase = passphrase

    # ------------------------------------------------------------------ identities

    def identity(self, n: int) -> str:
        """``n`` = 0 is the root."""
        return f"{ROOT_INDEX + n}:{self.handle}"

    def cert_ref(self, n: int) -> str:
        """Where key ``n``'s certificate is: ``700+n:0.NA/<prefix>``."""
        return f"{ROOT_INDEX + CERT_OFFSET + n}:{self.handle}"

    @property
    def root_identity(self) -> str:
        return self.identity(0)

    def _path(self, n: int) -> Path:
        return self.dir / ("root.pem" if n == 0 else f"signing-{n}.pem")

    # ------------------------------------------------------------------ files

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Serialises key creation and state changes between processes."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with file_lock(self.dir / ".lock"):
            yield

    def exists(self) -> bool:
        return (self.dir / STATE).exists()

    def missing(self) -> Path | None:
        """The first of the files every initialised keyring has (the directory, its state
        and the root key) that is not there; None when all are."""
        for path in (self.dir, self.dir / STATE, self._path(0)):
            if not path.exists():
                return path
        return None

    def load_state(self) -> KeyState:
        path = self.dir / STATE
        raw = json.loads(path.read_text("utf-8"))
        return KeyState(raw["alg"], raw["current"], raw.get("retired", []), raw.get("rotation"))

    def save_state(self, state: KeyState) -> None:
        write_atomic(self.dir / STATE, json.dumps(state.to_json(), indent=2).encode("utf-8"))

    def version(self) -> tuple[int, int, int]:
        """Changes whenever the state file is rewritten (by any process): one ``stat``.
        Each save replaces the file, so the inode changes along with time and size."""
        try:
            st = (self.dir / STATE).stat()
        except FileNotFoundError:
            return (-1, -1, -1)
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def registered_root_cert(self) -> str | None:
        """The top-level-issued certificate of the root key, once the node is registered."""
        try:
            return (self.dir / ROOT_CERT).read_text("utf-8").strip() or None
        except FileNotFoundError:
            return None

    def set_root_cert(self, cert: str) -> None:
        """Keep the certificate the top-level issued for the root key (replaces the
        self-issued one in the published values)."""
        with self.locked():
            write_atomic(self.dir / ROOT_CERT, cert.encode("utf-8"))

    def key(self, n: int) -> SigningKey:
        return SigningKey.load(self._path(n), self.passphrase)

    def create(self, alg: str) -> KeyState:
        """A root key and signing key 1 (``idnode init``; idempotent under the lock)."""
        with self.locked():
            if self.exists():
                return self.load_state()
            for n in (0, 1):
                if not self._path(n).exists():
                    SigningKey.generate(alg).save(self._path(n), self.passphrase)
            state = KeyState(alg)
            self.save_state(state)
            return state

    def add_signing_key(self) -> int:
        """Rotation, step 1: a new signing key n+1 (not yet current)."""
        with self.locked():
            state = self.load_state()
            n = max([state.current, *(r["n"] for r in state.retired)]) + 1
            if state.rotation and state.rotation.get("to"):
                return int(state.rotation["to"])  # a rotation is already under way
            SigningKey.generate(state.alg).save(self._path(n), self.passphrase)
            state.rotation = {"to": n, "after": None, "switched": False}
            self.save_state(state)
            return n

    # ------------------------------------------------------------------ published values

    def published_values(self, now: int, ns: list[int]) -> list[Value]:
        """HS_PUBKEY and HS_CERT values for the root and the signing keys ``ns``."""
        root = self.key(0)
        registered = self.registered_root_cert()
        out: list[Value] = []
        for n in [0, *ns]:
            key = root if n == 0 else self.key(n)
            jwk = key.public_jwk()
            out.append(Value(ROOT_INDEX + n, HS_PUBKEY, pubkey_from_jwk(jwk)))
            validity = ROOT_VALIDITY if n == 0 else CERT_VALIDITY
            if n == 0 and registered:
                cert = registered
            else:
                cert = issue_cert(
                    self.root_identity,
                    root,
                    self.identity(n),
                    jwk,
                    self.cert_perms(n),
                    now,
                    validity,
                )
            out.append(Value(ROOT_INDEX + CERT_OFFSET + n, HS_CERT, cert.encode("utf-8")))
        return out

    def cert_perms(self, n: int) -> list[tuple[str, str]]:
        if n == 0:
            return [("0.NA/0.NA", "everything")]  # a self-issued root vouches for anything
        # thisHandle on 0.NA/P covers 0.NA/P and P/...; derivedPrefixes covers 0.NA/P.x and
        # P.x/... — together every identifier the node is home for.
        perms = []
        for p in self.prefixes:
            perms += [(prefix_handle(p), "thisHandle"), (prefix_handle(p), "derivedPrefixes")]
        return perms

    @staticmethod
    def is_key_index(index: int) -> bool:
        """Indexes 600-799 of the node's prefix handle are reserved for its keys."""
        return ROOT_INDEX <= index < ROOT_INDEX + 2 * CERT_OFFSET

    @staticmethod
    def is_key_value(v: Value) -> bool:
        return ROOT_INDEX <= v.index < ROOT_INDEX + 2 * CERT_OFFSET and v.type in (
            HS_PUBKEY,
            HS_CERT,
        )
