"""A per-host table of write generations, shared by every process of a node through mmap.

The file ``DATA/cache.gen`` holds a header (magic, a random epoch chosen when the file is
created) and 2^18 eight-byte counters. A key maps to a slot by CRC-32 (stable across
processes, unlike ``hash``). Writers increment the slot of every key they changed — under an
``fcntl`` lock so concurrent increments are never lost — after the store commit and before
the write is acknowledged. Readers read the slot lock-free (aligned 8-byte loads).

A cached entry remembers ``(epoch, slot value)`` captured before its store read; it is fresh
exactly while both still match. Two keys sharing a slot only cost a spurious miss.

With a store several hosts share (PostgreSQL), other hosts' writes arrive as key hashes
(:meth:`bump_hashes`; :func:`registry.store.base.key_hash` picks the slot), and a host that
may have missed some bumps every slot (:meth:`bump_all`). :attr:`host` tells the hosts' tables
apart even where a data directory, this file included, was copied from another host.

After the counters, one more word holds the host's write position
(:class:`registry.store.base.WritePositions`): the highest WAL position of the writes any of
its processes heard of, raised before the bumps those writes cause, so that a process that
sees a bump sees the position too (what reads from a replica are held to).
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import socket
import struct
import sys
from collections.abc import Iterable
from pathlib import Path

from registry.store.base import key_hash

FILE = "cache.gen"
MAGIC = b"IDNGEN02"  # 02: the write position after the counters
SLOTS = 1 << 18
_HEADER = 16  # magic (8) + epoch (8)
_POSITION = _HEADER + 8 * SLOTS  # the write position's word
_SIZE = _POSITION + 8
_U64 = struct.Struct("<Q")
_ALL = struct.Struct(f"<{SLOTS}Q")


class GenerationTable:
    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX)
            try:
                if os.fstat(fd).st_size != _SIZE or os.pread(fd, 8, 0) != MAGIC:
                    # New (or foreign) file: a fresh epoch invalidates anything cached before.
                    os.ftruncate(fd, 0)
                    os.ftruncate(fd, _SIZE)
                    os.pwrite(fd, MAGIC + os.urandom(8), 0)
                    os.fsync(fd)
            finally:
                fcntl.lockf(fd, fcntl.LOCK_UN)
            self._map = mmap.mmap(fd, _SIZE)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self.epoch: int = _U64.unpack_from(self._map, 8)[0]
        # This table among every host's: the epoch alone repeats in a copied directory.
        st = os.fstat(fd)
        origin = f"{socket.gethostname()}\0{st.st_dev}\0{st.st_ino}\0{self.epoch}".encode()
        digest = hashlib.blake2b(origin, digest_size=8).digest()
        self.host: int = int.from_bytes(digest, "big", signed=True)
        # Reads index the table as 8-byte words (one aligned load, no struct call) where
        # the machine is little-endian like the file; elsewhere they unpack.
        self._words: memoryview | None = (
            memoryview(self._map).cast("Q") if sys.byteorder == "little" else None
        )

    @classmethod
    def open(cls, data_dir: Path) -> GenerationTable:
        return cls(data_dir / FILE)

    @staticmethod
    def slot_of(key: str) -> int:
        return _HEADER + 8 * (key_hash(key) & (SLOTS - 1))

    def get(self, key: str) -> int:
        value: int = _U64.unpack_from(self._map, self.slot_of(key))[0]
        return value

    def get_slot(self, offset: int) -> int:
        words = self._words
        if words is not None:
            word: int = words[offset >> 3]
            return word
        value: int = _U64.unpack_from(self._map, offset)[0]
        return value

    def bump(self, keys: Iterable[str]) -> None:
        """Advance the generation of every key (one lock for the whole batch)."""
        self._bump({self.slot_of(k) for k in keys})

    def bump_hashes(self, hashes: Iterable[int]) -> None:
        """:meth:`bump` for keys given by their :func:`key_hash`."""
        self._bump({_HEADER + 8 * (h & (SLOTS - 1)) for h in hashes})

    def _bump(self, offsets: set[int]) -> None:
        if not offsets:
            return
        fcntl.lockf(self._fd, fcntl.LOCK_EX)
        try:
            for off in offsets:
                _U64.pack_into(
                    self._map, off, (_U64.unpack_from(self._map, off)[0] + 1) & 0xFFFFFFFFFFFFFFFF
                )
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)

    def bump_all(self) -> None:
        """Advance every generation: nothing cached before is served again, in any process
        sharing the table (what a host does that may have missed other hosts' writes).
        A few tens of milliseconds, for a rare event."""
        fcntl.lockf(self._fd, fcntl.LOCK_EX)
        try:
            words = _ALL.unpack_from(self._map, _HEADER)
            _ALL.pack_into(self._map, _HEADER, *[(w + 1) & 0xFFFFFFFFFFFFFFFF for w in words])
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)

    def advance(self, position: int) -> None:
        """Raise the write position to ``position`` (never lowers it)."""
        if position <= self.position():
            return
        fcntl.lockf(self._fd, fcntl.LOCK_EX)
        try:
            if position > _U64.unpack_from(self._map, _POSITION)[0]:
                _U64.pack_into(self._map, _POSITION, position)
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)

    def position(self) -> int:
        """The write position (one aligned load: read lock-free)."""
        return self.get_slot(_POSITION)

    def close(self) -> None:
        if not self._map.closed:
            if self._words is not None:
                self._words.release()
            self._map.close()
            os.close(self._fd)
