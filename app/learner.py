"""The online learner's Kafka side: samples in, versions and decisions out, checkpoints on disk.

The model work is pure (`models.online.OnlineLearner`); this class only moves bytes.

- Samples are read with a consumer of our own, assigned to the one samples partition and
  positioned from the checkpoint, not by a consumer group: the model and the offset it has
  learned through are saved together, so a restarted learner starts exactly after the last
  sample its checkpoint holds (nothing lost, nothing learned twice). A sample already learned
  (a redelivered event makes its samples again) is recognised by its source position.
- Every `version_interval_s` the learner proposes a version. A promoted one is published to
  the model-updates topic (gateways apply it) and, every `checkpoint_interval_s`, saved with
  the offsets as a checkpoint. A learner that crashed resumes from its last checkpoint and,
  when gateways may serve something newer, republishes that state whole under a new number,
  so gateways step back to what it will build on. A refused one is counted, logged and
  published as a decision record (gateways keep serving).
- Version numbers only go forward: on start the learner reads back from the end of
  model-updates for the highest number published, and numbers every new version above it.
  A gateway keys what it holds by number, so a number used twice would corrupt it.
- Every record it writes is signed (`tables/wire/updates.py`); manual rollback/promote commands
  come signed on their own topic from the gateways' admin API. A record it cannot use (an
  unreadable sample, an unsigned or forged command) is dead-lettered and skipped: one bad
  record must not stall the learner.
- Once `streamrank train` has written a `rec-neural` version, the online SASRec learns beside
  the count model within a share of the time (models/rec/neural_learning.py); each version its
  guard promotes is written as the next `rec-neural` version, which gateways' watchers swap in.
  A restarted learner takes it up from the newest one (what gateways serve).
"""
from __future__ import annotations

import asyncio
import logging
import resource
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from app.kafka_io import make_consumer, make_model_update_producer, model_update_bytes
from app.metrics import Metrics
from tables.wire.dead_letters import dead_letter_headers, reason_label
from app.settings import Settings
from tables.wire.updates import (VERSION_KINDS, Command, decode, encode_json, encode_version, read_command,
                                signing_key)
from models.checkpoint import latest_version, version_dirs, version_path
from models.errors import BrokerUnavailable, ValidationError
from models.online.click_model import ClickSample, OnlineClickConfig, OnlineClickModel
from models.online.rec_model import OnlineRecConfig, OnlineRecModel
from models.online.config import LearnerConfig
from models.online.versions import OnlineLearner, Version
from models.rec.neural_learning import NeuralLearning, step_both
from models.rec.neural_version import NAME as NEURAL_NAME, NeuralRecVersion
from models.rec.online_neural import OnlineSASRecConfig
from tables.samples import HISTORY

log = logging.getLogger(__name__)

UPDATE_KEY = b"rec"
KEEP_CHECKPOINTS = 5
LOOK_BACK = 16  # model-updates records read per step back from the end at start
# A command is carried out only this soon after the admin API took it: an old signed one
# copied onto the topic again must not roll the model back a second time.
COMMAND_MAX_AGE_S = 15 * 60.0


def new_learner(settings: Settings) -> OnlineLearner:
    """A learner that has seen nothing, shaped by the settings."""
    rec = OnlineRecModel(OnlineRecConfig(dim=settings.online.dim, capacity=settings.online.capacity,
                                         num_shards=settings.online.shards, min_count=settings.online.min_count))
    click = OnlineClickModel(OnlineClickConfig(capacity=settings.online.capacity, num_shards=settings.online.shards,
                                               min_count=settings.online.min_count,
                                               ad_pair_capacity=settings.ads.pair_counts))
    return OnlineLearner(rec, click, guard_config(settings))


def guard_config(settings: Settings, **shape: int) -> LearnerConfig:
    """The guard's settings (they may change across a restart); `shape`: what a checkpoint fixed."""
    return LearnerConfig(min_samples=settings.learner.guard_min_samples, guard_ratio=settings.learner.guard_ratio,
                         fusion_alpha=settings.learner.fusion_alpha, validation_share=settings.learner.validation_share,
                         **shape)


