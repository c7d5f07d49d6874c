"""Events taken in batches, and a batch that fails is never committed.

Faust's `Stream.take_events` acks a batch's events when its loop body ends, also when the
body raised or was cancelled: their offsets would be committed although their rows and
records were never written (a SIGKILL test lost about a thousand events that way). A failed
batch's messages are marked acked here without telling the consumer, so no commit passes
them; the worker stops (a failure here is a bug or a broker that cannot take writes) and the
one that restarts reads them again from the last commit, where the tables' position checks
make a second delivery harmless.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from agents.context import WorkerContext

log = logging.getLogger(__name__)


async def run_batches(worker: WorkerContext, stream: Any, agent: str,
                      apply: Callable[[Sequence[Any]], Awaitable[None]]) -> None:
    settings = worker.settings
    handled = worker.metrics.agent_records.labels(agent=agent)
    batches = worker.metrics.agent_batches.labels(agent=agent)
    async for events in stream.take_events(settings.worker.batch_events, within=settings.worker.batch_wait_s):
        try:
            await apply(events)
        except BaseException as exc:
            hold_back(events)
            if not isinstance(exc, asyncio.CancelledError):
                log.exception("%s: a batch of %d events failed; stopping the worker so that they are read again",
                              agent, len(events))
                await worker.app.crash(exc)
            raise
        handled.inc(len(events))
        batches.inc()


def hold_back(events: Sequence[Any]) -> None:
    """Never ack these (their offsets stay uncommitted: a commit stops at the first of them)."""
    for event in events:
        event.message.acked = True
