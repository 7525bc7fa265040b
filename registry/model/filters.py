"""Value selection: which of a record's values a resolution asks for.

A query names indexes and types, OR-ed: a value is selected if its index is named, or if
its type matches a named type ignoring ASCII case, where a named type ending in '.' matches
itself without the dot and every type it begins (``URL.`` matches ``URL`` and ``URL.alt``,
never ``URLX``). Every transport (HTTP, native, DNS) selects through :class:`ValueFilter`.

Clients choose the filters, so selection costs one pass over the values whatever they name:
the indexes and the exact types are sets, and the '.'-types form a trie over the
dot-separated parts of a type — ``t.`` matches a type exactly when ``t``'s parts begin the
type's parts, so a type is matched by walking its own parts, never by trying each filter.
The number of filters per query is bounded too (:data:`MAX_FILTERS`): more is a protocol
error, raised before anything is looked up.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from registry.errors import ProtocolError
from registry.model.values import Value, type_key

# Filters (type and index together) one query may name. Far more than any client needs,
# few enough that refusing a query costs less than parsing it.
MAX_FILTERS = 256

# A trie node: the next part of a type → the node after it.
_Trie = dict[str, "_Trie"]
# Marks a trie node where a '.'-filter ends; no part of a type contains a dot.
_END = "."


class ValueFilter:
    """The indexes and types one query selects (both empty: everything)."""

    __slots__ = ("_exact", "_indexes", "_trie")

    def __init__(
        self, types: Sequence[str] = (), indexes: Sequence[int] = (), limit: int = MAX_FILTERS
    ) -> None:
        """Raises :class:`ProtocolError` for more than ``limit`` filters, or a type that is
        not text (a lone surrogate from a badly decoded request)."""
        if len(types) + len(indexes) > limit:
            raise ProtocolError(
                f"Too many filters: a query may name at most {limit} types and indexes"
            )
        self._indexes = frozenset(indexes)
        exact: set[str] = set()
        trie: _Trie = {}
        for t in types:
            try:
                key = type_key(t)
            except UnicodeEncodeError:
                raise ProtocolError("A type filter is not valid UTF-8") from None
            if key.endswith("."):
                node = trie
                for part in key[:-1].split("."):
                    node = node.setdefault(part, {})
                node[_END] = {}
            else:
                exact.add(key)
        self._exact = frozenset(exact)
        self._trie = trie

    def __bool__(self) -> bool:
        """Whether any filter was named."""
        return bool(self._indexes or self._exact or self._trie)

    def matches(self, value: Value) -> bool:
        if value.index in self._indexes:
            return True
        if not (self._exact or self._trie):
            return False
        key = type_key(value.type)
        if key in self._exact:
            return True
        node = self._trie
        if node:
            for part in key.split("."):
                child = node.get(part)
                if child is None:
                    return False
                if _END in child:
                    return True
                node = child
        return False

    def select(self, values: Iterable[Value]) -> list[Value]:
        """The values matched, in their order."""
        matches = self.matches
        return [v for v in values if matches(v)]
