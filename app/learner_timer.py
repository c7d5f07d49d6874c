"""The online learner inside the leader worker, when `learner_enabled` (off by default).

A timer of the Faust app rather than a stream agent; it lives in `app/` because it composes
the learner service (which loads the trainers) into the worker, and `agents/` import nothing
of `app` (tests/unit/test_layering.py).

`streamrank learner` (app/jobs/learner.py) runs it as a process of its own, with standbys;
never both at once: this one takes no learner lock.
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from app.learner import LearnerService

if TYPE_CHECKING:
    from app.worker import Worker

log = logging.getLogger(__name__)


def register(worker: "Worker") -> Any:
    service = LearnerService(worker.settings, worker.metrics)

    @worker.app.timer(worker.settings.learner.poll_s)
    async def learner_tick() -> None:
        # Leadership is only known after a rebalance and can move: a worker that loses it
        # drops its learner, and the new leader resumes from the last checkpoint.
        if not worker.app.is_leader():
            if service.running:
                log.info("no longer the leader: stopping the learner")
                await service.stop()
            return
        try:
            if not service.running:
                await service.start()
            await service.tick()
        except Exception:  # a broker outage must not crash the worker's agents
            # Stop (closing clients, keeping what the last checkpoint holds) and start again
            # on a later tick: the same path as a crash, so nothing is learned twice.
            log.exception("the learner failed; restarting it from its last checkpoint")
            await service.abandon()
            await asyncio.sleep(1.0)

    @worker.app.on_before_shutdown.connect
    async def stop_learner(app: Any, **_: Any) -> None:
        await service.stop()

    return service
