"""Catalog changes (keyed by item): validate, keep the newest version of each item."""
from __future__ import annotations

import time
from typing import Any

from agents.context import WorkerContext
from agents.keyed_changes import register_keyed_changes
from tables.wire.records import CatalogChange, decode_catalog, latest_ts
from tables import catalog


def register(worker: WorkerContext) -> Any:
    settings, metrics = worker.settings, worker.metrics

    def read(msg: Any) -> tuple[CatalogChange, float]:
        max_ts = latest_ts(settings.limits.clock_skew_s)  # one bound per event: decoding and ordering
        return decode_catalog(msg.value, settings.limits.event_bytes, now=msg.timestamp or time.time(),
                              max_ts=max_ts), max_ts

    def apply(read_change: tuple[CatalogChange, float]) -> None:
        change, max_ts = read_change
        if catalog.is_stale(worker.catalog.get(change.item_id), change, max_ts):
            return
        worker.catalog[change.item_id] = catalog.to_item(change)
        metrics.catalog_changes.labels(op=change.op).inc()

    return register_keyed_changes(worker, worker.catalog_topic, "catalog-changes", "catalog", read,
                                  lambda read_change: read_change[0].item_id, apply)
