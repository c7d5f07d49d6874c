"""Item-keyed copies of events: update item stats (counts, decayed popularity, trend)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from tables import item_stats

if TYPE_CHECKING:
    from app.worker import Worker


def register(worker: "Worker") -> Any:
    settings, metrics = worker.settings, worker.metrics

    @worker.app.agent(worker.item_events_topic, name="item-events")
    async def item_events(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            # Written only by user_events after validation, so it parses.
            item_id = msg.key.decode()
            body = orjson.loads(msg.value)
            src_partition, src_offset = body["src"]
            stats = worker.items.get(item_id) or item_stats.empty()
            if item_stats.already_applied(stats, src_partition, src_offset):
                # Rewritten: the local store may hold what the changelog lost (see user_events).
                worker.items[item_id] = stats
                metrics.events_redelivered.labels(table=item_stats.NAME).inc()
                continue
            worker.items[item_id] = item_stats.apply_event(
                stats, body["type"], body["ts"], src_partition, src_offset,
                settings.popularity_half_life_s, settings.trending_half_life_s)

    return item_events
