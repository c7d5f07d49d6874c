"""The online learner's Kafka side: samples in, versions and decisions out, checkpoints on disk.

The model work is pure (`models.online.OnlineLearner`); this class only moves bytes.

- Samples are read with a consumer of our own, assigned to the one samples partition and
  positioned from the checkpoint, not by a consumer group: the model and the offset it has
  learned through are saved together, so a restarted learner starts exactly after the last
  sample its checkpoint holds (nothing lost, nothing learned twice). A sample already learned
  (a redelivered event makes its samples again) is recognised by its source position.
- Every `version_interval_s` the learner proposes a version. A promoted one is published to
  the model-updates topic (gateways apply it) and, every `checkpoint_interval_s`, saved with
  the offsets as a checkpoint. A learner that crashed resumes from its last checkpoint and
  republishes that version whole, so gateways step back to what it will build on. A refused
  one is counted, logged and published as a decision record (gateways keep serving).
- Manual rollback/promote commands come through the model-updates topic too (the gateway's
  admin API writes them); the learner carries them out and publishes the outcome.
"""
from __future__ import annotations

import asyncio
import logging
import resource
import shutil
import time
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from app.kafka_io import make_consumer, make_producer
from app.metrics import Metrics
from app.settings import Settings
from models.online.click_model import ClickSample, OnlineClickConfig, OnlineClickModel
from models.online.rec_model import OnlineRecConfig, OnlineRecModel
from models.online.versions import LearnerConfig, OnlineLearner, Version, full_version

log = logging.getLogger(__name__)

UPDATE_KEY = b"rec"
KEEP_CHECKPOINTS = 5


def new_learner(settings: Settings) -> OnlineLearner:
    """A learner that has seen nothing, shaped by the settings."""
    rec = OnlineRecModel(OnlineRecConfig(dim=settings.online_dim, capacity=settings.online_capacity,
                                         num_shards=settings.online_shards, min_count=settings.online_min_count))
    click = OnlineClickModel(OnlineClickConfig(capacity=settings.online_capacity, num_shards=settings.online_shards,
                                               min_count=settings.online_min_count))
    config = LearnerConfig(min_samples=settings.guard_min_samples, guard_ratio=settings.guard_ratio,
                           fusion_alpha=settings.fusion_alpha)
    return OnlineLearner(rec, click, config)


def checkpoints(directory: Path) -> list[Path]:
    """Learner checkpoints `vNNNN` in `directory`, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_dir() and p.name.startswith("v") and p.name[1:].isdigit())


def load_latest(settings: Settings) -> tuple[OnlineLearner, dict[str, int]]:
    """The newest checkpoint's learner and offsets, or a fresh learner and no offsets."""
    found = checkpoints(settings.online_model_dir)
    if not found:
        return new_learner(settings), {}
    learner, offsets = OnlineLearner.load(found[-1])
    # Settings that may change across a restart; the model's shape comes from the checkpoint.
    learner.config = LearnerConfig(min_samples=settings.guard_min_samples, guard_ratio=settings.guard_ratio,
                                   fusion_alpha=settings.fusion_alpha, window=learner.config.window,
                                   keep=learner.config.keep)
    return learner, offsets


def to_model_samples(samples: list[dict[str, Any]]) -> tuple[list[tuple[list[str], str]], list[ClickSample]]:
    rec = [(s["history"], s["target"]) for s in samples if s["kind"] == "next"]
    clicks = [ClickSample(s["user"], s["item"], int(s["position"]), int(s["label"]), s.get("query"))
              for s in samples if s["kind"] == "click"]
    return rec, clicks


def record_type(headers: Any) -> str:
    return dict(headers or ()).get("type", b"").decode()


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


