"""What a gateway keeps of each shopper's profile: the served fields, compactly.

The worker's profile carries bookkeeping a gateway never reads (source offsets, the pending
impressions of the click join) and, decoded from JSON, a dict per field and a fresh string per
item id: about 5 KB per shopper, so a million shoppers did not fit one gateway. Here a profile
is one exact tuple of tuples (`Record`); item ids and queries are interned, so an id held by
many shoppers (and by the catalog) is stored once and each shopper keeps a pointer to it.

`ServedProfile`, a view made where a record is read, answers the same reads as the profile dict
(`profile["recent"]`, `.get("purchased", [])`, `["counts"]`), so the code shared with the
worker (tables.user_profiles) works on either.
"""
from __future__ import annotations

import sys
from typing import Any

from tables.wire.records import EVENT_TYPES

_TYPE_INDEX = {t: i for i, t in enumerate(EVENT_TYPES)}


# One shopper as held: (recent, purchased, queries, ts, counts), an exact tuple of tuples, strings
# and numbers. The cyclic GC stops tracking such a tuple after its first collection; a slotted
# object stays tracked, and a million of them made every full collection a pause of seconds.
Record = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], float, tuple[int, ...]]


def pack(value: dict[str, Any]) -> Record:
    """The held record of a validated user_profiles changelog value."""
    counts = [0] * len(EVENT_TYPES)
    for etype, n in value["counts"].items():
        index = _TYPE_INDEX.get(etype)
        if index is not None:  # a type this version does not know is not served
            counts[index] = n
    return (_interned(value["recent"]), _interned(value.get("purchased", ())), _interned(value["queries"]),
            float(value["ts"]), tuple(counts))


class ServedProfile:
    """A read view of a held record, made where it is read: answers the profile dict's reads."""

    __slots__ = ("record",)

    def __init__(self, record: Record) -> None:
        self.record = record

    @property
    def recent(self) -> tuple[str, ...]:
        return self.record[0]

    @property
    def purchased(self) -> tuple[str, ...]:
        return self.record[1]

    @property
    def queries(self) -> tuple[str, ...]:
        return self.record[2]

    @property
    def ts(self) -> float:
        return self.record[3]

    @property
    def counts(self) -> dict[str, int]:
        return {t: n for t, n in zip(EVENT_TYPES, self.record[4]) if n}

    # The profile dict's read interface.
    def __getitem__(self, key: str) -> Any:
        if key not in _FIELDS:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in _FIELDS else default

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ServedProfile) and self.record == other.record


# A dict slot for one shopper: its hash, key and value pointers, at the table's usual fill
# (CPython 3.11 keeps a third to a half of the slots free, and an index byte or more a slot).
DICT_SLOT_BYTES = 40


def held_bytes(key: str, record: Record) -> int:
    """Bytes one shopper costs the profile table: the key, the dict slot, the record's tuples
    and number, its query strings; item ids are the catalog's (interned: a pointer each, in the
    tuples), a query shared by shoppers is counted for each (an upper bound)."""
    recent, purchased, queries, ts, counts = record
    return (sys.getsizeof(key) + DICT_SLOT_BYTES + sys.getsizeof(record) + sys.getsizeof(ts)
            + sys.getsizeof(counts) + (sys.getsizeof(recent) if recent else 0)
            + (sys.getsizeof(purchased) if purchased else 0)
            + (sys.getsizeof(queries) + sum(map(sys.getsizeof, queries)) if queries else 0))


def view(record: Record | None) -> ServedProfile | None:
    return None if record is None else ServedProfile(record)


_FIELDS = frozenset(("recent", "purchased", "queries", "ts", "counts"))
_EMPTY: tuple[str, ...] = ()


def _interned(values: Any) -> tuple[str, ...]:
    return tuple(sys.intern(v) for v in values) if values else _EMPTY
