"""What a gateway keeps of each shopper's profile: the served fields, compactly.

The worker's profile carries bookkeeping a gateway never reads (source offsets, the pending
impressions of the click join) and, decoded from JSON, a dict per field and a fresh string per
item id: about 5 KB per shopper, so a million shoppers did not fit one gateway. Here a profile
is one slotted object of tuples; item ids and queries are interned, so an id held by many
shoppers (and by the catalog) is stored once and each shopper keeps a pointer to it.

It answers the same reads as the profile dict (`profile["recent"]`, `.get("purchased", [])`,
`["counts"]`), so the code shared with the worker (tables.user_profiles) works on either.
"""
from __future__ import annotations

import sys
from typing import Any

from tables.wire.records import EVENT_TYPES

_TYPE_INDEX = {t: i for i, t in enumerate(EVENT_TYPES)}


class ServedProfile:
    __slots__ = ("recent", "purchased", "queries", "ts", "_counts")

    def __init__(self, recent: tuple[str, ...], purchased: tuple[str, ...], queries: tuple[str, ...],
                 ts: float, counts: tuple[int, ...]) -> None:
        self.recent, self.purchased, self.queries, self.ts, self._counts = recent, purchased, queries, ts, counts

    @classmethod
    def from_record(cls, value: dict[str, Any]) -> "ServedProfile":
        """From a validated user_profiles changelog value."""
        counts = [0] * len(EVENT_TYPES)
        for etype, n in value["counts"].items():
            index = _TYPE_INDEX.get(etype)
            if index is not None:  # a type this version does not know is not served
                counts[index] = n
        return cls(_interned(value["recent"]), _interned(value.get("purchased", ())),
                   _interned(value["queries"]), float(value["ts"]), tuple(counts))

    @property
    def counts(self) -> dict[str, int]:
        return {t: n for t, n in zip(EVENT_TYPES, self._counts) if n}

    # The profile dict's read interface.
    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ServedProfile) and all(
            getattr(self, s) == getattr(other, s) for s in self.__slots__)


_EMPTY: tuple[str, ...] = ()


def _interned(values: Any) -> tuple[str, ...]:
    return tuple(sys.intern(v) for v in values) if values else _EMPTY
