"""`streamrank learner`: the online learner as a process of its own (workers run only the agents).

Start one or more: the one holding the learner lock (app.learner_lock) learns and publishes,
the others wait as hot standbys and take over from the last checkpoint when it dies. They
share checkpoints through `state_dir`: on one machine that is the same folder; learners on
several machines need it on shared storage. SIGTERM or SIGINT: checkpoint, then leave.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from typing import TYPE_CHECKING

import uvloop

from app.cpu_priority import set_cpu_priority
from app.settings import Settings

if TYPE_CHECKING:  # Kafka and torch load only when the job runs: `streamrank --help` stays quick
    from app.learner import LearnerService
    from app.learner_lock import LearnerLock

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("learner", help="run the online learner (one active; more wait as standbys)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    got = set_cpu_priority(settings.learner.cpu_priority)
    log.info("learner CPU priority: %s (asked for %s)", got, settings.learner.cpu_priority)
    uvloop.run(serve(settings))
    return 0


async def serve(settings: Settings) -> None:
    from prometheus_client import start_http_server

    from app.kafka_io import wait_for_broker
    from app.learner import LearnerService
    from app.learner_lock import LearnerLock
    from app.metrics import Metrics

    # Not ensure_topics: the learner's principal may not create topics (`streamrank topics`
    # or a worker does; the lock finds a topic created later within its metadata refresh).
    await wait_for_broker(settings)
    metrics = Metrics()
    if settings.learner.metrics_port > 0:
        start_http_server(settings.learner.metrics_port, addr="127.0.0.1", registry=metrics.registry)
        log.info("learner metrics on http://127.0.0.1:%d/metrics", settings.learner.metrics_port)
    lock = LearnerLock(settings)
    runner = _Runner(lock, LearnerService(settings, metrics, active=lambda: runner.active()))
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await lock.start()
    log.info("learner up: waiting for the learner lock (group %s-learner)", settings.topics.app_id)
    try:
        while not stopping.is_set():
            await runner.step()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stopping.wait(), settings.learner.poll_s)
    finally:
        await runner.service.stop()  # a checkpoint, when this learner still holds the lock
        await lock.stop()  # then a standby takes over at once
        log.info("learner stopped")


class _Runner:
    """Learns while this process holds the lock, in the term it started in."""

    def __init__(self, lock: LearnerLock, service: LearnerService) -> None:
        self.lock = lock
        self.service = service
        self.term = -1  # the lock term the running learner was loaded in

    def active(self) -> bool:
        return self.lock.held and self.lock.term == self.term

    async def step(self) -> None:
        """One round: learn when holding the lock; drop the learner at once when it was lost."""
        held = await self.lock.poll()
        service = self.service
        if service.running and not self.active():
            # No checkpoint: another learner may be (or have been) active meanwhile; the next
            # one resumes from the last checkpoint and republishes above what was published.
            log.warning("lost the learner lock: dropping the learner at once")
            await service.abandon()
        if not held:
            return
        try:
            if not service.running:
                self.term = self.lock.term
                await service.start()
            await service.tick()
        except Exception:  # a broker outage or a lost lock must not end the process
            # The same path as a crash: close the clients, keep what the last checkpoint holds,
            # start again (if still active) on a later round, so nothing is learned twice.
            log.exception("the learner failed; restarting it from its last checkpoint")
            await service.abandon()
            await asyncio.sleep(1.0)
