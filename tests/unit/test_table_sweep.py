"""Expired rows of the dedup tables are dropped inside the batches that write them, in a real RocksDB."""
from __future__ import annotations

from types import SimpleNamespace

import orjson
import pytest
from rocksdict import Options, Rdict

from app.batched_writes import BatchedWrites
from app.table_sweep import MIN_VISITS, RESTS_PER_KEEP, TableSweep, visits_for
from tables.expiry import stamped, verdict

KEEP_S = 1000.0
NOW = 1_800_000_000.0


class RocksStore:
    """What `Rows` uses of Faust's RocksDB store: one raw database per partition."""

    def __init__(self, path) -> None:
        self.path, self.dbs = path, {}

    def _db_for_partition(self, partition: int) -> Rdict:
        if partition not in self.dbs:
            self.dbs[partition] = Rdict(str(self.path / f"p{partition}"), Options(raw_mode=True))
        return self.dbs[partition]

    def rows(self, partition: int) -> dict[str, list[int]]:
        return {orjson.loads(k): orjson.loads(v) for k, v in self._db_for_partition(partition).items()}


@pytest.fixture
def table(tmp_path):
    store = RocksStore(tmp_path)
    yield SimpleNamespace(name="seen_events", data=store,
                          changelog_topic=SimpleNamespace(get_topic_name=lambda: "seen-changelog"))
    for db in store.dbs.values():
        db.close()


def put(table, partition: int, rows: dict[str, list[int]]) -> None:
    db = table.data._db_for_partition(partition)
    for key, value in rows.items():
        db[orjson.dumps(key)] = orjson.dumps(value)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def batch_writing(table, sweep, partition: int, new: dict[str, list[int]]) -> list:
    """One batch that writes `new` rows to `partition`, swept on flush; the changelog records sent."""
    sent: list = []

    async def send(topic, p, records):
        sent.extend((topic, p, key, value) for key, value in records)

    batch = BatchedWrites(send, {table.name: sweep})
    rows = batch.rows(table)
    for key, value in new.items():
        rows.set(key, partition, value)
    await batch.flush()
    return sent


def test_a_row_is_dropped_once_older_than_kept_and_an_unstamped_one_is_stamped():
    assert verdict(stamped(0, 5, NOW - KEEP_S), NOW, KEEP_S) == "keep"
    assert verdict(stamped(0, 5, NOW - KEEP_S - 1), NOW, KEEP_S) == "drop"
    assert verdict([0, 5], NOW, KEEP_S) == "stamp"
    assert verdict({"other": "shape"}, NOW, KEEP_S) == "keep"


async def test_expired_rows_leave_the_store_and_get_tombstones_with_the_batch(table):
    put(table, 0, {"old": stamped(0, 1, NOW - 2 * KEEP_S), "fresh": stamped(0, 2, NOW - 10), "legacy": [0, 3]})
    db = table.data._db_for_partition(0)
    db[b"__faust\0offset__"] = b"42"  # Faust's persisted offset shares the database: not a row
    db[b'"bad"'] = b"{not json"  # nor is what does not decode
    put(table, 1, {"other-partition": stamped(1, 1, NOW - 2 * KEEP_S)})
    sweep = TableSweep(KEEP_S, clock=Clock(NOW))
    sent = await batch_writing(table, sweep, 0, {"new": stamped(0, 9, NOW)})
    assert db[b"__faust\0offset__"] == b"42" and db[b'"bad"'] == b"{not json"  # left alone
    del db[b"__faust\0offset__"], db[b'"bad"']
    assert table.data.rows(0) == {"fresh": stamped(0, 2, NOW - 10), "legacy": stamped(0, 3, NOW), "new": stamped(0, 9, NOW)}
    assert ("seen-changelog", 0, orjson.dumps("old"), None) in sent  # a tombstone: recovery drops it too
    assert ("seen-changelog", 0, orjson.dumps("legacy"), orjson.dumps(stamped(0, 3, NOW))) in sent
    assert table.data.rows(1) == {"other-partition": stamped(1, 1, NOW - 2 * KEEP_S)}  # not written: not swept


async def test_a_sweep_visits_a_bounded_number_of_rows_a_batch_and_goes_on_where_it_stopped(table):
    expired = {f"k{i:04d}": stamped(0, i, NOW - 2 * KEEP_S) for i in range(3 * MIN_VISITS)}
    put(table, 0, expired)
    clock = Clock(NOW)
    sweep = TableSweep(KEEP_S, clock=clock)
    counts = []
    for n in range(3):
        await batch_writing(table, sweep, 0, {f"new{n}": stamped(0, 1000 + n, NOW)})
        counts.append(sum(key.startswith("k") for key in table.data.rows(0)))
    # visits_for(1) rows a batch, from where the last batch stopped, until the old rows are gone
    step = visits_for(1)
    assert counts == [max(0, len(expired) - step * (n + 1)) for n in range(3)]
    assert set(table.data.rows(0)) == {"new0", "new1", "new2"}


async def test_after_a_whole_pass_a_partition_rests_before_the_next(table):
    clock = Clock(NOW)
    sweep = TableSweep(KEEP_S, clock=clock)
    await batch_writing(table, sweep, 0, {"a": stamped(0, 1, NOW)})  # the pass ends: the table is small
    clock.now = NOW + 2 * KEEP_S  # "a" is past its keep, but the partition rests
    assert sweep.step(BatchedWrites(None).rows(table), 0, NOW + KEEP_S / RESTS_PER_KEEP - 1, 10) == (0, 0)
    await batch_writing(table, sweep, 0, {"b": stamped(0, 2, clock.now)})
    assert set(table.data.rows(0)) == {"b"}
