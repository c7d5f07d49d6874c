"""A batch whose writing fails is never acked to the consumer, and the worker stops."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from faust.types.tuples import ConsumerMessage

from agents.batches import run_batches
from app.metrics import Metrics
from app.settings import Settings


class Consumer:
    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack(self, message: Any) -> bool:
        self.acked.append(message.offset)
        return True


class Stream:
    """take_events as Faust's: the batch is acked when the loop body ends, failed or not."""

    def __init__(self, batches: list[list[Any]], consumer: Consumer) -> None:
        self.batches, self.consumer = batches, consumer

    async def take_events(self, max_: int, within: float):  # type: ignore[no-untyped-def]
        for events in self.batches:
            try:
                yield events
            finally:
                for event in events:
                    event.message.ack(self.consumer)


def batch(first: int, n: int) -> list[Any]:
    return [SimpleNamespace(message=ConsumerMessage("events", 0, first + i, 0.0, 0, [], b"k", b"v", None))
            for i in range(n)]


async def test_a_failed_batch_is_never_acked_and_the_worker_stops():
    consumer, crashed = Consumer(), []

    async def crash(exc: BaseException) -> None:
        crashed.append(exc)

    worker = SimpleNamespace(settings=Settings(), metrics=Metrics(), app=SimpleNamespace(crash=crash))
    good, bad = batch(0, 3), batch(3, 2)

    async def apply(events: list[Any]) -> None:
        if events is bad:
            raise RuntimeError("the broker refused the batch")

    with pytest.raises(RuntimeError):
        await run_batches(worker, Stream([good, bad, batch(5, 1)], consumer), "user-events", apply)
    assert consumer.acked == [0, 1, 2]  # the good batch only: no commit can pass offset 3
    assert [str(e) for e in crashed] == ["the broker refused the batch"]
    assert worker.metrics.agent_records.labels(agent="user-events")._value.get() == 3
