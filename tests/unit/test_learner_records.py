"""The learner's Kafka side with the clients replaced by in-memory ones: a bad sample or a
bad command is dead-lettered and skipped, and version numbers only go forward across restarts."""
from __future__ import annotations

import time
from dataclasses import replace

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from app.learner import LearnerService
from app.metrics import Metrics
from app.settings import Settings
from tables.wire.updates import (UpdateRecord, decode, encode, encode_command, encode_json, encode_version,
                                read_version, signing_key)
from models.online.versions import LearnerConfig, OnlineLearner
from tests.unit.online_streams import chain_stream, small_model


class FakeConsumer:
    """Enough of AIOKafkaConsumer for the learner: records per partition, a position each."""

    def __init__(self, records: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        self.records = records
        self.pos: dict[TopicPartition, int] = {}

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = list(partitions)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.pos[tp] = offset

    async def position(self, tp: TopicPartition) -> int:
        return self.pos.get(tp, 0)

    def highwater(self, tp: TopicPartition) -> int:
        return len(self.records.get(tp, []))

    async def beginning_offsets(self, partitions):
        return {tp: 0 for tp in partitions}

    async def end_offsets(self, partitions):
        return {tp: len(self.records.get(tp, [])) for tp in partitions}

    async def getmany(self, tp: TopicPartition, timeout_ms: int = 0, max_records: int | None = None):
        start = self.pos.get(tp, 0)
        out = self.records.get(tp, [])[start:start + (max_records or 10**9)]
        self.pos[tp] = start + len(out)
        return {tp: out} if out else {}


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]] = []

    async def send_and_wait(self, topic: str, value: bytes, key: bytes | None = None, headers=None) -> None:
        self.sent.append((topic, value, key, list(headers or [])))


def record(tp: TopicPartition, offset: int, value: bytes | None, headers=()) -> ConsumerRecord:
    return ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, b"k", value, None, 1, len(value or b""),
                          list(headers))


# A header key that is not UTF-8, as app/kafka_compat.py hands it over (surrogate-escaped).
RAW_HEADER = [(b"\xff".decode("utf-8", "surrogateescape"), b"x")]


def sample_record(tp: TopicPartition, offset: int, history: list[str], target: str) -> ConsumerRecord:
    body = {"kind": "next", "user": "u", "history": history, "target": target, "ts": 1.0, "src": [0, offset]}
    return record(tp, offset, orjson.dumps(body))


@pytest.fixture
def service(tmp_path) -> LearnerService:
    settings = Settings().replace(state_dir=tmp_path, topic_prefix="t")
    service = LearnerService(settings, Metrics())
    service.key = signing_key(settings)
    service.learner = OnlineLearner(small_model(), config=LearnerConfig(min_samples=1, guard_ratio=0.01))
    service._producer = FakeProducer()
    return service


def dead_letters(service: LearnerService) -> list[tuple[bytes, dict[str, bytes]]]:
    return [(value, dict(headers)) for topic, value, _, headers in service._producer.sent
            if topic == service.settings.topics.dead_letters]


def published(service: LearnerService) -> list[UpdateRecord]:
    return [decode(value, headers, service.key) for topic, value, _, headers in service._producer.sent
            if topic == service.settings.topics.model_updates]


