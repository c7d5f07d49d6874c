"""Item-keyed copies of events: update item stats (counts, decayed popularity, trend)."""
from __future__ import annotations

from typing import Any

from agents.context import WorkerContext
from agents.dead_letters import send_dead_letter
from tables.wire.records import decode_item_event, latest_ts
from models.errors import ValidationError
from tables import item_stats



def register(worker: WorkerContext) -> Any:
    settings, metrics = worker.settings, worker.metrics

    @worker.app.agent(worker.item_events_topic, name="item-events")
    async def item_events(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            max_ts = latest_ts(settings.max_clock_skew_s)
            # user_events writes this topic after validating, but so can anyone who can
            # produce to it: checked again, and what fails goes to the dead letters.
            try:
                fwd = decode_item_event(msg.key, msg.value, settings.max_event_bytes, max_ts)
            except ValidationError as exc:
                await send_dead_letter(worker, "item-events", event, exc.reason)
                continue
            item_id, src_partition, src_offset = fwd.item_id, fwd.src_partition, fwd.src_offset
            # The store itself: one RocksDB read, where Table.get makes two (see user_events).
            stats = worker.items.data.get(item_id) or item_stats.empty()
            if item_stats.already_applied(stats, src_partition, src_offset):
                # Rewritten: the local store may hold what the changelog lost (see user_events).
                worker.items[item_id] = stats
                metrics.events_redelivered.labels(table=item_stats.NAME).inc()
                continue
            worker.items[item_id] = item_stats.apply_event(
                stats, fwd.type, fwd.ts, src_partition, src_offset,
                settings.popularity_half_life_s, settings.trending_half_life_s, max_ts)

    return item_events
