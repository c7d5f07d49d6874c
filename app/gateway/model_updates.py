"""Follows the model-updates topic and serves the online learner's versions.

Every gateway reads the one partition from the start (no consumer group), so all of them
apply the same versions in the same order. A version record holds the rows changed since
its parent (or everything, for a rollback or a restarted learner); the gateway builds the
new serving model copy-on-write from the parent it keeps, on the event loop a millisecond at a
time between requests (`between_requests`), and installs it with one reference assignment: a
request ranks against one whole version. Decisions on the same topic are for the logs.

Only signed records are applied (`tables/wire/updates.py`): anyone able to write to Kafka could
otherwise choose the model every gateway serves. A record that is unsigned, forged or
undecodable is counted, dead-lettered and skipped, and so is one that fails to apply: a
record retried forever would stop every later version.
"""
from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from typing import TypeVar

from aiokafka import TopicPartition

from app.gateway.gc_freeze import freeze_long_lived
from app.gateway.serving import ServingModels
from app.gateway.sink import EventSink
from app.gateway.tasks import cancel_and_wait
from app.kafka_io import make_consumer, model_update_bytes
from app.metrics import Metrics
from tables.wire.dead_letters import dead_letter_headers, reason_label
from app.settings import Settings
from tables.wire.updates import (VERSION_KINDS, UpdateRecord, decode, encode_command, read_json, read_version,
                                 signing_key)
from models.errors import ValidationError
from models.online.click_serving import ServingClickModel
from models.online.serving import ServingRecModel, serving_for_in_steps
from models.steps import Steps
from models.online.versions import Version

log = logging.getLogger(__name__)
RECENT_VERSIONS = 4  # version numbers an admin may name (see ModelUpdatesFollower.recent)
# A version's build runs on the event loop for about this long at a time (`between_requests`),
# and takes at most this share of the loop's time: a build has the version interval (5 s).
BUILD_SLICE_S = 0.001
BUILD_SHARE = 0.25
ASK_AGAIN_S = 30.0  # between a gateway's asks for a whole version (the learner answers all asks at once)
SOURCE = "model-updates"


T = TypeVar("T")


async def between_requests(steps: Steps[T], slice_s: float = BUILD_SLICE_S, share: float = BUILD_SHARE) -> T:
    """Run `steps` on the event loop: about `slice_s` of them at a time, then a pause that leaves
    the loop to requests for the rest (a `share` of the loop's time at most, 1: no pause).

    Not in a thread: a thread that wants the GIL takes it from the loop at every switch
    interval, so at 1,000 requests/s a build halved the loop's speed while it ran (bench/serve.py's
    live pass: all-miss p99 70-450 ms, every slow request in a build). Nor all the time the
    loop has: with no pause, the loop ran flat out for a while after each version came (its
    timer 15-30 ms late with as much CPU spent), and requests queued. The cap's own effect on
    p99 is not measured apart."""
    while True:
        started = time.perf_counter()
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            if time.perf_counter() - started >= slice_s:
                break
        await asyncio.sleep((time.perf_counter() - started) * (1.0 / share - 1.0))


async def release(retired: list[tuple[ServingRecModel, ServingClickModel]]) -> None:
    """Free the versions just replaced: each one's rows between requests, as a build runs
    (`between_requests`), then the rest (well under a millisecond). Dropped at once, a replaced
    Beauty version's rows held the loop 4-5 ms (their free is one C call), and as long from a
    thread, which holds the GIL through a call: in a replay of those versions a 0.5 ms timer on
    the loop ran 4.9 ms late with the thread, 2.3 ms with the steps, 1.1 ms with no free (medians
    of 14 releases). A version a request still holds (one that ranks again after an await) is
    left whole to it: that request frees it."""
    while retired:
        model, _ = retired.pop()
        if sys.getrefcount(model) == 2:  # this name and the call's argument: nobody else
            await between_requests(model.emptied_in_steps())
        del model


