"""What an agent is handed: the worker's app, settings, metrics, topics and tables.

A protocol here, so the agents name the shape they use without importing `app` (the layer
above them); `app.worker.Worker` is the one implementation.
"""
from __future__ import annotations

from typing import Any, Protocol


class WorkerContext(Protocol):
    app: Any  # the faust.App
    settings: Any  # app.settings.Settings
    metrics: Any  # app.metrics.Metrics
    events_topic: Any
    catalog_topic: Any
    item_events_topic: Any
    dead_letters_topic: Any
    samples_topic: Any
    users: Any
    items: Any
    catalog: Any
    seen: Any
    campaigns_topic: Any
    campaigns: Any
    ad_spend: Any

    def batch(self) -> Any: ...  # app.batched_writes.BatchedWrites: rows and records of one batch

    def partition_of(self, key: bytes, partitions: int) -> int: ...
