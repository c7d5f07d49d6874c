"""Reading past a record aiokafka cannot parse, instead of failing on it forever."""
from aiokafka import TopicPartition

from app.consumer_reads import read_batch
from tests.unit.test_learner_records import FakeConsumer, record

TP = TopicPartition("t", 0)


async def test_records_up_to_an_unreadable_one_then_past_it():
    consumer = FakeConsumer({TP: [record(TP, i, str(i).encode()) for i in range(7)]}, unreadable={2, 4})
    consumer.seek(TP, 0)
    calls = [await read_batch(consumer, TP, timeout_ms=1000, max_records=20) for _ in range(4)]
    assert [([m.offset for m in records], bad) for records, bad in calls] == [
        ([0, 1], 2), ([3], 4), ([5, 6], None), ([], None)]


async def test_a_caller_that_does_not_wait_still_gets_past_it():
    """With timeout 0 the learner got nothing back after each failed fetch and failed on the
    whole fetch again on its next call: it never learned another sample."""
    consumer = FakeConsumer({TP: [record(TP, i, b"x") for i in range(6)]}, unreadable={1, 3})
    consumer.seek(TP, 0)
    read, skipped = [], []
    for _ in range(10):
        records, bad = await read_batch(consumer, TP, timeout_ms=0, max_records=20)
        read += [m.offset for m in records]
        skipped += [bad] if bad is not None else []
    assert read == [0, 2, 4, 5] and skipped == [1, 3]


async def test_a_batch_never_holds_more_than_asked_while_stepping():
    consumer = FakeConsumer({TP: [record(TP, i, b"x") for i in range(6)]}, unreadable={5})
    consumer.seek(TP, 0)
    records, bad = await read_batch(consumer, TP, timeout_ms=1000, max_records=3)
    assert [m.offset for m in records] == [0, 1, 2] and bad is None
    records, bad = await read_batch(consumer, TP, timeout_ms=1000, max_records=3)
    assert [m.offset for m in records] == [3, 4] and bad == 5
    assert await consumer.position(TP) == 6
