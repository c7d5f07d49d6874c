"""User events (keyed by user): validate, drop duplicates, update the profile, forward by item.

Events come in batches (`take_events`): rows are read and changed in a dict and written once
per batch, and the forwards to item stats go as one record per item partition
(app/batched_writes.py says why). A batch's events are acked only once all of it is written.
"""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import orjson

from agents.batches import run_batches
from agents.context import WorkerContext
from agents.dead_letters import send_dead_letter
from models.errors import ValidationError
from tables.wire.ad_tokens import token_id, verify_token
from tables.wire.dead_letters import reason_label
from tables.wire.records import AdClick, ItemEvent, UserEvent, decode_event, item_events_json, latest_ts
from tables.wire.updates import signing_key
from tables import expiry, seen_events, user_profiles

# Forwards per item-events record: a batch of 1,000 events makes records of some 25 KB.
FORWARDS_PER_RECORD = 500


def item_forward(event: UserEvent, item_id: str, partition: int, offset: int,
                 charge: AdClick | None = None) -> ItemEvent:
    """What item stats need of an event, with its source position for idempotency."""
    return ItemEvent(item_id, event.type, event.ts, partition, offset, charge)


def ad_charge(worker: WorkerContext, ad_key: bytes, ev: UserEvent, token: str, now: float) -> AdClick | None:
    """The charge a click's ad token stands for, or None when it is not good: the click still
    counts as an organic one (the shopper did click), only the campaign is not charged."""
    try:
        charge = verify_token(ad_key, token, ev.item_id, now)
    except ValidationError as exc:
        worker.metrics.ad_charges_refused.labels(reason=_token_refusal(exc.reason)).inc()
        return None
    return AdClick(charge.campaign_id, charge.price, charge.daily_budget, token_id(token))


def _token_refusal(reason: str) -> str:
    for needle, label in (("signature", "bad_signature"), ("expired", "expired"), ("another item", "other_item")):
        if needle in reason:
            return label
    return reason_label(reason)


def register(worker: WorkerContext) -> Any:
    settings = worker.settings
    ad_key = signing_key(settings)  # read once: a key file is not read per click

    @worker.app.agent(worker.events_topic, name="user-events")
    async def user_events(stream: Any) -> None:
        await run_batches(worker, stream, "user-events", lambda events: apply_batch(worker, events, ad_key))

    return user_events


async def apply_batch(worker: WorkerContext, events: Sequence[Any], ad_key: bytes) -> None:
    settings, metrics = worker.settings, worker.metrics
    batch = worker.batch()
    seen, users = batch.rows(worker.seen), batch.rows(worker.users)
    forwards: dict[int, list[ItemEvent]] = defaultdict(list)
    samples: list[tuple[bytes | None, bytes]] = []
    processed: Counter[str] = Counter()
    made: Counter[str] = Counter()
    lags: list[float] = []
    duplicates = redelivered = 0
    item_partitions = worker.item_events_topic.partitions or settings.topics.partitions
    now, max_ts = time.time(), latest_ts(settings.limits.clock_skew_s)
    for event in events:
        msg = event.message
        try:
            # Anything the bytes hold raises ValidationError here (garbage, a tombstone, a
            # wrong shape, a ts past the bound), so nothing a producer sends stops the agent.
            ev = decode_event(msg.value, settings.limits.event_bytes, now=msg.timestamp or now, max_ts=max_ts)
        except ValidationError as exc:
            await send_dead_letter(worker, "events", event, exc.reason)
            continue
        user_key = ev.user_id.encode()
        if msg.key != user_key:
            # Profiles are partitioned by user: a record keyed otherwise (no key, a
            # non-UTF-8 one) is sent round again under the right key rather than
            # splitting the user over partitions; the key carries nothing else.
            await worker.events_topic.send(key=user_key, value=msg.value)
            metrics.events_rekeyed.inc()
            continue
        partition, offset = msg.partition, msg.offset
        if seen_events.is_duplicate(seen.get(ev.event_id, partition), partition, offset):
            duplicates += 1
            continue
        # A redelivery (same position seen) rewrites what the local store already holds:
        # RocksDB keeps a write that a SIGKILL took from the producer buffer before its
        # changelog record left, and only the rewrite puts it back in the changelog.
        seen.set(ev.event_id, partition, expiry.stamped(partition, offset, now))
        profile = users.get(ev.user_id, partition) or user_profiles.empty()
        if user_profiles.already_applied(profile, partition, offset):
            users.set(ev.user_id, partition, profile)
            redelivered += 1
        else:
            new, made_samples = user_profiles.apply_event_and_sample(
                profile, ev, partition, offset, recent_items=settings.features.recent_items,
                impression_window_s=settings.online.impression_window_s)
            users.set(ev.user_id, partition, new)
            processed[ev.type] += 1
            for sample in made_samples:
                # Keyed by user: a user's samples stay in order on any partition count.
                samples.append((user_key, orjson.dumps(sample)))
                made[sample["kind"]] += 1
        # Forwarded even when the profile had it: the send may be what the crash lost.
        if ev.item_id is not None:
            target = worker.partition_of(ev.item_id.encode(), item_partitions)
            # Checked again on a redelivery: the item agent charges a source position once.
            charge = ad_charge(worker, ad_key, ev, ev.ad_token, now) if ev.ad_token is not None else None
            forwards[target].append(item_forward(ev, ev.item_id, partition, offset, charge))
        if msg.timestamp:
            lags.append(max(0.0, now - msg.timestamp))
    _emit_samples(worker, batch, samples)
    item_topic = worker.item_events_topic.get_topic_name()
    for target, fwds in forwards.items():
        batch.emit_all(item_topic, target, ((None, item_events_json(fwds[i:i + FORWARDS_PER_RECORD]))
                                            for i in range(0, len(fwds), FORWARDS_PER_RECORD)))
    await batch.flush()
    metrics.observe_event_lags(lags)
    for etype, n in processed.items():
        metrics.events_processed.labels(type=etype).inc(n)
    for kind, n in made.items():
        metrics.samples_made.labels(kind=kind).inc(n)
    if duplicates:
        metrics.events_duplicate.inc(duplicates)
    if redelivered:
        metrics.events_redelivered.labels(table=user_profiles.NAME).inc(redelivered)


def _emit_samples(worker: WorkerContext, batch: Any, samples: list[tuple[bytes | None, bytes]]) -> None:
    topic = worker.samples_topic.get_topic_name()
    partitions = worker.samples_topic.partitions or 1
    by_partition: dict[int, list[tuple[bytes | None, bytes]]] = defaultdict(list)
    for key, value in samples:
        by_partition[worker.partition_of(key or b"", partitions)].append((key, value))
    for partition, records in by_partition.items():
        batch.emit_all(topic, partition, records)