class LearnerService:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.learner: OnlineLearner | None = None
        self.samples_tp = TopicPartition(settings.topics.samples, 0)
        self.updates_tp = TopicPartition(settings.topics.model_updates, 0)
        self.next_sample_offset = 0
        self.next_update_offset = 0
        self.dedupe = SampleDedupe()
        self.last_proposal = time.monotonic()
        self.last_checkpoint = 0.0
        self.checkpointed = 0
        self._samples: AIOKafkaConsumer | None = None
        self._updates: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    @property
    def running(self) -> bool:
        return self.learner is not None

    # ---- life cycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Load the newest checkpoint (or start fresh) and position the consumers after it."""
        learner, offsets = await asyncio.to_thread(load_latest, self.settings)
        self.next_sample_offset = offsets.get("samples", 0)
        self.next_update_offset = offsets.get("updates", 0)
        self.dedupe = SampleDedupe(offsets)
        self._samples = make_consumer(self.settings, enable_auto_commit=False,
                                         max_partition_fetch_bytes=self.settings.max_request_bytes * 2)
        self._updates = make_consumer(self.settings, enable_auto_commit=False,
                                         max_partition_fetch_bytes=self.settings.max_request_bytes * 4)
        self._producer = make_producer(self.settings)
        await self._samples.start()
        await self._updates.start()
        await self._producer.start()
        self._samples.assign([self.samples_tp])
        self._samples.seek(self.samples_tp, self.next_sample_offset)
        self._updates.assign([self.updates_tp])
        self._updates.seek(self.updates_tp, self.next_update_offset)
        self.learner = learner
        self.checkpointed = learner.version
        await self._republish_if_gateways_lack(learner)
        self.last_proposal = time.monotonic()
        log.info("learner started at serving version %d, samples offset %d", learner.version,
                 self.next_sample_offset)
        self._report()

    async def stop(self) -> None:
        async with self._lock:  # not in the middle of a tick's learning
            if self.learner is not None and self.learner.version > self.checkpointed:
                await self._checkpoint()  # a clean stop loses nothing; a crash resumes from the last one
        for client in (self._samples, self._updates, self._producer):
            if client is not None:
                await client.stop()
        self._samples = self._updates = self._producer = None
        self.learner = None

    async def abandon(self) -> None:
        """Drop the live learner without a checkpoint (its state may be half-applied) and close
        the clients; `start` resumes from the last checkpoint."""
        self.learner = None
        for client in (self._samples, self._updates, self._producer):
            if client is not None:
                try:
                    await client.stop()
                except Exception:  # noqa: BLE001 — closing after a failure: nothing to save
                    log.warning("closing a learner client failed", exc_info=True)
        self._samples = self._updates = self._producer = None

    async def _republish_if_gateways_lack(self, learner: OnlineLearner) -> None:
        """A crash between checkpoint and publish leaves gateways a version behind: send it whole."""
        end = (await self._updates.end_offsets([self.updates_tp]))[self.updates_tp]
        published = 0
        if end > 0:
            self._updates.seek(self.updates_tp, end - 1)
            batch = await self._updates.getmany(self.updates_tp, timeout_ms=5000)
            for msg in batch.get(self.updates_tp, []):
                if record_type(msg.headers) in ("version", "rollback"):
                    published = int(dict(msg.headers).get("version", b"0"))
            self._updates.seek(self.updates_tp, max(self.next_update_offset, 0))
        if learner.version > 0 and published != learner.version:
            # The checkpoint's version, whole: gateways ahead of it (the learner crashed after
            # publishing) step back to the state it learns on from.
            version = await asyncio.to_thread(
                full_version, learner.serving_rec, learner.serving_click, learner.version, learner.version, time.time(),
                {"republished": True})
            await self._publish_version(version)

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
            if time.monotonic() - self.last_proposal >= self.settings.version_interval_s:
                await self.propose()
            if (self.learner.version > self.checkpointed
                    and time.monotonic() - self.last_checkpoint >= self.settings.checkpoint_interval_s):
                await self._checkpoint()

    async def _learn_available(self) -> bool:
        """Learn from one micro-batch of what the consumer has; False when it had nothing."""
        batch = await self._samples.getmany(self.samples_tp, timeout_ms=0, max_records=self.settings.learner_batch)
        messages = batch.get(self.samples_tp, [])
        if not messages:
            return False
        fresh: list[dict[str, Any]] = []
        for msg in messages:
            try:
                sample = orjson.loads(msg.value)
                new = self.dedupe.is_new(sample)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError):
                self.metrics.learner_skipped.labels(reason="unreadable").inc()
                log.warning("unreadable sample at samples@%d", msg.offset)
                continue
            if new:
                fresh.append(sample)
            else:
                self.metrics.learner_skipped.labels(reason="already_learned").inc()
        started = time.perf_counter()
        if fresh:
            await asyncio.to_thread(self.learner.step, *to_model_samples(fresh))
        self.metrics.learner_batch_seconds.observe(time.perf_counter() - started)
        for sample in fresh:
            self.metrics.learner_samples.labels(kind=sample["kind"]).inc()
        self.next_sample_offset = messages[-1].offset + 1
        return True

    async def propose(self) -> None:
        self.last_proposal = time.monotonic()
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
            await self._publish_version(decision.version)
            await self._checkpoint()
        else:
            await self._publish_control("decision", learner.version, {
                "decision": decision.action, "reason": decision.reason, "metrics": decision.metrics})
        self._report()

    async def rollback(self, to_version: int, reason: str) -> None:
        """Serve `to_version` again (a version the learner still holds) and learn on from it."""
        version = await asyncio.to_thread(self.learner.rollback, to_version, time.time())
        version.metrics = {**version.metrics, "reason": reason}
        self.metrics.model_decisions.labels(decision=reason).inc()
        log.warning("rolled back to version %d as version %d (%s)", to_version, version.number, reason)
        await self._publish_version(version)
        await self._checkpoint()
        self._report()

    async def _apply_commands(self) -> None:
        batch = await self._updates.getmany(self.updates_tp, timeout_ms=0, max_records=100)
        for msg in batch.get(self.updates_tp, []):
            self.next_update_offset = msg.offset + 1
            if record_type(msg.headers) != "command":
                continue
            try:
                command = orjson.loads(msg.value)
                target = int(command["version"])
                if command["action"] not in ("rollback", "promote"):
                    raise ValueError(f"unknown action {command['action']!r}")
                held = self.learner.held()
                if target not in held:
                    raise ValueError(f"version {target} is not held (held: {held})")
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                log.warning("model command at model-updates@%d refused: %s", msg.offset, exc)
                self.metrics.model_decisions.labels(decision="command_refused").inc()
                continue
            await self.rollback(target, reason=f"manual_{command['action']}")

    # ---- output -------------------------------------------------------------------------
    async def _publish_version(self, version: Version) -> None:
        payload = await asyncio.to_thread(version.to_bytes)
        await self._producer.send_and_wait(
            self.settings.topics.model_updates, payload, key=UPDATE_KEY,
            headers=[("type", b"version"), ("version", str(version.number).encode())])
        self.metrics.learner_version.set(version.number)
        log.info("published version %d (%d bytes, parent %s)", version.number, len(payload), version.parent)

    async def _publish_control(self, kind: str, version: int, body: dict[str, Any]) -> None:
        await self._producer.send_and_wait(
            self.settings.topics.model_updates, orjson.dumps({"version": version, **body}), key=UPDATE_KEY,
            headers=[("type", kind.encode()), ("version", str(version).encode())])

    async def _checkpoint(self) -> Path:
        self.last_checkpoint = time.monotonic()
        self.checkpointed = self.learner.version
        offsets = {"samples": self.next_sample_offset, "updates": self.next_update_offset, **self.dedupe.offsets()}
        directory = self.settings.online_model_dir
        path = await asyncio.to_thread(self.learner.save, directory / f"v{self.learner.version:04d}", offsets)
        for old in checkpoints(directory)[:-KEEP_CHECKPOINTS]:
            await asyncio.to_thread(shutil.rmtree, old, True)
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
