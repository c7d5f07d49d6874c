"""A bounded cache of recommendation lists, valid exactly as long as what they came from.

A shop asks for a user's recommendations on every page view, while the user's profile
changes only when they do something and the models only at a new version. An entry holds
the very objects it was ranked from (the profile record, the model versions, the catalog
generation when filters read the catalog, the trending list when it filled the list); the
read model and the serving models replace those objects whole on every change, so an
entry is served only while each one is still the current object (`is`, not `==`: cheap,
and a changed record is always a new object; counters compare by value). Least recently
used entries go first.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

V = TypeVar("V")


class StampedCache(Generic[V]):
    """key -> (stamp, value); `get` answers only when every part of the stamp is the same object."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[tuple[Any, ...], V]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, stamp: tuple[Any, ...], extra: tuple[Any, ...] = ()) -> V | None:
        """The value put under `key` with this stamp, or with this stamp followed by `extra`
        (what only some entries depend on), else None."""
        entry = self._entries.get(key)
        if entry is not None and len(entry[0]) == len(stamp) + len(extra):
            stamp = (*stamp, *extra)
        if entry is None or len(entry[0]) != len(stamp) or not all(map(_same, entry[0], stamp)):
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[1]

    def put(self, key: Hashable, stamp: tuple[Any, ...], value: V) -> None:
        if self.max_entries <= 0:
            return
        self._entries[key] = (stamp, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


def _same(a: Any, b: Any) -> bool:
    return a is b or (type(a) is int and type(b) is int and a == b)
