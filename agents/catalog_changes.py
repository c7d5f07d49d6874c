"""Catalog changes (keyed by item): validate, keep the newest version of each item."""
from __future__ import annotations

import time
from typing import Any

from agents.context import WorkerContext
from agents.dead_letters import send_dead_letter
from models.errors import ValidationError
from tables.wire.records import decode_catalog, latest_ts
from tables import catalog



def register(worker: WorkerContext) -> Any:
    settings, metrics = worker.settings, worker.metrics

    @worker.app.agent(worker.catalog_topic, name="catalog-changes")
    async def catalog_changes(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            max_ts = latest_ts(settings.max_clock_skew_s)
            try:
                change = decode_catalog(msg.value, settings.max_event_bytes, now=msg.timestamp or time.time(),
                                        max_ts=max_ts)
            except ValidationError as exc:
                await send_dead_letter(worker, "catalog", event, exc.reason)
                continue
            if msg.key != change.item_id.encode():
                # The table is partitioned by item: keyed otherwise (no key, a non-UTF-8 one),
                # the change goes round again under its item id, as user events do by user.
                await worker.catalog_topic.send(key=change.item_id.encode(), value=msg.value)
                continue
            if catalog.is_stale(worker.catalog.get(change.item_id), change, max_ts):
                continue
            worker.catalog[change.item_id] = catalog.to_item(change)
            metrics.catalog_changes.labels(op=change.op).inc()

    return catalog_changes
