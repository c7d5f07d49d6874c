"""The online learner, run by the leader worker only (one learner sees every sample in order)."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from app.learner import LearnerService

if TYPE_CHECKING:
    from app.worker import Worker

log = logging.getLogger(__name__)


def register(worker: "Worker") -> Any:
    service = LearnerService(worker.settings, worker.metrics)

    @worker.app.timer(worker.settings.learner_poll_s)
    async def learner_tick() -> None:
        # Leadership is only known after a rebalance and can move: a worker that loses it
        # drops its learner, and the new leader resumes from the last checkpoint.
        if not worker.app.is_leader():
            if service.running:
                log.info("no longer the leader: stopping the learner")
                await service.stop()
            return
        if not service.running:
            await service.start()
        await service.tick()

    @worker.app.on_before_shutdown.connect
    async def stop_learner(app: Any, **_: Any) -> None:
        await service.stop()

    return service
