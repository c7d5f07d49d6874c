"""User events (keyed by user): validate, drop duplicates, update the profile, forward by item."""
from __future__ import annotations

import time
from typing import Any

import orjson

from agents.context import WorkerContext
from agents.dead_letters import send_dead_letter
from models.errors import ValidationError
from tables.wire.records import ItemEvent, UserEvent, decode_event, latest_ts
from tables import seen_events, user_profiles



def item_forward(event: UserEvent, item_id: str, partition: int, offset: int) -> ItemEvent:
    """What item stats need of an event, with its source position for idempotency."""
    return ItemEvent(item_id, event.type, event.ts, partition, offset)


def register(worker: WorkerContext) -> Any:
    settings, metrics = worker.settings, worker.metrics
    # Labelled children looked up once per label value: `.labels()` takes a lock each call.
    processed: dict[str, Any] = {}
    samples_made: dict[str, Any] = {}

    def count(children: dict[str, Any], family: Any, **label: str) -> None:
        (value,) = label.values()
        child = children.get(value)
        if child is None:
            child = children[value] = family.labels(**label)
        child.inc()

    @worker.app.agent(worker.events_topic, name="user-events")
    async def user_events(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            try:
                # Anything the bytes hold raises ValidationError here (garbage, a tombstone, a
                # wrong shape, a ts past the bound), so nothing a producer sends stops the agent.
                ev = decode_event(msg.value, settings.max_event_bytes, now=msg.timestamp or time.time(),
                                  max_ts=latest_ts(settings.max_clock_skew_s))
            except ValidationError as exc:
                await send_dead_letter(worker, "events", event, exc.reason)
                continue
            if msg.key != ev.user_id.encode():
                # Profiles are partitioned by user: a record keyed otherwise (no key, a
                # non-UTF-8 one) is sent round again under the right key rather than
                # splitting the user over partitions; the key carries nothing else.
                await worker.events_topic.send(key=ev.user_id.encode(), value=msg.value)
                metrics.events_rekeyed.inc()
                continue
            pos = (msg.partition, msg.offset)
            # Read from the store itself: Table.get asks RocksDB twice on a hit (contains, then
            # get) and adds only Faust's statistics hook.
            seen = worker.seen.data.get(ev.event_id)
            if seen_events.is_duplicate(seen, *pos):
                metrics.events_duplicate.inc()
                continue
            # A redelivery (same position seen) rewrites what the local store already holds:
            # RocksDB keeps a write that a SIGKILL took from the producer buffer before its
            # changelog record left, and only the rewrite puts it back in the changelog.
            worker.seen[ev.event_id] = list(pos)
            profile = worker.users.data.get(ev.user_id) or user_profiles.empty()
            if user_profiles.already_applied(profile, *pos):
                worker.users[ev.user_id] = profile
                metrics.events_redelivered.labels(table=user_profiles.NAME).inc()
            else:
                worker.users[ev.user_id], samples = user_profiles.apply_event_and_sample(
                    profile, ev, *pos, recent_items=settings.recent_items,
                    impression_window_s=settings.impression_window_s)
                count(processed, metrics.events_processed, type=ev.type)
                for sample in samples:
                    # Key by user: one partition today, but a user's samples stay in order.
                    await worker.emit(worker.samples_topic, ev.user_id.encode(), orjson.dumps(sample))
                    count(samples_made, metrics.samples_made, kind=sample["kind"])
            # Forwarded even when the profile had it: the send may be what the crash lost.
            # Faust flushes the producer before it commits (see Worker.emit).
            if ev.item_id is not None:
                fwd = item_forward(ev, ev.item_id, *pos)
                await worker.emit(worker.item_events_topic, fwd.item_id.encode(), fwd.to_json())
            if msg.timestamp:
                metrics.event_lag.observe(max(0.0, time.time() - msg.timestamp))

    return user_events
