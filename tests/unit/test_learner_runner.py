"""The learner process's round (app/jobs/learner.py): it learns only while holding the lock,
in the term it loaded its state in, and drops the learner at once (no checkpoint) otherwise."""
from __future__ import annotations

import asyncio

from app.jobs.learner import _Runner


class FakeLock:
    def __init__(self) -> None:
        self.held, self.term = False, 0

    def take(self) -> None:
        self.held, self.term = True, self.term + 1

    async def poll(self) -> bool:
        return self.held


class FakeService:
    def __init__(self) -> None:
        self.running = False
        self.calls: list[str] = []

    async def start(self) -> None:
        self.running = True
        self.calls.append("start")

    async def tick(self) -> None:
        self.calls.append("tick")

    async def abandon(self) -> None:
        self.running = False
        self.calls.append("abandon")


def test_learns_only_with_the_lock_and_reloads_after_another_term():
    lock, service = FakeLock(), FakeService()
    runner = _Runner(lock, service)  # type: ignore[arg-type]

    async def rounds() -> None:
        await runner.step()  # a standby: nothing loaded
        assert service.calls == [] and not runner.active()
        lock.take()
        await runner.step()
        await runner.step()
        assert service.calls == ["start", "tick", "tick"] and runner.active()
        lock.held = False  # revoked: dropped at once, no checkpoint (stop() would write one)
        assert not runner.active()
        await runner.step()
        assert service.calls[-1] == "abandon" and not service.running
        lock.take()
        await runner.step()
        assert service.calls[-2:] == ["start", "tick"]
        lock.take()  # given the lock again after a rebalance: another may have held it meanwhile
        await runner.step()
        assert service.calls[-3:] == ["abandon", "start", "tick"]

    asyncio.run(rounds())
