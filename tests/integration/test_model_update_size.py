"""A learner version larger than Kafka's usual record limits is published and read back.

A full version (a rollback, a republish after a restart) of the 1M-shopper scale shop is 14 MB
at 600k events: over this project's broker default (message.max.bytes 10 MiB, scripts/kafka.sh),
over the producer's request size it had (8 MiB) and aiokafka's 1 MiB fetch default. So the
model-updates topic is made with `LearnerSettings.version_max_bytes` (64 MiB) as its limit."""
from __future__ import annotations

import asyncio
import os

from app.kafka_io import make_model_update_producer, model_update_records


def test_a_version_over_the_brokers_default_record_limit_is_published_and_read(stack_settings):
    settings = stack_settings
    value = os.urandom(12 * 1024 * 1024)  # random: compression cannot shrink it under the limits

    async def publish() -> None:
        producer = make_model_update_producer(settings)  # the learner's
        await producer.start()
        try:
            await producer.send_and_wait(settings.topics.model_updates, value, key=b"version")
        finally:
            await producer.stop()

    asyncio.run(publish())
    assert [r.value for r in asyncio.run(model_update_records(settings))] == [value]
