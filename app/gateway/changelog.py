"""Follows the tables' changelog topics from the start, keeping the read model current.

A record the read model cannot take (a key or value that is not JSON, a key that is not a
string, a value of the wrong shape for its table) goes to the dead letters and the follower
goes on: retrying it would stall every table behind it. A null value is a delete. After a
broker error the follower resumes at the offsets it had reached, not at the start.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from app.gateway.read_model import TABLES, ReadModel
from app.gateway.sink import EventSink
from app.gateway.tasks import cancel_and_wait
from app.kafka_io import make_admin, make_consumer
from app.metrics import Metrics
from tables.wire.dead_letters import dead_letter_headers, reason_label
from app.settings import Settings
from tables.wire.names import changelog_topic
from models.errors import ValidationError
from tables import ad_spend, campaigns, catalog, item_stats, user_profiles

log = logging.getLogger(__name__)
OPTIONAL_TABLES = (campaigns.NAME, ad_spend.NAME)
OPTIONAL_CHECK_S = 10.0  # how often a missing optional changelog is looked for
# How long records are applied before the loop goes back to requests: a fetch can hand over
# thousands of records (a worker's batched commit), and each request that came meanwhile waited.
APPLY_SLICE_S = 0.002
VALIDATORS: dict[str, Callable[[Any], None]] = {
    user_profiles.NAME: user_profiles.validate, item_stats.NAME: item_stats.validate, catalog.NAME: catalog.validate,
    campaigns.NAME: campaigns.validate, ad_spend.NAME: ad_spend.validate}


class ChangelogFollower:
    """Reads every partition of every changelog (no consumer group: each gateway keeps all)."""

    def __init__(self, settings: Settings, model: ReadModel, metrics: Metrics, sink: EventSink) -> None:
        self.settings = settings
        self.model = model
        self.metrics = metrics
        self.sink = sink  # where records the read model cannot take go (the dead letters)
        self.topics = {changelog_topic(settings, name): name for name in TABLES}
        # The ad tables' changelogs appear once a worker that keeps them has run: until then
        # the gateway serves without ads rather than not at all, and picks them up when they do.
        self.optional = {changelog_topic(settings, name) for name in OPTIONAL_TABLES}
        self.following: set[str] = set()
        self.caught_up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # The next offset to apply per partition: kept across reconnects (see _resume).
        self._next: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="changelog-follower")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _run(self) -> None:
        # Retries forever: a gateway outlives broker restarts and may start before the worker.
        while True:
            try:
                self.following = await self._wait_for_topics()
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception:  # any broker trouble: log, back off, reconnect
                log.exception("changelog follower failed; reconnecting in 1s")
                await asyncio.sleep(1.0)

    async def _wait_for_topics(self) -> set[str]:
        """The changelogs to follow: every required one (waited for), and the optional ones made already.

        Subscribing to a missing topic would let the broker auto-create it without the
        compaction Faust gives changelogs, so wait until the worker has made them."""
        while True:
            listed = await self._listed()
            if set(self.topics) - self.optional <= listed:
                return set(self.topics) & listed
            await asyncio.sleep(1.0)

    async def _listed(self) -> set[str]:
        admin = make_admin(self.settings)
        try:
            await admin.start()
            return set(await admin.list_topics())
        finally:
            await admin.close()

    async def _follow(self) -> None:
        consumer = make_consumer(
            self.settings, *sorted(self.following), group_id=None,
            enable_auto_commit=False, metadata_max_age_ms=5000)
        await consumer.start()
        targets: dict[TopicPartition, int] | None = None
        resumed: set[TopicPartition] = set()
        look_again = asyncio.get_running_loop().time() + OPTIONAL_CHECK_S
        try:
            while True:
                if self.following != set(self.topics) and asyncio.get_running_loop().time() > look_again:
                    look_again += OPTIONAL_CHECK_S
                    if (set(self.topics) - self.following) & await self._listed():
                        return  # an optional changelog appeared: reconnect to follow it too (offsets kept)
                resumed = self._resume(consumer, resumed)
                batches = await consumer.getmany(timeout_ms=200, max_records=10000)
                for tp, records in batches.items():
                    await self._apply(tp, records)
                if not self.caught_up.is_set():
                    targets = await self._check_caught_up(consumer, targets)
        finally:
            await consumer.stop()

    def _resume(self, consumer: AIOKafkaConsumer, resumed: set[TopicPartition]) -> set[TopicPartition]:
        """Seek each newly assigned partition to where this follower had got (after a broker
        error); re-reading every changelog from the start would hold the read model back."""
        assigned = consumer.assignment()
        for tp in assigned - resumed:
            if tp in self._next:
                consumer.seek(tp, self._next[tp])
        return set(assigned)

    async def _apply(self, tp: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        table = self.topics[tp.topic]
        applied = 0
        until = time.perf_counter() + APPLY_SLICE_S
        for n, rec in enumerate(records, 1):
            if rec.offset < self._next.get(tp, 0):
                continue  # fetched before the seek of a reconnect: applied already
            reason = self._apply_one(table, rec.key, rec.value)
            if reason is None:
                applied += 1
            else:
                await self._dead_letter(table, rec, reason)
            self._next[tp] = rec.offset + 1
            if n % 16 == 0 and time.perf_counter() > until:
                await asyncio.sleep(0)  # requests that arrived meanwhile run now (see APPLY_SLICE_S)
                until = time.perf_counter() + APPLY_SLICE_S
        self.metrics.state_applied.labels(table=table).inc(applied)
        self.metrics.state_records.labels(table=table).set(len(self.model.tables[table]))
        if table == user_profiles.NAME:
            self.metrics.profile_bytes.set(self.model.profile_bytes)

    def _apply_one(self, table: str, raw_key: bytes | None, raw_value: bytes | None) -> str | None:
        """Apply one changelog record; the reason it cannot be, or None once applied."""
        try:
            key = orjson.loads(raw_key) if raw_key is not None else None  # Faust writes str keys as JSON
            value = orjson.loads(raw_value) if raw_value is not None else None
        except orjson.JSONDecodeError as exc:
            return f"not valid JSON: {exc}"
        if not isinstance(key, str):
            return f"the key must be a JSON string (a {table} key); got {type(key).__name__}"
        try:
            if value is not None:
                VALIDATORS[table](value)
            self.model.apply(table, key, value)
        except ValidationError as exc:
            return exc.reason
        except Exception as exc:  # a record no check foresaw must not stall the follower
            log.exception("changelog record of %s could not be applied", table)
            return f"could not be applied: {exc!r}"[:500]
        return None

    async def _dead_letter(self, table: str, rec: ConsumerRecord[bytes, bytes], reason: str) -> None:
        # A broker error here raises: the follower reconnects and retries this record.
        headers = dead_letter_headers(reason, rec.topic, rec.partition, rec.offset)
        await self.sink.send_dead_letter(rec.key, rec.value, headers)
        self.metrics.dead_letters.labels(source=f"{table}-changelog", reason=reason_label(reason)).inc()
        log.warning("dead letter from %s[%d]@%d: %s", rec.topic, rec.partition, rec.offset, reason)

    async def _check_caught_up(
        self, consumer: AIOKafkaConsumer, targets: dict[TopicPartition, int] | None,
    ) -> dict[TopicPartition, int] | None:
        """Ready once every partition reached the end offsets seen when it was assigned."""
        assigned = consumer.assignment()
        if {tp.topic for tp in assigned} != self.following:
            return None
        if targets is None or set(targets) != assigned:
            targets = await consumer.end_offsets(list(assigned))
        lag = {tp: end - await consumer.position(tp) for tp, end in targets.items()}
        if all(v <= 0 for v in lag.values()):
            self.caught_up.set()
            log.info("gateway state caught up with the changelogs: %s", self.model.sizes())
        return targets
