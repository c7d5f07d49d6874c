"""What a gateway keeps of each item's stats: one `bytes` object, read through a view.

Decoded from JSON, a stats record is two dicts, three floats and its counts: 475 B an item with
five event types (tracemalloc), held for every item the shop's events have touched. Packed here:
the decayed popularity, the trend and the time (float64 each) and the counts in EVENT_TYPES order
(uint32 each), 81 B; packing one costs 0.8 µs and a view 0.4 µs (in-process, timeit). A record
whose counts these cannot hold exactly (a type this version does not know, a count past 2**32,
or below 0, which the changelog's check refuses before) is kept as its dict, and read the same.
The worker's replay offsets (`src`) are dropped either way: a gateway never reads them.

`ServedStats` answers the reads tables.item_stats makes of the stats dict (`stats["pop"]`,
`["trend"]`, `["ts"]`, `["counts"]`), so the code shared with the worker works on either.
"""
from __future__ import annotations

import struct
from typing import Any, Union

from app.gateway.record_views import MAX_COUNT, TYPE_INDEX, DictReads, counts_by_type
from tables.wire.records import EVENT_TYPES

_RECORD = struct.Struct(f"<3d{len(EVENT_TYPES)}I")

Record = Union[bytes, dict[str, Any]]


def pack(value: dict[str, Any]) -> Record:
    """The held record of a validated item_stats changelog value."""
    counts = [0] * len(EVENT_TYPES)
    for etype, n in value["counts"].items():
        index = TYPE_INDEX.get(etype)
        if index is None or not 0 <= n <= MAX_COUNT:
            return {k: v for k, v in value.items() if k != "src"}
        counts[index] = n
    return _RECORD.pack(value["pop"], value["trend"], value["ts"], *counts)


class ServedStats(DictReads):
    """A read view of a packed record (unpacked when made)."""

    __slots__ = ("pop", "trend", "ts", "_counts")
    FIELDS = frozenset(("pop", "trend", "ts", "counts"))

    def __init__(self, record: bytes) -> None:
        self.pop, self.trend, self.ts, *counts = _RECORD.unpack(record)
        self._counts = counts

    @property
    def counts(self) -> dict[str, int]:
        return counts_by_type(self._counts)


def view(record: Record | None) -> Any:
    """What readers take for a stats dict: the view of a packed record, a kept dict as it is."""
    return ServedStats(record) if type(record) is bytes else record

