"""A record whose header key is not UTF-8 stalls no consumer (app.kafka_compat): a plain
consumer over several partitions, a running Faust worker and the gateway's changelog follower
each get past it to the valid records after it. Such a record is itself used like any other:
applied when its value is valid, dead-lettered with its reason when not."""
from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from aiokafka.producer import message_accumulator, producer
from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy

from app.gateway.changelog import ChangelogFollower
from app.gateway.read_model import ReadModel
from app.kafka_io import make_consumer, make_producer
from app.metrics import Metrics
from app.processes import scrape, worker_process
from tables.wire.records import CatalogChange, UserEvent
from tables.wire.names import changelog_topic
from tables import catalog
from tests.gateway.conftest import MemorySink

BAD_KEY = b"\xff\xfe"
BAD_KEY_TEXT = BAD_KEY.decode("utf-8", "surrogateescape")  # how a consumer now sees it


class RawKey(str):
    """A header key the Python record builder writes as raw bytes (as `kcat -H` can)."""

    def encode(self, *args: object, **kwargs: object) -> bytes:
        return BAD_KEY


BAD_HEADERS = [(RawKey("k"), b"v")]


@pytest.fixture
def raw_header_producer(monkeypatch):
    """Producers built now write with aiokafka's Python builder, which takes a `RawKey` (the C
    one encodes keys itself)."""
    for module in (producer, message_accumulator):
        monkeypatch.setattr(module, "DefaultRecordBatchBuilder", _DefaultRecordBatchBuilderPy)


async def produce(settings, topic: str, records: list[tuple[int, bytes | None, bytes, list]]) -> None:
    """(partition, key, value, headers) each, sent one by one: a bad record is a batch of its own,
    so the valid record after it is in another batch of the same fetch."""
    client = make_producer(settings)
    await client.start()
    try:
        for partition, key, value, headers in records:
            await client.send_and_wait(topic, value, key=key, partition=partition, headers=headers)
    finally:
        await client.stop()


async def test_a_consumer_over_several_partitions_gets_past_it(stack_settings, raw_header_producer):
    settings = stack_settings
    topic, parts = settings.topics.events, settings.topics.partitions
    await produce(settings, topic, [
        (p, None, f"{p}-{n}".encode(), BAD_HEADERS if n == 1 else [("k", b"v")]) for p in range(parts) for n in range(3)])
    consumer = make_consumer(settings, topic, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    got = {}
    try:
        deadline = time.monotonic() + 30
        while len(got) < 3 * parts:
            assert time.monotonic() < deadline, f"stuck after {sorted(got)}"
            for records in (await consumer.getmany(timeout_ms=500)).values():
                got.update({r.value.decode(): r.headers for r in records})
    finally:
        await consumer.stop()
    assert got == {f"{p}-{n}": ((BAD_KEY_TEXT if n == 1 else "k", b"v"),) for p in range(parts) for n in range(3)}


def event(n: int) -> tuple[bytes, bytes]:
    ev = UserEvent(f"e{n}", f"u{n}", "view", time.time(), item_id=f"i{n}")
    return ev.user_id.encode(), ev.to_json()


async def test_a_worker_applies_the_event_after_it(stack_settings, raw_header_producer, tmp_path):
    settings = stack_settings.replace(learner_enabled=False)
    topic = settings.topics.events
    await produce(settings, topic, [
        (0, *event(1), BAD_HEADERS),        # valid value: applied as any event
        (0, b"u", b"not json", BAD_HEADERS),  # invalid value: dead-lettered with its reason
        (0, *event(2), []),                 # the valid event after them
        (1, *event(3), []),                 # another partition, fetched with partition 0
    ])
    worker = worker_process(settings, tmp_path / "worker.log").start()
    try:
        deadline = time.monotonic() + 60
        metrics: dict[str, float] = {}
        while metrics.get("streamrank_events_processed_total", 0) < 3 or not metrics.get("streamrank_dead_letters_total"):
            assert worker.alive() and time.monotonic() < deadline, (metrics, worker.tail())
            await asyncio.sleep(0.5)
            try:
                metrics = scrape(settings.worker.metrics_port)
            except OSError:
                pass  # not listening yet
        assert metrics["streamrank_events_processed_total"] == 3 and metrics["streamrank_dead_letters_total"] == 1
    finally:
        worker.stop()


def entry(n: int) -> tuple[bytes, bytes]:
    change = CatalogChange("upsert", f"i{n}", time.time(), title=f"item {n}")
    return orjson.dumps(f"i{n}"), orjson.dumps(catalog.to_item(change))


async def test_the_changelog_follower_gets_past_it(stack_settings, raw_header_producer):
    settings = stack_settings
    await produce(settings, changelog_topic(settings, catalog.NAME), [
        (0, *entry(0), BAD_HEADERS),            # valid value: applied
        (0, b'"bad"', b"{not json", BAD_HEADERS),  # invalid value: dead-lettered with its reason
        (0, *entry(1), []),
        (1, *entry(2), []),
    ])
    model, sink = ReadModel(settings), MemorySink()
    follower = ChangelogFollower(settings, model, Metrics(), sink)
    await follower.start()
    try:
        deadline = time.monotonic() + 30
        while len(model.tables[catalog.NAME]) < 3 or not sink.dead_letters:
            assert time.monotonic() < deadline, (model.sizes(), sink.dead_letters)
            await asyncio.sleep(0.05)
    finally:
        await follower.stop()
    assert sorted(model.tables[catalog.NAME]) == ["i0", "i1", "i2"]
    (key, value, headers), = sink.dead_letters
    assert (key, value) == (b'"bad"', b"{not json") and b"not valid JSON" in dict(headers)["reason"]
