"""Decoder limits: every size a peer chooses is checked against one of these first."""

from __future__ import annotations

from dataclasses import dataclass

from registry.model.identifiers import MAX_HANDLE_BYTES
from registry.model.values import MAX_VALUES


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds the decoders enforce, raising :class:`~resolver.native.errors.LimitExceeded`.

    The defaults are the reference's: 256 KiB messages (its hard limit), 2048-byte handles and
    2048 values (what its client accepts, and idnode's record limits). A resolution request
    naming more indexes or types than a record can hold values is refused as well.
    """

    max_message_length: int = 262_144
    max_handle_length: int = MAX_HANDLE_BYTES
    max_values: int = MAX_VALUES
    max_indexes: int = MAX_VALUES
    max_types: int = MAX_VALUES


DEFAULT_LIMITS = Limits()