async def test_bad_samples_are_dead_lettered_and_the_rest_learned(service):
    tp = service.samples_tp
    good = [sample_record(tp, o, h, t) for o, (h, t) in enumerate(chain_stream(10, seed=1))]
    bad = [record(tp, 0, b"{nope"), record(tp, 0, b"[1]"), record(tp, 0, None),
           record(tp, 0, orjson.dumps({"kind": "next", "history": ["a"], "target": 3, "src": [0, 1]})),
           record(tp, 0, orjson.dumps({"kind": "next", "history": ["a", 2], "target": "b", "src": [0, 1]})),
           record(tp, 0, orjson.dumps({"kind": "click", "user": "u", "item": "i", "position": "1", "label": 1,
                                       "src": [0, 1]})),
           record(tp, 0, orjson.dumps({"kind": "next", "history": ["a"], "target": "b", "src": "x"})),
           record(tp, 0, orjson.dumps({"kind": "bot", "src": [0, 1]}))]
    stream = [*bad[:4], *good[:10], *bad[4:], *good[10:]]
    stream = [replace(r, offset=i) for i, r in enumerate([*stream, record(tp, 0, b"{}")])]
    # Samples are read by value alone: a header key that is not UTF-8 changes nothing.
    stream[7], stream[-1] = replace(stream[7], headers=RAW_HEADER), replace(stream[-1], headers=RAW_HEADER)
    service._samples = FakeConsumer({tp: stream})
    service.settings = service.settings.replace(learner_batch=8)  # several micro-batches: the lag goes down
    good_offsets = list(range(4, 14)) + list(range(18, len(stream) - 1))
    lags = []
    for _ in range(20):  # as ticks do
        await service._learn_available()
        lags.append((service.metrics.learner_lag._value.get(), len(stream) - service.next_sample_offset))
    assert service.learner.live_rec.samples_learned == len(good_offsets)
    assert service.next_sample_offset == len(stream)
    # The lag metric: samples on the topic not read yet, down to 0 once all are.
    assert all(metric == behind for metric, behind in lags) and lags[0][0] > 0 and lags[-1][0] == 0
    letters = dead_letters(service)
    assert {h["source_topic"] for _, h in letters} == {tp.topic.encode()}
    offsets = sorted(int(h["source_offset"]) for _, h in letters)
    assert offsets == [0, 1, 2, 3, 14, 15, 16, 17, len(stream) - 1]


async def test_only_signed_fresh_commands_for_held_versions_are_carried_out(service):
    learner = service.learner
    for seed in (1, 2):
        learner.step(chain_stream(20, seed=seed))
        assert learner.propose(float(seed)).action == "promote"
    assert learner.version == 2 and 1 in learner.held()
    tp, key = service.commands_tp, service.key
    value, headers = encode_command("rollback", 1, key)
    commands = [
        (b'{"action": "rollback", "version": 1}', [("type", b"command"), ("version", b"1")]),  # unsigned
        encode_command("rollback", 1, b"x" * 32),  # forged (another key)
        (value.replace(b"rollback", b"promote!"), headers),  # altered
        encode_json("decision", 1, {"action": "rollback", "version": 1}, key),  # signed, not a command
        encode_command("rollback", 1, key, now=time.time() - 3600),  # signed, but an hour old
        encode_command("rollback", 9, key),  # signed, a version not held
        (value, headers),  # the real one
    ]
    commands.append((value, [*headers, *RAW_HEADER]))  # the real one, with a header key that is not UTF-8
    service._updates = FakeConsumer({tp: [record(tp, i, v, h) for i, (v, h) in enumerate(commands)]})
    await service._apply_commands()
    assert service.next_command_offset == len(commands)
    letters = dead_letters(service)
    assert [int(h["source_offset"]) for _, h in letters] == [0, 1, 2, 3, len(commands) - 1]
    assert b"unknown header" in letters[-1][1]["reason"]
    [rollback] = published(service)
    version = read_version(rollback)
    assert rollback.kind == "rollback" and version.number == 3 and version.metrics["rollback_to"] == 1
    assert version.metrics["reason"] == "manual_rollback"


