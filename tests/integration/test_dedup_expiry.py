"""Seen event ids expire on the real broker: the worker drops rows past its dedup window with
tombstones on the changelog, and a worker that rebuilds its tables from the changelog has
dropped them too (an old id is taken again; a recent one is still a duplicate)."""
from __future__ import annotations

import asyncio
import shutil
import time

import orjson
from aiokafka import TopicPartition

from app.kafka_io import make_consumer
from app.processes import scrape, worker_process
from tables import seen_events
from tables.wire.names import changelog_topic
from tests.integration.conftest import produce_records, wait_for

WINDOW_S = 8.0
OLD, NEW = 200, 50


def event(event_id: str, user: str) -> tuple[bytes, bytes]:
    body = {"event_id": event_id, "user_id": user, "type": "view", "item_id": "i1", "ts": time.time()}
    return user.encode(), orjson.dumps(body)


def metric(settings, name: str) -> float:
    try:
        return scrape(settings.worker.metrics_port).get(name, 0.0)
    except OSError:  # not serving yet
        return 0.0


async def changelog_records(settings) -> dict[str, list[bytes | None]]:
    """Every value the seen-events changelog holds per key, in order (None: a tombstone)."""
    topic = changelog_topic(settings, seen_events.NAME)
    consumer = make_consumer(settings, group_id=None)
    await consumer.start()
    found: dict[str, list[bytes | None]] = {}
    try:
        parts = [TopicPartition(topic, p) for p in range(settings.topics.partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    found.setdefault(orjson.loads(r.key), []).append(r.value)
    finally:
        await consumer.stop()
    return found


async def test_seen_rows_past_the_window_are_tombstoned_and_stay_gone_after_recovery(stack_settings, tmp_path):
    settings = stack_settings.replace(worker_dedup_window_s=WINDOW_S)
    log = tmp_path / "worker.log"
    await produce_records(settings, [event(f"old{i}", f"u{i}") for i in range(OLD)])
    worker = worker_process(settings, log).start()
    try:
        await wait_for(lambda: metric(settings, "streamrank_events_processed_total") >= OLD, 120,
                       "the first events taken", worker)
        await asyncio.sleep(WINDOW_S + 1)
        await produce_records(settings, [event(f"new{i}", f"u{i}") for i in range(NEW)])
        await wait_for(lambda: metric(settings, "streamrank_table_rows_expired_total") >= OLD, 60,
                       "the old rows dropped", worker)
        assert metric(settings, "streamrank_table_rows_expired_total") == OLD  # none of the new ones
    finally:
        worker.stop()
    changelog = await changelog_records(settings)
    assert all(changelog[f"old{i}"][-1] is None for i in range(OLD))  # tombstoned
    assert all(changelog[f"new{i}"][-1] is not None for i in range(NEW))

    shutil.rmtree(settings.runtime.state_dir / "worker")  # the restarted worker rebuilds from the changelogs
    await produce_records(settings, [event("old0", "u0"), event("new1", "u1")])  # reused ids
    restarted = worker_process(settings, log).start()
    try:
        await wait_for(lambda: metric(settings, "streamrank_events_processed_total")
                       + metric(settings, "streamrank_events_duplicate_total") >= 2, 120,
                       "the reused ids read", restarted)
        assert metric(settings, "streamrank_events_processed_total") == 1  # old0: its row was dropped
        assert metric(settings, "streamrank_events_duplicate_total") == 1  # new1: still in the window
    finally:
        restarted.stop()