class ModelUpdatesFollower:
    def __init__(self, settings: Settings, serving: ServingModels, metrics: Metrics, sink: EventSink) -> None:
        self.settings = settings
        self.serving = serving
        self.metrics = metrics
        self.sink = sink
        self.key = signing_key(settings)
        # The version served, by number: what the next delta builds on. The learner makes every
        # version on the one it published last, so an older one is never a parent. Four were held,
        # each with its own tables of count rows (24 MB for the four at 600k events of
        # bench/scale.py's shop, tracemalloc), ids and index.
        self.held: dict[int, tuple[ServingRecModel, ServingClickModel]] = {}
        # The numbers of the versions served last, newest last: what an admin may roll back to
        # (the learner keeps their snapshots, `LearnerConfig.keep`).
        self.recent: list[int] = []
        self._asked_at = -ASK_AGAIN_S  # monotonic: when this gateway last asked for a whole version
        self.serving_version = 0
        self.caught_up = asyncio.Event()
        self.build = between_requests  # how a version's steps run (bench/version_install.py times a thread too)
        self.release = release  # how replaced versions are freed (bench/version_install.py times a thread too)
        self._next_offset = 0
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
            except Exception:  # broker trouble: log, back off, reconnect
                log.exception("model-updates follower failed; reconnecting in 1s")
                await asyncio.sleep(1.0)

    async def _follow(self) -> None:
        tp = TopicPartition(self.settings.topics.model_updates, 0)
        consumer = make_consumer(self.settings, enable_auto_commit=False,
                                 max_partition_fetch_bytes=model_update_bytes(self.settings))
        await consumer.start()
        try:
            while tp.topic not in await consumer.topics():
                await asyncio.sleep(1.0)
            consumer.assign([tp])
            # Resume where this follower stopped (a reconnect), else from the start.
            consumer.seek(tp, self._next_offset)
            end = (await consumer.end_offsets([tp]))[tp]
            while True:
                # A record whose header key is not UTF-8 comes too (app/kafka_compat.py) and is
                # refused by `receive` as an unknown header.
                records = (await consumer.getmany(tp, timeout_ms=500, max_records=20)).get(tp, [])
                for msg in records:
                    await self.receive(msg.value, msg.headers, msg.offset, msg.key)
                    self._next_offset = msg.offset + 1
                if self._next_offset >= end:
                    self.caught_up.set()
        finally:
            await consumer.stop()

    async def receive(self, value: bytes | None, headers: Sequence[tuple[str, bytes]] | None,
                      offset: int = -1, key: bytes | None = None) -> bool:
        """Apply one model-updates record; False when it was refused (and dead-lettered)."""
        try:
            # off the loop: the signature is a hash over the whole record (megabytes at 1M shoppers)
            record = await asyncio.to_thread(decode, value, headers, self.key)
            await self._apply(record)
        except ValidationError as exc:
            await self._refuse(key, value, exc.reason, offset)
            return False
        except Exception as exc:  # a signed version this gateway cannot build: skip it
            log.exception("could not apply model-updates@%d", offset)
            self.metrics.model_load_failures.inc()
            await self._refuse(key, value, f"could not apply: {type(exc).__name__}: {exc}"[:300], offset)
            return False
        self.metrics.online_updates.labels(type=record.kind).inc()
        return True

    async def _apply(self, record: UpdateRecord) -> None:
        if record.kind in VERSION_KINDS:
            await self._apply_version(await asyncio.to_thread(read_version, record))
        elif record.kind == "decision":
            log.info("learner decision: %s", read_json(record).get("reason"))
        # a command (signed, but on the wrong topic) is the learner's business: nothing to do

    async def _apply_version(self, version: Version) -> None:
        """Build and serve `version` (on its parent, when a delta), whatever else is held."""
        base, base_click = self.held.get(version.parent, (None, ServingClickModel.empty()))
        if base is None and not version.full and version.parent != 0:
            log.error("version %d needs parent %d, which this gateway does not hold; asking the learner for a whole one",
                      version.number, version.parent)
            self.metrics.model_load_failures.inc()
            await self._ask_for_whole(version.number)
            return
        if version.full:
            base_click = ServingClickModel.empty()  # a full version replaces everything anyway
        # What this gateway holds now is not walked again by a full collection that the build's
        # allocations start (one walked for 115 ms in bench/serve.py's live pass).
        freeze_long_lived(f"version {version.number} to be built", quiet=True)
        model = await self.build(serving_for_in_steps(base, version))
        click = await asyncio.to_thread(base_click.apply, version)
        retired = [held for number, held in self.held.items() if number != version.number]
        del base, base_click
        self.held = {version.number: (model, click)}
        self._install(version.number, rollback="rollback_to" in version.metrics)
        self.recent = [n for n in self.recent if n != version.number][-(RECENT_VERSIONS - 1):] + [version.number]
        if "rollback_to" in version.metrics:
            log.warning("serving version %d: a rollback to version %d (%s)", version.number,
                        version.metrics["rollback_to"], version.metrics.get("reason", ""))
        await self.release(retired)

    async def _ask_for_whole(self, number: int) -> None:
        """Ask the learner to send its version whole (a signed republish command): without it this
        gateway would refuse every delta until the learner restarts, and a parent can be missing
        for good (refused, or deleted by the topic's retention before this gateway first read it)."""
        now = time.monotonic()
        if now - self._asked_at < ASK_AGAIN_S:
            return  # one ask answers every delta refused until the whole version comes
        self._asked_at = now
        try:
            await self.sink.send_model_command(*encode_command("republish", number, self.key))
        except Exception:  # the broker is away: the next refused delta asks again
            log.warning("could not ask the learner for a whole version", exc_info=True)
            self._asked_at = -ASK_AGAIN_S
            return
        self.metrics.model_republish_requests.inc()

    def _install(self, number: int, rollback: bool = False) -> None:
        self.serving.install_online(*self.held[number], rollback=rollback)
        freeze_long_lived(f"online version {number} installed")
        self.serving_version = number
        self.metrics.online_version.set(number)
        self.metrics.ad_count_keys.set(len(self.held[number][1].ad_counts))
        self.metrics.model_swaps.inc()

    async def _refuse(self, key: bytes | None, value: bytes | None, reason: str, offset: int) -> None:
        """Count, log and dead-letter a record, which is then skipped."""
        log.warning("model-updates@%d refused: %s", offset, reason)
        self.metrics.model_records_rejected.labels(source=SOURCE, reason=reason_label(reason)).inc()
        headers = dead_letter_headers(reason, self.settings.topics.model_updates, 0, offset)
        try:
            await self.sink.send_dead_letter(key, value, headers)
        except Exception:  # e.g. too large to produce: skipped all the same, as logged
            log.exception("could not dead-letter model-updates@%d", offset)
            return
        self.metrics.dead_letters.labels(source=SOURCE, reason=reason_label(reason)).inc()
