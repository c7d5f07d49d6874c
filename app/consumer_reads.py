"""Reading one partition past a record the Kafka client itself cannot parse.

aiokafka decodes every header key as UTF-8 while it unpacks a fetch; a record whose header
key is not UTF-8 (any client that writes raw header bytes can make one) fails the whole
`getmany` with UnicodeDecodeError, without moving the position, on every retry: a reader
that retries is stuck on it for good. Here the reader then goes one record at a time up to
it, and seeks past it.
"""
from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

UNREADABLE = "unreadable by the Kafka client: a header key is not UTF-8 text"
# The failed fetch is dropped and made again: a caller's timeout of 0 would get nothing back
# each time, step no further, and fail on the whole fetch again on its next call, forever.
STEP_TIMEOUT_MS = 5000


async def read_batch(consumer: AIOKafkaConsumer, tp: TopicPartition, timeout_ms: int,
                     max_records: int) -> tuple[list[ConsumerRecord], int | None]:
    """(records of `tp`, offset of an unreadable record skipped right after them, or None)."""
    try:
        batch = await consumer.getmany(tp, timeout_ms=timeout_ms, max_records=max_records)
        return batch.get(tp, []), None
    except UnicodeDecodeError:
        pass
    records: list[ConsumerRecord] = []
    while len(records) < max_records:
        position = await consumer.position(tp)
        try:
            batch = await consumer.getmany(tp, timeout_ms=max(timeout_ms, STEP_TIMEOUT_MS), max_records=1)
        except UnicodeDecodeError:
            consumer.seek(tp, position + 1)
            return records, position
        if not batch.get(tp):
            break
        records.extend(batch[tp])
    return records, None
