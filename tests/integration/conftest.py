"""Integration tests run against a real Kafka broker: the one at KAFKA_BROKER, else the
project's own (started here with scripts/kafka.sh if it is not up). They never skip: a
broker that cannot be reached or started fails the run."""
from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Iterator

import pytest
from aiokafka import TopicPartition

from app.kafka_io import delete_run_topics, ensure_topics, make_admin, make_consumer, make_producer, model_update_records, wait_for_broker
from app.processes import Process, free_port
from app.settings import ROOT, Settings
from models.errors import BrokerUnavailable
from tables.wire.updates import VERSION_KINDS, decode, signing_key


@pytest.fixture(scope="session")
def broker() -> Settings:
    settings = Settings.from_env()
    try:
        asyncio.run(wait_for_broker(settings, timeout_s=3))
    except BrokerUnavailable:
        started = subprocess.run([str(ROOT / "scripts" / "kafka.sh"), "start"], capture_output=True, text=True)
        if started.returncode != 0:
            pytest.fail(f"no Kafka at {settings.kafka.bootstrap_servers} and it could not be started:\n"
                        f"{started.stdout}\n{started.stderr}")
        asyncio.run(wait_for_broker(settings, timeout_s=60))
    return settings


@pytest.fixture
def stack_settings(broker: Settings, tmp_path) -> Iterator[Settings]:
    """Fresh topics, consumer group and state for one test, on the shared broker; the topics
    are deleted afterwards (a broker kept for many runs otherwise grows to thousands of
    partitions, and took minutes to start)."""
    run = f"it-{uuid.uuid4().hex[:8]}"
    settings = broker.replace(app_id=run, topic_prefix=run, state_dir=tmp_path / "state",
                       worker_metrics_port=free_port(), gateway_port=free_port(), store="rocksdb://")
    asyncio.run(ensure_topics(settings))
    yield settings
    asyncio.run(delete_run_topics(settings))  # the run's inputs, changelogs and Faust's own


# ---- helpers shared by the integration tests --------------------------------------------

async def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str, *procs: Process) -> None:
    """Poll `predicate` every 0.5 s until true; fail at the deadline or when a process dies, with their logs."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        for proc in procs:
            assert proc.alive(), f"{proc.log_path.name} exited:\n{proc.tail()}"
        assert time.monotonic() < deadline, f"{what} not reached in {timeout_s:.0f}s\n" + "\n".join(
            f"--- {p.log_path.name}\n{p.tail(15)}" for p in procs)
        await asyncio.sleep(0.5)


async def published_versions(settings: Settings) -> list[int]:
    """The numbers of the signed versions on model-updates, in topic order."""
    key = signing_key(settings)
    records = [decode(m.value, m.headers, key) for m in await model_update_records(settings)]
    return [r.version for r in records if r.kind in VERSION_KINDS]


async def produce_records(settings: Settings, records: Iterable[tuple[bytes, bytes]]) -> None:
    """(key, value) records to the events topic, every ack awaited."""
    producer = make_producer(settings)
    await producer.start()
    try:
        for key, value in records:
            await producer.send(settings.topics.events, key=key, value=value)
        await producer.flush()
    finally:
        await producer.stop()


async def events_consumed(settings: Settings, topic: str | None = None) -> bool:
    """Has the workers' group committed every record of `topic` (the events by default) produced
    so far? (Its samples are on the samples topic then: Faust commits only after its producer's flush.)"""
    admin = make_admin(settings)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(settings.topics.app_id)
    finally:
        await admin.close()
    consumer = make_consumer(settings)
    await consumer.start()
    try:
        tps = [TopicPartition(topic or settings.topics.events, p) for p in range(settings.topics.partitions)]
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return bool(ends) and all(end == 0 or (tp in committed and committed[tp].offset >= end) for tp, end in ends.items())