async def _prune(directory: Path) -> None:
    """Keep the newest KEEP_CHECKPOINTS versions in `directory`."""
    for old in version_dirs(directory)[:-KEEP_CHECKPOINTS]:
        await asyncio.to_thread(shutil.rmtree, old, True)


def checkpoints(directory: Path) -> list[Path]:
    """Learner checkpoints `vNNNN` in `directory`, oldest first (by number)."""
    return version_dirs(directory)


def load_latest(settings: Settings) -> tuple[OnlineLearner, dict[str, int]]:
    """The newest checkpoint's learner and offsets, or a fresh learner and no offsets."""
    found = checkpoints(settings.runtime.online_model_dir)
    if not found:
        return new_learner(settings), {}
    learner, offsets = OnlineLearner.load(found[-1])
    # Settings that may change across a restart; the model's shape comes from the checkpoint.
    learner.config = guard_config(settings, window=learner.config.window, keep=learner.config.keep)
    return learner, offsets


def load_neural(settings: Settings) -> NeuralLearning | None:
    """The online SASRec, warm-started from the newest rec-neural version (None: off, or no
    such version yet: `streamrank train` writes the first)."""
    if not settings.learner.neural:
        return None
    newest = latest_version(settings.runtime.model_dir, NEURAL_NAME)
    if newest is None:
        log.info("no %s version under %s: the neural model does not learn (run streamrank train)", NEURAL_NAME,
                 settings.runtime.model_dir)
        return None
    start = NeuralRecVersion.from_checkpoint(version_path(settings.runtime.model_dir, NEURAL_NAME, newest))
    config = guard_config(settings)
    log.info("neural model warm-started from %s (%d items, blend %.2f)", start.version, len(start.item_ids), start.blend)
    return NeuralLearning(start, config, share=settings.learner.neural_share,
                          blend_window=settings.learner.neural_blend_samples,
                          model_config=OnlineSASRecConfig(num_shards=settings.online.shards))


def to_model_samples(samples: list[dict[str, Any]]) -> tuple[list[tuple[list[str], str]], list[ClickSample]]:
    rec = [(s["history"], s["target"]) for s in samples if s["kind"] == "next"]
    clicks = [ClickSample(s["user"], s["item"], int(s["position"]), int(s["label"]), s.get("query"))
              for s in samples if s["kind"] == "click"]
    return rec, clicks


def read_sample(value: bytes | None) -> dict[str, Any]:
    """A sample record as the user-events agent writes it (tables/samples.py); else ValidationError.

    Checked whole before learning: a sample that broke the learning step would fail the tick,
    restart the learner from its checkpoint and meet the same sample again, forever.
    """
    try:
        sample = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"sample is not valid JSON: {exc}") from None
    if not isinstance(sample, dict):
        raise ValidationError("a sample must be a JSON object")
    src = sample.get("src")
    if not (isinstance(src, list) and len(src) == 2 and all(_count(x) for x in src)):
        raise ValidationError("sample 'src' must be [partition, offset]")
    kind = sample.get("kind")
    if kind == "next":
        history, target = sample.get("history"), sample.get("target")
        if not (isinstance(history, list) and len(history) <= HISTORY * 5 and _ids(history)):
            raise ValidationError(f"sample 'history' must be a list of at most {HISTORY * 5} item ids")
        if not _ids([target]):
            raise ValidationError("sample 'target' must be an item id")
    elif kind == "click":
        if not _ids([sample.get("user"), sample.get("item")]):
            raise ValidationError("click sample 'user' and 'item' must be ids")
        if not _count(sample.get("position")) or sample.get("label") not in (0, 1) or isinstance(sample["label"], bool):
            raise ValidationError("click sample 'position' must be a count and 'label' 0 or 1")
        if not all(sample.get(f) is None or isinstance(sample[f], str) for f in ("query", "request_id")):
            raise ValidationError("click sample 'query' and 'request_id' must be strings or null")
    else:
        raise ValidationError("sample 'kind' must be next or click")
    return sample