async def test_a_gateways_ask_for_a_whole_version_is_answered_once_for_every_ask_before_it(service, monkeypatch):
    """A gateway that cannot build a delta (its parent refused, or gone from the topic before it
    first read it) asks with a signed republish command; gateways that ask before the whole
    version goes out are answered by it, and a later ask gets another."""
    monkeypatch.setattr(service, "_checkpoint", _no_checkpoint)
    learner = service.learner
    for seed in (1, 2):
        learner.step(chain_stream(20, seed=seed))
        assert learner.propose(float(seed)).action == "promote"
    service.published = 2
    tp, key = service.commands_tp, service.key
    asks = [encode_command("republish", 2, key), encode_command("republish", 2, key)]  # two gateways
    service._updates = FakeConsumer({tp: [record(tp, i, v, h) for i, (v, h) in enumerate(asks)]})
    await service._apply_commands()
    [whole] = published(service)
    version = read_version(whole)
    assert whole.kind == "version" and version.full and version.number == 3 and version.parent == 2
    assert version.metrics["republished"] == "requested" and learner.version == 3 and 3 in learner.held()
    later = encode_command("republish", 4, key, now=time.time() + 1.0)  # asked after it went out
    service._updates.records[tp].append(record(tp, 2, *later))
    await service._apply_commands()
    assert [read_version(r).number for r in published(service)] == [3, 4]
    assert dead_letters(service) == []


async def _no_checkpoint() -> None:
    return None


def topic_of(service: LearnerService, records: list[tuple[bytes | None, list]]) -> FakeConsumer:
    tp = service.updates_tp
    return FakeConsumer({tp: [record(tp, i, v, h) for i, (v, h) in enumerate(records)]})


def promoted(learner: OnlineLearner, n: int) -> list:
    out = []
    for k in range(n):
        learner.step(chain_stream(20, seed=10 + k))
        decision = learner.propose(float(k))
        assert decision.action == "promote"
        out.append(decision.version)
    return out


async def test_a_learner_behind_what_was_published_republishes_whole_under_a_new_number(service):
    """Killed after publishing 3 and 4 with a checkpoint at 2: it republishes 2's state as 5,
    past the garbage written after, instead of as 2 (which gateways held as something else)."""
    ahead = OnlineLearner(small_model(), config=LearnerConfig(min_samples=1, guard_ratio=0.01))
    versions = promoted(ahead, 4)
    key = service.key
    records = [encode_version(v, key) for v in versions]
    records += [(b"junk", [("type", b"version"), ("version", b"999")]),  # unsigned, a higher number
                encode_version(versions[-1], b"x" * 32)]  # forged
    records += [(b"junk", [])] * 20  # more than one look-back step of garbage
    service._updates = topic_of(service, records)
    checkpoint = service.learner
    promoted(checkpoint, 2)
    assert checkpoint.version == 2
    await service._resume_numbering(checkpoint)
    [republished] = published(service)
    version = read_version(republished)
    assert version.full and version.number == 5 and checkpoint.version == 5 and service.published == 5
    assert 5 in checkpoint.held() and 2 not in checkpoint.held()
    assert promoted(checkpoint, 1)[0].number == 6  # and on from there
    rejected = service.metrics.model_records_rejected.labels(source="model-updates", reason="unsigned")
    assert rejected._value.get() == 21


async def test_a_fresh_learner_numbers_its_first_version_above_what_was_published(service):
    ahead = OnlineLearner(small_model(), config=LearnerConfig(min_samples=1, guard_ratio=0.01))
    service._updates = topic_of(service, [encode_version(v, service.key) for v in promoted(ahead, 3)])
    await service._resume_numbering(service.learner)
    assert published(service) == []  # nothing to step back to: gateways keep serving 3 until then
    [first] = promoted(service.learner, 1)
    assert (first.number, first.parent) == (4, 0)  # a delta on nothing: readers build it whole


async def test_a_learner_in_step_with_the_topic_publishes_nothing_at_start(service):
    versions = promoted(service.learner, 2)
    decision = encode(UpdateRecord("decision", 2, b'{"reason": "r"}'), service.key)
    service._updates = topic_of(service, [*(encode_version(v, service.key) for v in versions), decision])
    await service._resume_numbering(service.learner)
    assert published(service) == [] and service.published == 2


async def test_a_number_at_or_below_the_published_one_is_never_sent(service):
    service.published = 5
    version = promoted(service.learner, 1)[0]
    with pytest.raises(RuntimeError, match="not above 5"):
        await service._publish_version(version)
    assert published(service) == []
