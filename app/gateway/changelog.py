"""Follows the tables' changelog topics from the start, keeping the read model current."""
from __future__ import annotations

import asyncio
import logging

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from app.gateway.read_model import TABLES, ReadModel
from app.gateway.tasks import cancel_and_wait
from app.kafka_io import make_admin, make_consumer
from app.metrics import Metrics
from app.settings import Settings
from app.worker import changelog_topic

log = logging.getLogger(__name__)


class ChangelogFollower:
    """Reads every partition of every changelog (no consumer group: each gateway keeps all)."""

    def __init__(self, settings: Settings, model: ReadModel, metrics: Metrics) -> None:
        self.settings = settings
        self.model = model
        self.metrics = metrics
        self.topics = {changelog_topic(settings, name): name for name in TABLES}
        self.caught_up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="changelog-follower")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _run(self) -> None:
        # Retries forever: a gateway outlives broker restarts and may start before the worker.
        while True:
            try:
                await self._wait_for_topics()
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 — any broker trouble: log, back off, reconnect
                log.exception("changelog follower failed; reconnecting in 1s")
                await asyncio.sleep(1.0)

    async def _wait_for_topics(self) -> None:
        # Subscribing to a missing topic would let the broker auto-create it without the
        # compaction Faust gives changelogs, so wait until the worker has made them.
        while True:
            admin = make_admin(self.settings)
            try:
                await admin.start()
                if set(self.topics) <= set(await admin.list_topics()):
                    return
            finally:
                await admin.close()
            await asyncio.sleep(1.0)

    async def _follow(self) -> None:
        consumer = make_consumer(
            self.settings, *self.topics, group_id=None,
            enable_auto_commit=False, auto_offset_reset="earliest", metadata_max_age_ms=5000)
        await consumer.start()
        targets: dict[TopicPartition, int] | None = None
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=200, max_records=10000)
                for tp, records in batches.items():
                    self._apply(self.topics[tp.topic], records)
                if not self.caught_up.is_set():
                    targets = await self._check_caught_up(consumer, targets)
        finally:
            await consumer.stop()

    def _apply(self, table: str, records: list) -> None:  # type: ignore[type-arg]
        for rec in records:
            value = orjson.loads(rec.value) if rec.value is not None else None
            self.model.apply(table, orjson.loads(rec.key), value)  # Faust writes str keys as JSON
        self.metrics.state_applied.labels(table=table).inc(len(records))
        self.metrics.state_records.labels(table=table).set(len(self.model.tables[table]))

    async def _check_caught_up(
        self, consumer: AIOKafkaConsumer, targets: dict[TopicPartition, int] | None,
    ) -> dict[TopicPartition, int] | None:
        """Ready once every partition reached the end offsets seen when it was assigned."""
        assigned = consumer.assignment()
        if {tp.topic for tp in assigned} != set(self.topics):
            return None
        if targets is None or set(targets) != assigned:
            targets = await consumer.end_offsets(list(assigned))
        lag = {tp: end - await consumer.position(tp) for tp, end in targets.items()}
        if all(v <= 0 for v in lag.values()):
            self.caught_up.set()
            log.info("gateway state caught up with the changelogs: %s", self.model.sizes())
        return targets
