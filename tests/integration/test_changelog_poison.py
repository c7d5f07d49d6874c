"""The gateway's changelog follower on the real broker: a poison record becomes a dead letter,
and a broker error (here: the dead letter's send failing once) resumes where it stopped
instead of re-reading every changelog from the start."""
from __future__ import annotations

import asyncio
import time

import orjson

from app.gateway.changelog import ChangelogFollower
from app.gateway.read_model import ReadModel
from app.kafka_io import make_producer
from app.metrics import Metrics
from tables.wire.records import CatalogChange
from tables.wire.names import changelog_topic
from models.errors import BrokerUnavailable
from tables import catalog
from tests.gateway.conftest import MemorySink


class FlakySink(MemorySink):
    """Refuses the first dead letter as a broker outage would."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    async def send_dead_letter(self, key, value, headers) -> None:
        if self.failures == 0:
            self.failures += 1
            raise BrokerUnavailable("Kafka did not take the dead letter: (simulated)")
        await super().send_dead_letter(key, value, headers)


class Recording(ChangelogFollower):
    """Notes the offsets the consumer hands over, to tell a resume from a re-read."""

    def __init__(self, *args, watch: str) -> None:
        super().__init__(*args)
        self.watch, self.fetched = watch, []

    async def _apply(self, tp, records) -> None:
        self.fetched += [r.offset for r in records if tp.topic == self.watch]
        await super()._apply(tp, records)


def entry(n: int) -> bytes:
    return orjson.dumps(catalog.to_item(CatalogChange("upsert", f"i{n}", time.time(), title=f"item {n}")))


async def produce(settings, topic, records) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key, partition=0)
    finally:
        await producer.stop()


async def wait_for(predicate, timeout_s=60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_poison_is_dead_lettered_and_a_broker_error_resumes_at_the_applied_offsets(stack_settings):
    async def run() -> None:
        settings = stack_settings
        topic = changelog_topic(settings, catalog.NAME)
        before = [(orjson.dumps(f"i{n}"), entry(n)) for n in range(5)]
        after = [(orjson.dumps(f"i{n}"), entry(n)) for n in range(5, 8)]
        await produce(settings, topic, [*before, (b'"bad"', b"{not json"), *after])
        model, sink = ReadModel(settings), FlakySink()
        applied: list[str] = []
        model.subscribe(lambda table, key, old, new: applied.append(key))
        follower = Recording(settings, model, Metrics(), sink, watch=topic)
        await follower.start()
        try:
            await wait_for(lambda: len(applied) >= 8 and len(sink.dead_letters) == 1)
            await asyncio.wait_for(follower.caught_up.wait(), 30)
        finally:
            await follower.stop()
        assert sink.failures == 1  # the follower did reconnect once
        # Each record applied once, and the reconnect sought to offset 5 (the failed dead
        # letter) rather than fetching every changelog from the start again.
        assert applied == [f"i{n}" for n in range(8)]
        assert [follower.fetched.count(n) for n in range(5)] == [1] * 5 and follower.fetched.count(5) == 2
        (key, value, headers), = sink.dead_letters
        assert (key, value) == (b'"bad"', b"{not json")
        assert dict(headers)["source_offset"] == b"5" and b"not valid JSON" in dict(headers)["reason"]
        assert "bad" not in model.tables[catalog.NAME] and model.tables[catalog.NAME]["i7"]["title"] == "item 7"

    asyncio.run(run())
