"""Expired rows dropped a few at a time, inside the batches that write the table.

A sweep visits a table partition's rows in key order from where it stopped, a bounded number
per batch, and deletes the expired ones through the batch's own rows (`Rows.delete`): the
store loses them and the changelog gets their tombstones in the same write as the batch's
rows, so recovery and standbys drop them too, and no second task ever writes the table.

Pacing: a batch visits `VISITS_PER_WRITE` rows for each row it wrote to the table, and at least
`MIN_VISITS`; after a whole pass a partition rests keep_s / `RESTS_PER_KEEP`, so a small table
is not read over and over. A table that grows by w rows/s and keeps them `keep_s` holds about
w x keep_s rows, so a pass takes at most about keep_s / 2, and a row lives at most about 1.6 x
keep_s. A partition is swept by the batches that write to it; one with no writes does not grow
either, and keeps its old rows until writes come.
"""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from app.batched_writes import Rows
from tables.expiry import stamped, verdict

VISITS_PER_WRITE = 2
MIN_VISITS = 64
RESTS_PER_KEEP = 8


class TableSweep:
    """Where the sweep of one table stands in each partition; `run` takes it on in a batch."""

    def __init__(self, keep_s: float, expired: Any = None, clock: Callable[[], float] = time.time) -> None:
        self.keep_s = keep_s
        self.expired = expired  # a prometheus counter of the rows dropped, or None
        self.clock = clock
        self._after: dict[int, bytes | None] = {}  # rocksdb: the last key visited per partition
        self._queued: dict[int, Iterator[str]] = {}  # memory store: keys of the pass under way
        self._rest_until: dict[int, float] = {}  # no new pass before this (worker clock)

    def run(self, rows: Rows) -> int:
        """Sweep on in each partition the batch wrote to, `visits_for` its rows written there,
        before they are written; the rows dropped."""
        written = Counter(partition for partition, _ in rows.changed.values())
        now = self.clock()
        dropped = sum(self.step(rows, partition, now, visits_for(n))[1] for partition, n in written.items())
        if dropped and self.expired is not None:
            self.expired.inc(dropped)
        return dropped

    def step(self, rows: Rows, partition: int, now: float, visits: int) -> tuple[int, int]:
        """Visit up to `visits` rows of `partition`; (rows visited, rows dropped). Rows the batch
        has changed are left alone (they were just written)."""
        dropped = seen = 0
        if now < self._rest_until.get(partition, float("-inf")):
            return 0, 0
        keep_s, changed = self.keep_s, rows.changed
        for key, row in self._rows(rows, partition, visits):
            seen += 1
            action = verdict(row, now, keep_s)
            if action == "keep":  # most rows: their key is not even decoded
                continue
            if isinstance(key, bytes):
                key = orjson.loads(key)
            if key in changed:
                continue
            if action == "drop":
                rows.delete(key, partition)
                dropped += 1
            else:
                rows.set(key, partition, stamped(row[0], row[1], now))
        if self._pass_over(rows, partition):
            self._rest_until[partition] = now + self.keep_s / RESTS_PER_KEEP
        return seen, dropped

    def _pass_over(self, rows: Rows, partition: int) -> bool:
        """Whether the last step ended a pass (the next one would start from the first key)."""
        if rows.is_rocksdb:
            return self._after.get(partition) is None
        return partition not in self._queued

    def _rows(self, rows: Rows, partition: int, limit: int) -> Iterator[tuple[str | bytes, Any]]:
        """(key, value) of up to `limit` rows from where the pass stands; a RocksDB key comes as
        its JSON bytes."""
        if rows.is_rocksdb:
            return self._rocksdb_rows(rows.store._db_for_partition(partition), partition, limit)
        return self._memory_rows(rows.store, partition, limit)

    def _rocksdb_rows(self, db: Any, partition: int, limit: int) -> Iterator[tuple[bytes, Any]]:
        it = db.iter()
        after = self._after.get(partition)
        if after is None:
            it.seek_to_first()
        else:
            it.seek(after)
            if it.valid() and it.key() == after:
                it.next()
        last = None
        for _ in range(limit):
            if not it.valid():
                last = None  # the pass is over: the next one starts from the first key
                break
            last = it.key()
            if last[:1] == b'"':  # Faust keeps its persisted offset (`__faust\\0offset__`) here too
                try:
                    yield last, orjson.loads(it.value())
                except orjson.JSONDecodeError:
                    pass  # not a row of ours: nothing here may stop the worker
            it.next()
        self._after[partition] = last

    def _memory_rows(self, store: Any, partition: int, limit: int) -> Iterator[tuple[str, Any]]:
        queued = self._queued.get(partition)
        if queued is None:  # a pass over the keys the partition holds now
            queued = self._queued[partition] = iter([k for k, p in store._key_partition.items() if p == partition])
        for _ in range(limit):
            key = next(queued, None)
            if key is None:
                del self._queued[partition]
                return
            if key in store.data:
                yield key, store.data[key]


def visits_for(written: int) -> int:
    """Rows a batch that wrote `written` rows to a table visits in it."""
    return MIN_VISITS + VISITS_PER_WRITE * written
