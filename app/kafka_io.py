"""Kafka plumbing shared by the gateway and the jobs: waiting for the broker, topics, a producer."""
from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Iterable
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.helpers import create_ssl_context
from aiokafka.structs import ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from models.errors import BrokerUnavailable
from tables.wire.records import UserEvent
from app.settings import Settings
from tables.wire.names import TABLE_NAMES, changelog_topic

log = logging.getLogger(__name__)


async def wait_for_broker(settings: Settings, timeout_s: float = 60.0) -> None:
    """Return once the cluster answers a metadata request."""
    deadline = time.monotonic() + timeout_s
    while True:
        admin = make_admin(settings, request_timeout_ms=5000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except (KafkaConnectionError, OSError, asyncio.TimeoutError) as exc:
            if time.monotonic() > deadline:
                raise BrokerUnavailable(
                    f"Kafka at {settings.kafka.bootstrap_servers} did not answer in {timeout_s:.0f}s "
                    "(start it with scripts/kafka.sh start, or set KAFKA_BROKER)") from exc
            await asyncio.sleep(0.5)
        finally:
            await admin.close()


async def delete_run_topics(settings: Settings) -> list[str]:
    """Delete the topics of the settings' prefix and of its app id (Faust's changelogs and its
    own); their names. For benches and tests, each on a prefix of its own on a shared broker."""
    admin = make_admin(settings)
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(f"{settings.topics.prefix}.")
                or t.startswith(f"{settings.topics.app_id}-")]
        if mine:
            await admin.delete_topics(mine)
        return mine
    finally:
        await admin.close()


async def ensure_topics(settings: Settings, timeout_s: float = 60.0) -> list[str]:
    """Create the input topics and the tables' changelogs; returns those created.

    Returns once every partition of every one has a leader. A worker that subscribed while
    a changelog Faust had just created still had no partitions took it for a mismatch with
    its source topic (`PartitionsMismatch`, "has 0 partitions"), crashed its agent until
    the supervisor gave up, and then stood still; seen on a freshly formatted broker.
    """
    await wait_for_broker(settings, timeout_s)
    t = settings.topics
    n = settings.topics.partitions
    wanted: dict[str, tuple[int, dict[str, str]]] = {
        name: (n, {}) for name in (t.events, t.catalog, t.item_events, t.dead_letters, t.campaigns)}
    # One partition each: the learner reads every sample in order, and every gateway reads
    # every model update in the order the learner decided them.
    wanted.update({t.samples: (1, {}), t.model_commands: (1, {}),
                   t.model_updates: (1, {"max.message.bytes": str(model_update_bytes(settings))})})
    # As Faust declares a table's changelog: the table's partitions, compacted.
    wanted.update({changelog_topic(settings, table): (n, {"cleanup.policy": "compact"}) for table in TABLE_NAMES})
    # The latest vector of each item, kept by compaction for every gateway that starts later.
    wanted[t.item_vectors] = (n, {"cleanup.policy": "compact"})
    admin = make_admin(settings)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(name, parts, 1, topic_configs=config)
               for name, (parts, config) in wanted.items() if name not in existing]
        if new:
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass  # another process won the race
        await _wait_for_leaders(admin, {name: parts for name, (parts, _) in wanted.items()}, timeout_s)
        return [topic.name for topic in new]
    finally:
        await admin.close()


