"""The node's sync files in ``DATA/sync/``: its registration with the top-level node and the
sender's last outcome. Both are small JSON files replaced atomically, so the serving
processes, the sender and ``idnode sync status`` (another process) read consistent copies."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from registry.atomicfile import write_atomic

SYNC_DIR = "sync"
REGISTRATION = "registration.json"
STATUS = "status.json"
SENDER_LOCK = "sender.lock"


@dataclass(frozen=True)
class Registration:
    toplevel: str  # the top-level node's base URL
    app_id: str
    public_url: str  # where this node's HTTP API is reached (published in HS_SITE)
    prefixes: list[str]
    root: dict[str, Any]  # the top-level root: identity, public_key (JWK), cert
    registered_at: int

    @property
    def trust_root(self) -> dict[str, Any]:
        jwk: dict[str, Any] = self.root["public_key"]
        return jwk


@dataclass
class SenderStatus:
    last_attempt: float | None = None
    last_success: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    delivered: int = 0  # items the top-level accepted (or already had)
    refused: int = 0  # items it rejected for good (moved to the dead-letter table)
    heartbeat: float | None = None  # last heartbeat accepted


def sync_dir(data_dir: Path) -> Path:
    return data_dir / SYNC_DIR


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True).encode("utf-8"))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return None


def load_registration(data_dir: Path) -> Registration | None:
    raw = _read_json(sync_dir(data_dir) / REGISTRATION)
    return Registration(**raw) if raw else None


def save_registration(data_dir: Path, reg: Registration) -> None:
    _write_json(sync_dir(data_dir) / REGISTRATION, asdict(reg))


def registration_version(data_dir: Path) -> tuple[int, int]:
    """Changes whenever the registration file is rewritten: one ``stat``."""
    try:
        st = (sync_dir(data_dir) / REGISTRATION).stat()
    except FileNotFoundError:
        return (-1, -1)
    return (st.st_ino, st.st_mtime_ns)


def load_status(data_dir: Path) -> SenderStatus:
    raw = _read_json(sync_dir(data_dir) / STATUS)
    return SenderStatus(**raw) if raw else SenderStatus()


def save_status(data_dir: Path, status: SenderStatus) -> None:
    _write_json(sync_dir(data_dir) / STATUS, asdict(status))
