"""A bounded cache of recommendation lists, valid as long as what they came from.

A shop asks for a user's recommendations on every page view, while the user's profile
changes only when they do something and the models only at a new version. An entry holds
what it was ranked from: the profile record and the trending list (when it filled the list)
as the very objects, and numbers for the rest (the serving models' install generation, the
catalog generation when filters read the catalog); the read model replaces a record whole
on every change, so an entry is served only while each object is still the current one
(`is`, not `==`: cheap, and a changed record is always a new object) and each number the same. Least recently
used entries go first, once either bound is passed: entries, or bytes (`entry_bytes`, so
long junk keys from hostile clients cannot grow the cache past its budget). What a stamp cannot
say, a caller's `valid` does: a list of an online model version is served for a grace after a
newer version came (serving.py, `online_staleness_s`).
"""
from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

V = TypeVar("V")
# The OrderedDict's slot and link node and the (stamp, value) pair of one entry (CPython 3.11, 64-bit).
ENTRY_OVERHEAD = 200


def entry_bytes(key: Hashable, stamp: tuple[Any, ...], value: Any) -> int:
    """Bytes one entry holds: its key and value (tuples walked down to their strings and
    numbers), the stamp tuple but not what it refers to (objects the read model and the
    models own anyway), and the dict's own overhead. Strings in the value (item ids) are
    counted as if the entry owned them, though they are often shared: an upper bound."""
    return ENTRY_OVERHEAD + sys.getsizeof(stamp) + _deep_size(key) + _deep_size(value)


def _deep_size(obj: Any) -> int:
    if type(obj) is tuple:
        return sys.getsizeof(obj) + sum(map(_deep_size, obj))
    return 0 if obj is None or type(obj) is bool else sys.getsizeof(obj)  # singletons are shared


class StampedCache(Generic[V]):
    """key -> (stamp, value); `get` answers only when every part of the stamp is the same object.

    Holds at most `max_entries` entries and `max_bytes` bytes of them (`entry_bytes`); 0 for
    either turns the cache off.
    """

    def __init__(self, max_entries: int, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, tuple[tuple[Any, ...], V, int]] = OrderedDict()
        self.bytes = 0  # entry_bytes of the entries held
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, stamp: tuple[Any, ...], extra: tuple[Any, ...] = (),
            valid: Callable[[V], bool] | None = None) -> V | None:
        """The value put under `key` with this stamp, or with this stamp followed by `extra`
        (what only some entries depend on), and that `valid` accepts, else None."""
        entry = self._entries.get(key)
        if entry is not None and len(entry[0]) == len(stamp) + len(extra):
            stamp = (*stamp, *extra)
        if (entry is None or len(entry[0]) != len(stamp) or not all(map(_same, entry[0], stamp))
                or (valid is not None and not valid(entry[1]))):
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[1]

    def put(self, key: Hashable, stamp: tuple[Any, ...], value: V) -> None:
        if self.max_entries <= 0:
            return
        size = entry_bytes(key, stamp, value)
        if size > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[2]
        self._entries[key] = (stamp, value, size)
        self.bytes += size
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            self.bytes -= self._entries.popitem(last=False)[1][2]


def _same(a: Any, b: Any) -> bool:
    return a is b or (type(a) is int and type(b) is int and a == b)
