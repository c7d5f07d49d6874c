"""Agents run under Faust's test_context with memory:// tables; only sends to Kafka are captured."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from app.metrics import Metrics
from app.settings import Settings
from app.worker import Worker, create_worker


@dataclass
class Sent:
    """Records produced by the agents, per topic, as (key, value, headers)."""

    by_topic: dict[str, list[tuple[Any, Any, Any]]] = field(default_factory=dict)

    def to(self, topic: Any) -> list[tuple[Any, Any, Any]]:
        return self.by_topic.get(topic.get_topic_name(), [])


@pytest.fixture
def worker(tmp_path, monkeypatch) -> tuple[Worker, Sent]:
    settings = Settings(store="memory://", state_dir=tmp_path, app_id=f"t-{tmp_path.name}")
    w = create_worker(settings, Metrics())
    w.app.finalize()
    w.app.conf.store = "memory://"
    sent = Sent()
    for topic in (w.events_topic, w.item_events_topic, w.dead_letters_topic, w.catalog_topic, w.samples_topic):
        name = topic.get_topic_name()

        async def send(*, key=None, value=None, headers=None, _name=name, **_: Any):
            sent.by_topic.setdefault(_name, []).append((key, value, headers))
        def send_soon(*, key=None, value=None, headers=None, _name=name, **_: Any):
            sent.by_topic.setdefault(_name, []).append((key, value, headers))

        monkeypatch.setattr(topic, "send", send)
        monkeypatch.setattr(topic, "send_soon", send_soon)

    async def emit(topic: Any, key: Any, value: Any) -> None:
        sent.by_topic.setdefault(topic.get_topic_name(), []).append((key, value, None))

    monkeypatch.setattr(w, "emit", emit)
    return w, sent
