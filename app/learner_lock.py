"""Which learner process is the active one: a Kafka consumer group used as a lock.

Every `streamrank learner` joins the group `<app_id>-learner` on the one-partition
model-commands topic. The group gives that partition to one member: that learner is active,
the others wait as hot standbys (started, connected, nothing loaded). When the active one
dies, the broker drops it after `learner_session_timeout_s` without a heartbeat and hands the
partition to a standby, which loads the last checkpoint and goes on from its offsets. A clean
stop leaves the group at once, after its checkpoint.

The lock consumer reads nothing (the partition is paused): the learner reads model-commands
with its own assigned consumer, positioned from its checkpoint. A learner that loses the
partition stops learning before the next step (no two learners publish at once; see
`held`), and its unsaved work is redone by the new one from the checkpoint.
"""
from __future__ import annotations

import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from app.kafka_io import make_consumer
from app.settings import Settings

log = logging.getLogger(__name__)


class _Listener(ConsumerRebalanceListener):
    def __init__(self, lock: "LearnerLock") -> None:
        self.lock = lock

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # Called before a rebalance: from here on another member may be given the partition.
        if self.lock.held:
            log.warning("learner lock released (group rebalancing)")
        self.lock.held = False

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.lock.held = self.lock.tp in assigned
        if self.lock.held:
            # A new term: even when it is this member again, another one may have held the
            # lock in between, so what this learner holds in memory may be stale.
            self.lock.term += 1
            self.lock.consumer.pause(self.lock.tp)  # membership is the lock; the records are not ours
            log.info("learner lock taken: this learner is the active one")
        else:
            log.info("learner lock held by another learner: standing by")


class LearnerLock:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tp = TopicPartition(settings.topics.model_commands, 0)
        self.held = False
        self.term = 0  # counts the times this member was given the lock
        session_ms = int(settings.learner.session_timeout_s * 1000)
        self.consumer: AIOKafkaConsumer = make_consumer(
            settings, role="learner", group_id=f"{settings.topics.app_id}-learner", enable_auto_commit=False,
            session_timeout_ms=session_ms, heartbeat_interval_ms=max(100, session_ms // 5),
            # A rebalance waits this long for members to rejoin: a standby must not wait minutes.
            max_poll_interval_ms=max(session_ms * 3, 30_000),
            auto_offset_reset="latest",  # for the group's membership only: it reads no command
            metadata_max_age_ms=10_000)  # a learner started before the topics finds them soon

    async def start(self) -> None:
        await self.consumer.start()
        self.consumer.subscribe([self.tp.topic], listener=_Listener(self))

    async def poll(self) -> bool:
        """Keep the membership alive (aiokafka leaves a group whose consumer is not polled) and
        say whether this process holds the lock."""
        await self.consumer.getmany(timeout_ms=0)
        return self.held

    async def stop(self) -> None:
        """Leave the group: a standby is given the lock without waiting for the session timeout."""
        self.held = False
        await self.consumer.stop()
