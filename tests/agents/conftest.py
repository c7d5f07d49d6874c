"""Agents run under Faust's test_context with memory:// tables; only sends to Kafka are captured."""
from __future__ import annotations

import asyncio
import time

from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from app.metrics import Metrics
from app.settings import Settings
from app.worker import Worker, create_worker


@dataclass
class Sent:
    """Records produced by the agents, per topic, as (key, value, headers)."""

    by_topic: dict[str, list[tuple[Any, Any, Any]]] = field(default_factory=dict)
    partitions: dict[str, list[int]] = field(default_factory=dict)  # of records sent in batches

    def to(self, topic: Any) -> list[tuple[Any, Any, Any]]:
        return self.by_topic.get(topic.get_topic_name(), [])

    def forwards(self, topic: Any) -> list[list[Any]]:
        """The forwards in the item-events records sent: [item_id, type, ts, partition, offset]."""
        return [fwd for _, value, _ in self.to(topic) for fwd in orjson.loads(value)["events"]]


@pytest.fixture
def worker(tmp_path, monkeypatch) -> tuple[Worker, Sent]:
    settings = Settings().replace(store="memory://", state_dir=tmp_path, app_id=f"t-{tmp_path.name}")
    w = create_worker(settings, Metrics())
    w.app.finalize()
    w.app.conf.store = "memory://"
    sent = Sent()
    for topic in (w.events_topic, w.item_events_topic, w.dead_letters_topic, w.catalog_topic, w.samples_topic,
                  w.campaigns_topic):
        name = topic.get_topic_name()

        async def send(*, key=None, value=None, headers=None, _name=name, **_: Any):
            sent.by_topic.setdefault(_name, []).append((key, value, headers))
        def send_soon(*, key=None, value=None, headers=None, _name=name, **_: Any):
            sent.by_topic.setdefault(_name, []).append((key, value, headers))

        monkeypatch.setattr(topic, "send", send)
        monkeypatch.setattr(topic, "send_soon", send_soon)

    async def send_records(topic: str, partition: int, records: list) -> None:
        # What the batches hand the producer (changelogs, forwards, samples), in order.
        for key, value in records:
            sent.by_topic.setdefault(topic, []).append((key, value, None))
            sent.partitions.setdefault(topic, []).append(partition)

    monkeypatch.setattr(w, "send_records", send_records)
    return w, sent


BATCHED = ("user-events", "item-events")  # agents that take events in batches


async def _put_all(w: Worker, agent_name: str, records: list[tuple[Any, Any]], partition: int | None = None,
                  timestamp: float | None = None) -> None:
    """Each (key, value) in turn into the named agent, in the partition its key hashes to unless
    one is given; returns once the agent has handled them all. `put` raises if the agent crashed.

    A batched agent handles what it took when its batch fills or its wait ends, so this polls
    its records-handled counter (with a deadline) before the test context stops the agent.
    """
    agent = w.app.agents[agent_name]
    handled = w.metrics.agent_records.labels(agent=agent_name)
    target = handled._value.get() + len(records)
    async with agent.test_context() as ctx:
        for key, value in records:
            where = partition if partition is not None else (w.partition_of(key, w.settings.topics.partitions) if key else 0)
            await ctx.put(value, key=key, partition=where, timestamp=timestamp)
        if agent_name in BATCHED:
            deadline = time.monotonic() + 10.0
            while handled._value.get() < target:
                assert time.monotonic() < deadline, f"{agent_name} handled {handled._value.get()} of {target}"
                await asyncio.sleep(0.005)


@pytest.fixture
def put_all() -> Any:
    return _put_all