async def _wait_for_leaders(admin: AIOKafkaAdminClient, partitions: dict[str, int], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        ready = {topic["topic"] for topic in await admin.describe_topics(list(partitions))
                 if topic["error_code"] == 0
                 and sum(p["leader"] >= 0 for p in topic["partitions"]) >= partitions[topic["topic"]]}
        waiting = sorted(set(partitions) - ready)
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise BrokerUnavailable(f"topics without a leader for every partition after {timeout_s:.0f}s: {waiting}")
        await asyncio.sleep(0.2)


# Whose Kafka principal a client logs in as: the process's own, or the learner's (which alone
# may write model-updates; it runs inside a worker, whose own principal may not).
Role = Literal["process", "learner"]


def kafka_credentials(settings: Settings, role: Role = "process") -> tuple[str, str]:
    """(username, password) for SASL; the learner's own when it has one set."""
    if role == "learner" and settings.learner.kafka_username:
        return settings.learner.kafka_username, settings.learner.kafka_password
    return settings.kafka.username, settings.kafka.password


def kafka_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for SSL and SASL_SSL (the settings' CA file, else the system's); else None."""
    if not settings.kafka.security_protocol.endswith("SSL"):
        return None
    return create_ssl_context(cafile=settings.kafka.ssl_cafile or None)


def client_config(settings: Settings, role: Role = "process") -> dict[str, Any]:
    """Connection and security arguments every aiokafka client of streamrank is built with."""
    config: dict[str, Any] = {"bootstrap_servers": settings.kafka.bootstrap_servers,
                              "security_protocol": settings.kafka.security_protocol}
    if settings.kafka.security_protocol.startswith("SASL"):
        username, password = kafka_credentials(settings, role)
        config.update(sasl_mechanism=settings.kafka.sasl_mechanism,
                      sasl_plain_username=username, sasl_plain_password=password)
    context = kafka_ssl_context(settings)
    if context is not None:
        config["ssl_context"] = context
    return config


def make_consumer(settings: Settings, *topics: str, role: Role = "process", **options: Any) -> AIOKafkaConsumer:
    """A consumer with the settings' connection and security; `options` as for aiokafka.

    An offset that is gone (before the first record retention left, or none committed) resumes
    at the first record left, not at aiokafka's default, the end: every streamrank reader seeks
    where it stopped or reads a topic whole, and the end skipped every record still there (a
    gateway started after retention served no learner version; a learner resumed from an old
    checkpoint skipped every sample left)."""
    return AIOKafkaConsumer(*topics, **client_config(settings, role), **{"auto_offset_reset": "earliest", **options})


def make_admin(settings: Settings, *, role: Role = "process", **options: Any) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**client_config(settings, role), **options)


def make_producer(settings: Settings, *, role: Role = "process", **options: Any) -> AIOKafkaProducer:
    """The project's producer: acks from every replica, idempotent, lingering a little."""
    defaults: dict[str, Any] = dict(acks="all", linger_ms=5, max_batch_size=256 * 1024,
                                    max_request_size=settings.limits.request_bytes * 2, enable_idempotence=True)
    return AIOKafkaProducer(**client_config(settings, role), **{**defaults, **options})


async def produce_events(settings: Settings, events: Iterable[UserEvent]) -> int:
    """Produce user events keyed by user and wait for every ack; returns how many were sent."""
    producer = make_producer(settings)
    await producer.start()
    sent = 0
    try:
        for e in events:
            await producer.send(settings.topics.events, key=e.user_id.encode(), value=e.to_json())
            sent += 1
        await producer.flush()
    finally:
        await producer.stop()
    return sent


def model_update_bytes(settings: Settings) -> int:
    """The largest model-updates record batch: a version of `version_max_bytes`, with room for
    its headers and the batch's framing."""
    return settings.learner.version_max_bytes + 64 * 1024


def make_model_update_producer(settings: Settings) -> AIOKafkaProducer:
    """The learner's producer: versions are the largest records streamrank writes."""
    return make_producer(settings, role="learner", max_request_size=model_update_bytes(settings))


async def model_update_records(settings: Settings) -> list[ConsumerRecord]:
    """Every record on the model-updates topic (one partition) so far, oldest first (one whose
    header key is not UTF-8 among them: `app.kafka_compat`)."""
    tp = TopicPartition(settings.topics.model_updates, 0)
    consumer = make_consumer(settings, enable_auto_commit=False, max_partition_fetch_bytes=model_update_bytes(settings))
    await consumer.start()
    try:
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, 0)  # the first record still there (see make_consumer)
        records: list[ConsumerRecord] = []
        while await consumer.position(tp) < end:
            records.extend((await consumer.getmany(tp, timeout_ms=1000, max_records=500)).get(tp, []))
        return records
    finally:
        await consumer.stop()
