"""Follows the model-updates topic and serves the online learner's versions.

Every gateway reads the one partition from the start (no consumer group), so all of them
apply the same versions in the same order. A version record holds the rows changed since
its parent (or everything, for a rollback or a restarted learner); the gateway builds the
new serving model off the event loop, copy-on-write from the parent it keeps, and installs
it with one reference assignment: a request ranks against one whole version. Refusals and
admin commands on the same topic are for the learner and the logs.
"""
from __future__ import annotations

import asyncio
import logging

import orjson
from aiokafka import TopicPartition

from app.kafka_io import make_consumer

from app.gateway.serving import ServingModels
from app.gateway.tasks import cancel_and_wait
from app.learner import record_type
from app.metrics import Metrics
from app.settings import Settings
from models.online.click_serving import ServingClickModel
from models.online.serving import ServingRecModel, serving_for
from models.online.versions import Version

log = logging.getLogger(__name__)
KEEP_VERSIONS = 4


class ModelUpdatesFollower:
    def __init__(self, settings: Settings, serving: ServingModels, metrics: Metrics) -> None:
        self.settings = settings
        self.serving = serving
        self.metrics = metrics
        self.held: dict[int, tuple[ServingRecModel, ServingClickModel]] = {}
        self.serving_version = 0
        self.caught_up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="model-updates-follower")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _run(self) -> None:
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 — broker trouble: log, back off, reconnect
                log.exception("model-updates follower failed; reconnecting in 1s")
                await asyncio.sleep(1.0)

    async def _follow(self) -> None:
        tp = TopicPartition(self.settings.topics.model_updates, 0)
        consumer = make_consumer(self.settings, enable_auto_commit=False,
                                    max_partition_fetch_bytes=self.settings.max_request_bytes * 4)
        await consumer.start()
        try:
            while tp.topic not in await consumer.topics():
                await asyncio.sleep(1.0)
            consumer.assign([tp])
            # Resume where this follower stopped (a reconnect), else from the start.
            consumer.seek(tp, self._next_offset)
            end = (await consumer.end_offsets([tp]))[tp]
            while True:
                batch = await consumer.getmany(tp, timeout_ms=500, max_records=20)
                for msg in batch.get(tp, []):
                    await self.apply(record_type(msg.headers), msg.value)
                    self._next_offset = msg.offset + 1
                if self._next_offset >= end:
                    self.caught_up.set()
        finally:
            await consumer.stop()

    _next_offset = 0

    async def apply(self, kind: str, payload: bytes) -> None:
        """Apply one model-updates record (versions; the other kinds are for the learner)."""
        if kind == "version":
            version = await asyncio.to_thread(Version.from_bytes, payload)
            base, base_click = self.held.get(version.parent, (None, ServingClickModel.empty()))
            if base is None and not version.full and version.parent != 0:
                log.error("version %d needs parent %d, which this gateway does not hold; waiting for a full one",
                          version.number, version.parent)
                self.metrics.model_load_failures.inc()
                return
            model = await asyncio.to_thread(serving_for, base, version)
            click = await asyncio.to_thread(base_click.apply, version)
            self.held[version.number] = (model, click)
            for old in sorted(self.held)[:-KEEP_VERSIONS]:
                del self.held[old]
            self._install(version.number)
            if "rollback_to" in version.metrics:
                log.warning("serving version %d: a rollback to version %d (%s)", version.number,
                            version.metrics["rollback_to"], version.metrics.get("reason", ""))
        elif kind == "decision":
            log.info("learner decision: %s", orjson.loads(payload).get("reason"))
        self.metrics.online_updates.labels(type=kind or "unknown").inc()

    def _install(self, number: int) -> None:
        self.serving.install_online(*self.held[number])
        self.serving_version = number
        self.metrics.online_version.set(number)
        self.metrics.model_swaps.inc()