def _count(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _ids(values: list[Any]) -> bool:
    return all(isinstance(v, str) and v for v in values)


class SampleDedupe:
    """Drops samples already learned: per source partition, the last event offset learned and
    the samples of that offset (one event can make several)."""

    def __init__(self, offsets: dict[str, int] | None = None) -> None:
        # Checkpoints keep the offsets; the samples of the last offset are only in memory
        # (a redelivered copy of exactly that event meeting a learner restart is the gap).
        self.offset: dict[str, int] = {k[4:]: v for k, v in (offsets or {}).items() if k.startswith("src:")}
        self.at_offset: dict[str, set[str]] = {}

    @staticmethod
    def fingerprint(sample: dict[str, Any]) -> str:
        return f"{sample['kind']}:{sample.get('target') or sample.get('item')}:{sample.get('request_id')}"

    def is_new(self, sample: dict[str, Any]) -> bool:
        partition, offset = str(sample["src"][0]), int(sample["src"][1])
        last = self.offset.get(partition, -1)
        fp = self.fingerprint(sample)
        if offset < last or (offset == last and fp in self.at_offset.get(partition, set())):
            return False
        if offset > last:
            self.offset[partition] = offset
            self.at_offset[partition] = set()
        self.at_offset.setdefault(partition, set()).add(fp)  # a restart knows the offset, not its samples
        return True

    def offsets(self) -> dict[str, int]:
        return {f"src:{p}": o for p, o in self.offset.items()}


class LockLost(RuntimeError):
    """Another learner may be active now: this one must not publish or checkpoint."""


class LearnerService:
    def __init__(self, settings: Settings, metrics: Metrics, active: Callable[[], bool] = lambda: True) -> None:
        self.settings = settings
        self.metrics = metrics
        # Whether this learner still holds the lock (app.learner_lock); checked before every
        # write, so a learner that lost it mid-tick publishes nothing more.
        self.active = active
        self.learner: OnlineLearner | None = None
        self.neural: NeuralLearning | None = None  # the online SASRec beside the count model, if any
        self.samples_tp = TopicPartition(settings.topics.samples, 0)
        self.updates_tp = TopicPartition(settings.topics.model_updates, 0)
        self.commands_tp = TopicPartition(settings.topics.model_commands, 0)
        self.next_sample_offset = 0
        self.next_command_offset = 0
        self.published = 0  # the highest version number on model-updates: new ones go above
        self.full_sent_at = 0.0  # when this process last published a whole version (time.time())
        self.key = b""
        self.dedupe = SampleDedupe()
        self.last_proposal = time.monotonic()
        self.last_checkpoint = 0.0
        self.checkpointed = 0
        self._samples: AIOKafkaConsumer | None = None
        self._updates: AIOKafkaConsumer | None = None  # model-updates at start, then model-commands
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    @property
    def running(self) -> bool:
        return self.learner is not None

    # ---- life cycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Load the newest checkpoint (or start fresh) and position the consumers after it."""
        learner, offsets = await asyncio.to_thread(load_latest, self.settings)
        self.key = await asyncio.to_thread(signing_key, self.settings)
        self.next_sample_offset = offsets.get("samples", 0)
        self.next_command_offset = offsets.get("commands", 0)
        self.dedupe = SampleDedupe(offsets)
        self._samples = make_consumer(self.settings, role="learner", enable_auto_commit=False,
                                      max_partition_fetch_bytes=self.settings.limits.request_bytes * 2)
        self._updates = make_consumer(self.settings, role="learner", enable_auto_commit=False,
                                      max_partition_fetch_bytes=model_update_bytes(self.settings))
        self._producer = make_model_update_producer(self.settings)
        await self._samples.start()
        await self._updates.start()
        await self._producer.start()
        self._samples.assign([self.samples_tp])
        self._samples.seek(self.samples_tp, self.next_sample_offset)
        self.learner = learner
        self.neural = await asyncio.to_thread(load_neural, self.settings)
        self.checkpointed = learner.version
        await self._resume_numbering(learner)
        self._updates.assign([self.commands_tp])
        self._updates.seek(self.commands_tp, self.next_command_offset)
        self.last_proposal = time.monotonic()
        log.info("learner started at serving version %d, samples offset %d", learner.version,
                 self.next_sample_offset)
        self._report()

    async def stop(self) -> None:
        async with self._lock:  # not in the middle of a tick's learning
            if self.learner is not None and self.learner.version > self.checkpointed and self.active():
                await self._checkpoint()  # a clean stop loses nothing; a crash resumes from the last one
        for client in (self._samples, self._updates, self._producer):
            if client is not None:
                await client.stop()
        self._samples = self._updates = self._producer = None
        self.learner = self.neural = None  # the neural model's last version on disk is where it resumes

    async def abandon(self) -> None:
        """Drop the live learner without a checkpoint (its state may be half-applied) and close
        the clients; `start` resumes from the last checkpoint."""
        self.learner = self.neural = None
        for client in (self._samples, self._updates, self._producer):
            if client is not None:
                try:
                    await client.stop()
                except Exception:  # closing after a failure: nothing to save
                    log.warning("closing a learner client failed", exc_info=True)
        self._samples = self._updates = self._producer = None

    async def _resume_numbering(self, learner: OnlineLearner) -> None:
        """Number every new version above what was published, and when gateways may serve
        something else than the checkpoint's state (the learner crashed after publishing
        what its checkpoint lacks), send that state whole under a new number: gateways step
        back to what the learner builds on, and no number ever means two states."""
        highest, last_version = await self._published_numbers()
        learner.floor = self.published = highest
        if learner.version > 0 and last_version != learner.version:
            version = await asyncio.to_thread(learner.republish, time.time(), {"republished": True})
            log.warning("republishing the checkpoint's version %d whole as version %d (model-updates ended at %d)",
                        version.parent, version.number, last_version)
            await self._publish_version(version)

    async def _published_numbers(self) -> tuple[int, int]:
        """(highest version number on a valid record, number of the newest valid version record).

        Read back from the end a few records at a time, to the newest valid version record:
        numbers on the topic only go up, so nothing before it holds a higher one. Records that
        are not ours are counted and passed over (the gateways dead-letter them).
        """
        consumer, tp = self._updates, self.updates_tp
        consumer.assign([tp])
        first = (await consumer.beginning_offsets([tp]))[tp]
        end = (await consumer.end_offsets([tp]))[tp]
        highest = 0
        while end > first:
            start = max(first, end - LOOK_BACK)
            for msg in reversed(await self._read_range(tp, start, end)):
                try:
                    record = decode(msg.value, msg.headers, self.key)
                except ValidationError as exc:
                    log.warning("model-updates@%d is not a valid record: %s", msg.offset, exc.reason)
                    self.metrics.model_records_rejected.labels(source="model-updates",
                                                               reason=reason_label(exc.reason)).inc()
                    continue
                if record.kind != "command":  # a command's number is the version it asks for
                    highest = max(highest, record.version)
                if record.kind in VERSION_KINDS:
                    return highest, record.version
            end = start
        return highest, 0

    async def _read_range(self, tp: TopicPartition, start: int, end: int) -> list[ConsumerRecord]:
        """Records [start, end) of `tp` with the updates consumer (fewer if some were deleted)."""
        consumer = self._updates
        consumer.seek(tp, start)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + 30.0
        while await consumer.position(tp) < end:
            if time.monotonic() > deadline:
                raise BrokerUnavailable(f"could not read {tp.topic}@{start}..{end} in 30s")
            batch = (await consumer.getmany(tp, timeout_ms=1000, max_records=LOOK_BACK)).get(tp, [])
            records.extend(m for m in batch if m.offset < end)
        return records

    # ---- the loop -----------------------------------------------------------------------
    async def tick(self) -> None:
        """One round: commands, then samples, then (when due) a version proposal."""
        if self.learner is None:
            return
        async with self._lock:
            await self._apply_commands()
            # Learn what is there (bounded, so commands and proposals are not starved).
            deadline = time.monotonic() + 1.0
            while await self._learn_available() and time.monotonic() < deadline:
                pass
            if time.monotonic() - self.last_proposal >= self.settings.learner.version_interval_s:
                await self.propose()
            if (self.learner.version > self.checkpointed
                    and time.monotonic() - self.last_checkpoint >= self.settings.learner.checkpoint_interval_s):
                await self._checkpoint()

    async def _learn_available(self) -> bool:
        """Learn from one micro-batch of what the consumer has; False when it had nothing."""
        # A sample whose header key is not UTF-8 comes too (app/kafka_compat.py): samples are
        # read by value alone, so it is learned like any other.
        fetched = await self._samples.getmany(self.samples_tp, timeout_ms=0, max_records=self.settings.learner.batch)
        messages = fetched.get(self.samples_tp, [])
        if not messages:
            self._report_lag()
            return False
        fresh: list[dict[str, Any]] = []
        for msg in messages:
            try:
                sample = read_sample(msg.value)
            except ValidationError as exc:
                self.metrics.learner_skipped.labels(reason="unreadable").inc()
                await self._dead_letter(self.samples_tp, msg.offset, msg.key, msg.value, exc.reason, source="samples")
                continue
            if self.dedupe.is_new(sample):
                fresh.append(sample)
            else:
                self.metrics.learner_skipped.labels(reason="already_learned").inc()
        started = time.perf_counter()
        if fresh:
            await asyncio.to_thread(self._step, *to_model_samples(fresh))
        self.metrics.learner_batch_seconds.observe(time.perf_counter() - started)
        for sample in fresh:
            self.metrics.learner_samples.labels(kind=sample["kind"]).inc()
        self.next_sample_offset = messages[-1].offset + 1
        self._report_lag()
        return True

    def _step(self, rec: list[tuple[list[str], str]], clicks: list[ClickSample]) -> None:
        report = step_both(self.learner, self.neural, rec, clicks)
        if report is not None:
            self.metrics.learner_neural_samples.labels(outcome="learned").inc(report.learned)
            self.metrics.learner_neural_samples.labels(outcome="skipped").inc(report.skipped)

    def _report_lag(self) -> None:
        # The end offset the last fetch saw: no request of its own.
        end = self._samples.highwater(self.samples_tp) if self._samples is not None else None
        if end is not None:
            self.metrics.learner_lag.set(max(0, end - self.next_sample_offset))

    async def propose(self) -> None:
        self.last_proposal = time.monotonic()
        if self.neural is not None:
            await self._propose_neural()
        learner = self.learner
        decision = await asyncio.to_thread(learner.propose, time.time())
        self._export_window(decision.metrics)
        if decision.action == "wait":
            return
        self.metrics.model_decisions.labels(decision=decision.action).inc()
        log.info("learner decision %s (%s): %s", decision.action, decision.reason,
                 orjson.dumps(decision.metrics).decode())
        if decision.action == "promote":
            await self._publish_version(decision.version)
        elif decision.action == "rollback":  # a served version degraded: every gateway steps back
            log.warning("automatic rollback: %s", decision.reason)
            await self._publish_version(decision.version, kind="rollback")
            await self._checkpoint()
        else:
            await self._publish_control("decision", learner.version, {
                "decision": decision.action, "reason": decision.reason, "metrics": decision.metrics})
        self._report()

    async def _propose_neural(self) -> None:
        """The neural model's own guard; a promoted (or rolled-back-to) state is written as the
        next rec-neural version, which every gateway's watcher swaps in."""
        neural = self.neural
        decision, version = await asyncio.to_thread(neural.propose, time.time())
        self.metrics.learner_neural_blend.set(neural.blend)
        if decision.action == "wait":
            return
        self.metrics.learner_neural_decisions.labels(decision=decision.action).inc()
        if version is None:
            log.info("neural decision %s (%s)", decision.action, decision.reason)
            return
        self._check_active()
        model_dir = self.settings.runtime.model_dir
        path = await asyncio.to_thread(version.save, model_dir,
                                       {"kind": decision.action, "metrics": decision.metrics, **neural.report()})
        await _prune(model_dir / NEURAL_NAME)  # gateways load the newest: older ones are only disk
        log.info("neural %s: wrote %s (blend %.2f, %s)", decision.action, path, version.blend,
                 orjson.dumps(neural.report()).decode())

    async def rollback(self, to_version: int, reason: str) -> None:
        """Serve `to_version` again (a version the learner still holds) and learn on from it."""
        version = await asyncio.to_thread(self.learner.rollback, to_version, time.time())
        version.metrics = {**version.metrics, "reason": reason}
        self.metrics.model_decisions.labels(decision=reason).inc()
        log.warning("rolled back to version %d as version %d (%s)", to_version, version.number, reason)
        await self._publish_version(version, kind="rollback")
        await self._checkpoint()
        self._report()

    async def _apply_commands(self) -> None:
        """Carry out the admin API's signed commands; anything else there is dead-lettered."""
        # A command whose header key is not UTF-8 comes too (app/kafka_compat.py): an unknown header.
        fetched = await self._updates.getmany(self.commands_tp, timeout_ms=0, max_records=100)
        for msg in fetched.get(self.commands_tp, []):
            self.next_command_offset = msg.offset + 1
            try:
                command = read_command(decode(msg.value, msg.headers, self.key))
            except ValidationError as exc:
                await self._refuse_command(msg.offset, msg.key, msg.value, exc.reason)
                continue
            refused = self._refusal(command)
            if refused:
                log.warning("model command at model-commands@%d refused: %s", msg.offset, refused)
                self.metrics.model_decisions.labels(decision="command_refused").inc()
                continue
            if command.action == "republish":
                await self._republish(command)
            else:
                await self.rollback(command.version, reason=f"manual_{command.action}")

    async def _refuse_command(self, offset: int, key: bytes | None, value: bytes | None, reason: str) -> None:
        self.metrics.model_records_rejected.labels(source="model-commands", reason=reason_label(reason)).inc()
        await self._dead_letter(self.commands_tp, offset, key, value, reason, source="model-commands")

    def _refusal(self, command: Command) -> str:
        """Why a well-formed, signed command is not carried out ('' when it is)."""
        age = time.time() - command.issued
        if age > COMMAND_MAX_AGE_S or age < -self.settings.limits.clock_skew_s:
            return f"issued {age:.0f}s ago; commands are carried out within {COMMAND_MAX_AGE_S:.0f}s"
        if command.action == "republish":
            return ""  # its version is the one a gateway could not build, not one to serve
        held = self.learner.held()
        if command.version not in held:
            return f"version {command.version} is not held (held: {held})"
        return ""

    async def _republish(self, command: Command) -> None:
        """Send the serving version whole under a new number: a gateway that could not build a
        delta (its parent refused or never read) serves nothing newer until a whole version
        comes. Every gateway in that state asks: one whole version answers all that asked
        before it was sent."""
        if self.full_sent_at >= command.issued or self.learner.version == 0:
            return
        version = await asyncio.to_thread(self.learner.republish, time.time(), {"republished": "requested"})
        self.metrics.model_decisions.labels(decision="republish").inc()
        log.warning("a gateway could not build version %d: version %d is sent whole as version %d",
                    command.version, version.parent, version.number)
        await self._publish_version(version)
        await self._checkpoint()

    # ---- output -------------------------------------------------------------------------
    async def _publish_version(self, version: Version, kind: str = "version") -> None:
        self._check_active()
        if version.number <= self.published:
            # A bug, not bad input: the tick fails, and a restart renumbers from the topic.
            raise RuntimeError(f"version {version.number} is not above {self.published}, already published")
        value, headers = await asyncio.to_thread(encode_version, version, self.key, kind)
        if len(value) > self.settings.learner.version_max_bytes:
            raise RuntimeError(f"{kind} {version.number} is {len(value):,} bytes, over STREAMRANK_LEARNER_VERSION_MAX_BYTES "
                               f"({self.settings.learner.version_max_bytes:,}): raise it, and the model-updates topic's "
                               "max.message.bytes with it")
        await self._producer.send_and_wait(self.settings.topics.model_updates, value, key=UPDATE_KEY, headers=headers)
        self.published = version.number
        if version.full:
            self.full_sent_at = time.time()
        self.metrics.learner_version.set(version.number)
        log.info("published %s %d (%d bytes, parent %s)", kind, version.number, len(value), version.parent)

    async def _publish_control(self, kind: str, version: int, body: dict[str, Any]) -> None:
        self._check_active()
        value, headers = encode_json(kind, version, {"version": version, **body}, self.key)
        await self._producer.send_and_wait(self.settings.topics.model_updates, value, key=UPDATE_KEY, headers=headers)

    async def _dead_letter(self, tp: TopicPartition, offset: int, key: bytes | None, value: bytes | None,
                           reason: str, source: str) -> None:
        """Send a record the learner cannot use to the dead letters, and go on without it."""
        log.warning("%s@%d refused: %s", tp.topic, offset, reason)
        try:
            await self._producer.send_and_wait(self.settings.topics.dead_letters, value or b"", key=key,
                                               headers=dead_letter_headers(reason, tp.topic, tp.partition, offset))
        except KafkaError:  # too large, or not allowed: skipped all the same, the log says which
            log.exception("could not dead-letter %s@%d", tp.topic, offset)
            return
        self.metrics.dead_letters.labels(source=source, reason=reason_label(reason)).inc()

    def _check_active(self) -> None:
        if not self.active():
            raise LockLost("the learner lock was lost: another learner may be active")

    async def _checkpoint(self) -> Path:
        self._check_active()
        self.last_checkpoint = time.monotonic()
        self.checkpointed = self.learner.version
        offsets = {"samples": self.next_sample_offset, "commands": self.next_command_offset,
                   **self.dedupe.offsets()}
        directory = self.settings.runtime.online_model_dir
        path = await asyncio.to_thread(self.learner.save, directory / f"v{self.learner.version:04d}", offsets)
        await _prune(directory)
        return path

    def _export_window(self, window: dict[str, Any]) -> None:
        for model in ("live", "serving", "good"):  # good: the last good version, while one is on probation
            for metric, value in (window.get(model) or {}).items():
                if isinstance(value, (int, float)):
                    self.metrics.online_metric.labels(model=model, metric=metric).set(value)

    def _report(self) -> None:
        learner = self.learner
        if learner is None:
            return
        tables = {"items": learner.live_rec.store}
        if learner.live_click is not None:
            tables["click_items"] = learner.live_click.store
        for table, store in tables.items():
            for shard, (s, nbytes) in enumerate(zip(store.shards, store.memory_bytes())):
                self.metrics.embedding_rows.labels(table=table, shard=str(shard)).set(len(s.rows))
                self.metrics.embedding_bytes.labels(table=table, shard=str(shard)).set(nbytes)
            self.metrics.embedding_admissions.labels(table=table).set(store.admissions)
            self.metrics.embedding_evictions.labels(table=table).set(store.evictions)
        self.metrics.process_resident_bytes.set(resident_bytes())


def resident_bytes() -> int:
    """Current resident set size of this process (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
