"""Item-keyed copies of events: update item stats (counts, decayed popularity, trend).

Records come in batches and hold many forwards each (agents/user_events.py); a row changed
by several forwards of a batch is written once (app/batched_writes.py).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agents.context import WorkerContext
from agents.dead_letters import send_dead_letter
from tables.wire.records import ItemEvent, decode_item_events, latest_ts
from models.errors import ValidationError
from tables import item_stats


def register(worker: WorkerContext) -> Any:
    settings = worker.settings
    handled = worker.metrics.agent_records.labels(agent="item-events")
    batches = worker.metrics.agent_batches.labels(agent="item-events")

    @worker.app.agent(worker.item_events_topic, name="item-events")
    async def item_events(stream: Any) -> None:
        async for events in stream.take_events(settings.worker_batch_events, within=settings.worker_batch_wait_s):
            await apply_batch(worker, events)
            handled.inc(len(events))
            batches.inc()

    return item_events


async def apply_batch(worker: WorkerContext, events: Sequence[Any]) -> None:
    settings, metrics = worker.settings, worker.metrics
    batch = worker.batch()
    rows = batch.rows(worker.items)
    partitions = worker.item_events_topic.partitions or settings.topic_partitions
    max_ts = latest_ts(settings.max_clock_skew_s)
    redelivered = 0
    for event in events:
        msg = event.message
        # user_events writes this topic after validating, but so can anyone who can
        # produce to it: checked again, and what fails goes to the dead letters.
        try:
            forwards = decode_item_events(msg.key, msg.value, settings.max_request_bytes, max_ts)
            _check_partition(worker, forwards, msg.partition, partitions)
        except ValidationError as exc:
            await send_dead_letter(worker, "item-events", event, exc.reason)
            continue
        for fwd in forwards:
            item_id, src_partition, src_offset = fwd.item_id, fwd.src_partition, fwd.src_offset
            stats = rows.get(item_id, msg.partition) or item_stats.empty()
            if item_stats.already_applied(stats, src_partition, src_offset):
                # Rewritten: the local store may hold what the changelog lost (see user_events).
                rows.set(item_id, msg.partition, stats)
                redelivered += 1
                continue
            rows.set(item_id, msg.partition, item_stats.apply_event(
                stats, fwd.type, fwd.ts, src_partition, src_offset,
                settings.popularity_half_life_s, settings.trending_half_life_s, max_ts))
    await batch.flush()
    if redelivered:
        metrics.events_redelivered.labels(table=item_stats.NAME).inc(redelivered)


def _check_partition(worker: WorkerContext, forwards: list[ItemEvent], partition: int, partitions: int) -> None:
    """An item's stats live in the partition its id hashes to; a forward elsewhere would start
    a second row for it (only a foreign producer sends one)."""
    for fwd in forwards:
        home = worker.partition_of(fwd.item_id.encode(), partitions)
        if home != partition:
            raise ValidationError(f"item {fwd.item_id[:40]!r} belongs to partition {home}, not {partition}")
