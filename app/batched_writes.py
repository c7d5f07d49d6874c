"""A batch of agent work written at once: changed table rows to the store and to their
changelogs, and the batch's output records, as one Kafka batch per topic partition.

Through Faust's table API every changed row costs a Message, a FutureMessage, a buffered send
with its callbacks and a persisted-offset write, and every output record a producer call: most
of the worker's 1.4 CPU-ms per event (bench/ingest.py). Here an agent takes a batch of events
(`Stream.take_events`), keeps the rows it reads and changes in a dict (a row changed by ten
events of the batch is written once), and writes them when the batch ends:

- rows to the store: RocksDB in one `WriteBatch` per partition (what Faust's own changelog
  recovery does), or the memory store's dict;
- the same bytes to the table's changelog partition, the one Faust would use (the partition of
  the events that changed the row: the tables are co-partitioned with their topics);
- once Kafka has the changelog batch, its offset as the store's persisted offset, as Faust
  does per record (recovery replays the changelog after it; a lower one only replays more).

Exactness is kept as before: rows are written and records handed to the producer before the
batch's events are acked, and Faust's commit flushes the producer first (app/producer_flush.py);
a SIGKILL between the store write and the changelog send is repaired by the redelivery, which
rewrites the row (the agents' position checks).
"""
from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import orjson
import rocksdict
from aiokafka.partitioner import murmur2
from faust.types import TP

if TYPE_CHECKING:
    from app.table_sweep import TableSweep

Record = tuple[bytes | None, bytes | None]  # a None value is a tombstone: the key is deleted
# (topic, partition, records) -> a future done when Kafka has them (None: nothing to wait for)
SendRecords = Callable[[str, int, list[Record]], Awaitable["asyncio.Future[Any] | None"]]

_MAX_CACHED_KEYS = 1_000_000


class KeyPartitions:
    """The partition Kafka's default partitioner gives a key (murmur2), memoised per key.

    Forwards go to an explicit partition (one record per partition per batch), and it must be
    the one a keyed send would pick: item rows already in the changelogs stay where they are.
    """

    def __init__(self) -> None:
        self._cache: dict[bytes, int] = {}

    def __call__(self, key: bytes, partitions: int) -> int:
        if partitions == 1:
            return 0
        hashed = self._cache.get(key)
        if hashed is None:
            if len(self._cache) >= _MAX_CACHED_KEYS:
                self._cache.clear()
            hashed = self._cache[key] = murmur2(key) & 0x7FFFFFFF
        return hashed % partitions


class Rows:
    """One table's rows read and changed within a batch; values are the decoded JSON objects.

    Keys and values are stored and sent as Faust's table would: both JSON (a str key as a
    JSON string), so Faust's recovery, its table API and the gateway's followers read them.
    """

    def __init__(self, table: Any) -> None:
        self.table = table
        self.store = table.data
        self.changed: dict[str, tuple[int, Any]] = {}
        # A Faust RocksDB store keeps one database per partition and stores the changelog's
        # bytes; the memory store (tests) keeps decoded values in one dict.
        self.is_rocksdb = hasattr(self.store, "_db_for_partition")

    def get(self, key: str, partition: int) -> Any:
        hit = self.changed.get(key)
        if hit is not None:
            return hit[1]
        if not self.is_rocksdb:
            return self.store.data.get(key)
        raw = self.store._db_for_partition(partition).get(orjson.dumps(key))
        return None if raw is None else orjson.loads(raw)

    def set(self, key: str, partition: int, value: Any) -> None:
        self.changed[key] = (partition, value)

    def delete(self, key: str, partition: int) -> None:
        """Dropped from the store, and a tombstone to the changelog (compaction then drops it there)."""
        self.changed[key] = (partition, None)

    def write(self) -> dict[int, list[Record]]:
        """Write the changed rows to the store; the changelog records per partition."""
        by_partition: dict[int, list[Record]] = defaultdict(list)
        if self.is_rocksdb:
            batches: dict[int, Any] = {}
            for key, (partition, value) in self.changed.items():
                record = (orjson.dumps(key), None if value is None else orjson.dumps(value))
                batch = batches.get(partition)
                if batch is None:
                    batch = batches[partition] = rocksdict.WriteBatch(raw_mode=True)
                if record[1] is None:
                    batch.delete(record[0])
                else:
                    batch.put(*record)
                by_partition[partition].append(record)
            for partition, batch in batches.items():
                self.store._db_for_partition(partition).write(batch)
        else:
            for key, (partition, value) in self.changed.items():
                if value is None:
                    self.store.data.pop(key, None)
                    self.store._key_partition.pop(key, None)
                else:
                    self.store.data[key] = value
                    self.store._key_partition[key] = partition
                by_partition[partition].append((orjson.dumps(key), None if value is None else orjson.dumps(value)))
        return by_partition

    def on_changelog_sent(self, partition: int) -> Callable[[asyncio.Future[Any]], None]:
        topic = self.table.changelog_topic.get_topic_name()

        def done(fut: asyncio.Future[Any]) -> None:
            if fut.cancelled() or fut.exception() is not None:
                return  # the commit's flush fails on it; recovery replays from the older offset
            # The batch's first offset: recovery re-applies the rest of the batch, the same rows.
            self.store.set_persisted_offset(TP(topic, partition), fut.result().offset)

        return done


class BatchedWrites:
    """The rows and output records of one batch of events, written by `flush`."""

    def __init__(self, send_records: SendRecords, sweeps: Mapping[str, TableSweep] | None = None) -> None:
        self._send = send_records
        self._sweeps = sweeps or {}  # table name -> its expiry sweep (app/table_sweep.py)
        self._rows: dict[str, Rows] = {}
        self._out: dict[tuple[str, int], list[Record]] = defaultdict(list)

    def rows(self, table: Any) -> Rows:
        name = table.name
        rows = self._rows.get(name)
        if rows is None:
            rows = self._rows[name] = Rows(table)
        return rows

    def emit(self, topic: str, partition: int, key: bytes | None, value: bytes) -> None:
        self._out[(topic, partition)].append((key, value))

    def emit_all(self, topic: str, partition: int, records: Iterable[Record]) -> None:
        self._out[(topic, partition)].extend(records)

    async def flush(self) -> None:
        """Rows to the stores, then every record handed to the producer (in order per partition).
        A table with a sweep first has its expired rows deleted in the partitions written."""
        for rows in self._rows.values():
            if not rows.changed:
                continue
            sweep = self._sweeps.get(rows.table.name)
            if sweep is not None:  # its deletes go out with the batch's rows
                sweep.run(rows)
            changelog = rows.table.changelog_topic.get_topic_name()
            for partition, records in rows.write().items():
                fut = await self._send(changelog, partition, records)
                if fut is not None and hasattr(rows.store, "set_persisted_offset"):
                    fut.add_done_callback(rows.on_changelog_sent(partition))
        for (topic, partition), records in self._out.items():
            await self._send(topic, partition, records)
        self._rows.clear()
        self._out.clear()
