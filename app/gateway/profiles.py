"""What a gateway keeps of each shopper's profile: the served fields, compactly.

The worker's profile carries bookkeeping a gateway never reads (source offsets, the pending
impressions of the click join) and, decoded from JSON, a dict per field and a fresh string per
item id: about 5 KB per shopper, so a million shoppers did not fit one gateway. Here a profile
is one `bytes` object (`Record`): its time, its counts and its item ids and queries as UTF-8,
decoded where it is read (1.4 µs for 6 recent items, 2.7 µs for 50, in-process, once a cache miss). Tuples of interned strings were
the form before: 406 B a shopper of bench/scale.py's shop as counted (`held_bytes`), where the
bytes hold 207 B (docs/results/scale-600k-memory.json). A profile that the bytes cannot hold
exactly (a string with a NUL in it, a count past 2**32) is still held as that tuple, and read
the same.

`ServedProfile`, a view made where a record is read, answers the same reads as the profile dict
(`profile["recent"]`, `.get("purchased", [])`, `["counts"]`), so the code shared with the
worker (tables.user_profiles) works on either.
"""
from __future__ import annotations

import struct
import sys
from typing import Any, Union

from app.gateway.record_views import MAX_COUNT, TYPE_INDEX, DictReads, counts_by_type
from tables.wire.records import EVENT_TYPES


# The fallback form (see above): (recent, purchased, queries, ts, counts), an exact tuple of
# tuples, strings and numbers, which the cyclic GC stops tracking after its first collection.
Tuple = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], float, tuple[int, ...]]
Record = Union[bytes, Tuple]

# bytes: ts (float64), how many recent, purchased and queries (uint16 each), the counts (uint32
# each, in EVENT_TYPES order), then the strings in that order, UTF-8, each ended by a NUL.
_HEAD = struct.Struct(f"<dHHH{len(EVENT_TYPES)}I")
_SEP = "\0"
_MAX_STRINGS = 2**16 - 1


def pack(value: dict[str, Any]) -> Record:
    """The held record of a validated user_profiles changelog value."""
    counts = [0] * len(EVENT_TYPES)
    for etype, n in value["counts"].items():
        index = TYPE_INDEX.get(etype)
        if index is not None:  # a type this version does not know is not served
            counts[index] = n
    recent, purchased, queries = value["recent"], value.get("purchased", ()), value["queries"]
    ts = float(value["ts"])
    strings = (*recent, *purchased, *queries)
    if (max(len(recent), len(purchased), len(queries)) <= _MAX_STRINGS and all(0 <= n <= MAX_COUNT for n in counts)
            and not any(_SEP in x for x in strings)):
        text = "".join(x + _SEP for x in strings).encode("utf-8")
        return _HEAD.pack(ts, len(recent), len(purchased), len(queries), *counts) + text
    return (_interned(recent), _interned(purchased), _interned(queries), ts, tuple(counts))


def unpack(record: Record) -> Tuple:
    """The fields of a record, in the tuple form."""
    if type(record) is not bytes:
        return record  # type: ignore[return-value]
    ts, n_recent, n_purchased, n_queries, *counts = _HEAD.unpack_from(record)
    strings = record[_HEAD.size:].decode("utf-8").split(_SEP)  # one more, empty, after the last NUL
    a, b = n_recent, n_recent + n_purchased
    return tuple(strings[:a]), tuple(strings[a:b]), tuple(strings[b:b + n_queries]), ts, tuple(counts)


class ServedProfile(DictReads):
    """A read view of a held record, made where it is read: answers the profile dict's reads.
    The record is decoded at the first read: a listener handed a view it does not read (every
    profile change passes two) costs no decode."""

    __slots__ = ("record", "_fields")
    FIELDS = frozenset(("recent", "purchased", "queries", "ts", "counts"))

    def __init__(self, record: Record) -> None:
        self.record = record
        self._fields: Tuple | None = None

    def _unpacked(self) -> Tuple:
        if self._fields is None:
            self._fields = unpack(self.record)
        return self._fields

    @property
    def recent(self) -> tuple[str, ...]:
        return self._unpacked()[0]

    @property
    def purchased(self) -> tuple[str, ...]:
        return self._unpacked()[1]

    @property
    def queries(self) -> tuple[str, ...]:
        return self._unpacked()[2]

    @property
    def ts(self) -> float:
        return self._unpacked()[3]

    @property
    def counts(self) -> dict[str, int]:
        return counts_by_type(self._unpacked()[4])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ServedProfile) and self.record == other.record


# A dict slot for one shopper: its hash, key and value pointers, at the table's usual fill
# (CPython 3.11 keeps a third to a half of the slots free, and an index byte or more a slot).
DICT_SLOT_BYTES = 40


def held_bytes(key: str, record: Record) -> int:
    """Bytes one shopper costs the profile table: the key, the dict slot and the record (in the
    tuple form: its tuples and number, its query strings; item ids are the catalog's, interned:
    a pointer each, and a query shared by shoppers is counted for each, an upper bound)."""
    if type(record) is bytes:
        return sys.getsizeof(key) + DICT_SLOT_BYTES + sys.getsizeof(record)
    recent, purchased, queries, ts, counts = record
    return (sys.getsizeof(key) + DICT_SLOT_BYTES + sys.getsizeof(record) + sys.getsizeof(ts)
            + sys.getsizeof(counts) + (sys.getsizeof(recent) if recent else 0)
            + (sys.getsizeof(purchased) if purchased else 0)
            + (sys.getsizeof(queries) + sum(map(sys.getsizeof, queries)) if queries else 0))


def view(record: Record | None) -> ServedProfile | None:
    return None if record is None else ServedProfile(record)


_EMPTY: tuple[str, ...] = ()


def _interned(values: Any) -> tuple[str, ...]:
    return tuple(sys.intern(v) for v in values) if values else _EMPTY
