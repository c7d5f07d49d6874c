"""Item-keyed copies of events: update item stats (counts, decayed popularity, trend).

Records come in batches and hold many forwards each (agents/user_events.py); a row changed
by several forwards of a batch is written once (app/batched_writes.py).
"""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.batches import run_batches
from agents.context import WorkerContext
from agents.dead_letters import send_dead_letter
from tables.wire.records import AdClick, ItemEvent, decode_item_events, latest_ts
from models.errors import ValidationError
from tables import ad_spend, charged_tokens, expiry, item_stats


@dataclass
class AdTally:
    """What a batch charged, for the metrics written once it is flushed."""

    clicks: Counter[str] = field(default_factory=Counter)
    spend: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))  # money, not a count
    refused: Counter[str] = field(default_factory=Counter)
    overspent: Counter[str] = field(default_factory=Counter)
    redelivered: int = 0


def register(worker: WorkerContext) -> Any:
    @worker.app.agent(worker.item_events_topic, name="item-events")
    async def item_events(stream: Any) -> None:
        await run_batches(worker, stream, "item-events", lambda events: apply_batch(worker, events))

    return item_events


async def apply_batch(worker: WorkerContext, events: Sequence[Any]) -> None:
    settings, metrics = worker.settings, worker.metrics
    batch = worker.batch()
    rows = batch.rows(worker.items)
    partitions = worker.item_events_topic.partitions or settings.topics.partitions
    now, max_ts = time.time(), latest_ts(settings.limits.clock_skew_s)
    redelivered = 0
    ads = AdTally()
    for event in events:
        msg = event.message
        # user_events writes this topic after validating, but so can anyone who can
        # produce to it: checked again, and what fails goes to the dead letters.
        try:
            forwards = decode_item_events(msg.key, msg.value, settings.limits.request_bytes, max_ts)
            _check_partition(worker, forwards, msg.partition, partitions)
        except ValidationError as exc:
            await send_dead_letter(worker, "item-events", event, exc.reason)
            continue
        for fwd in forwards:
            if fwd.charge is not None:
                charge_click(batch.rows(worker.ad_spend), batch.rows(worker.charged_tokens), fwd, fwd.charge,
                             msg.partition, ads, now)
            item_id, src_partition, src_offset = fwd.item_id, fwd.src_partition, fwd.src_offset
            stats = rows.get(item_id, msg.partition) or item_stats.empty()
            if item_stats.already_applied(stats, src_partition, src_offset):
                # Rewritten: the local store may hold what the changelog lost (see user_events).
                rows.set(item_id, msg.partition, stats)
                redelivered += 1
                continue
            rows.set(item_id, msg.partition, item_stats.apply_event(
                stats, fwd.type, fwd.ts, src_partition, src_offset,
                settings.features.popularity_half_life_s, settings.features.trending_half_life_s, max_ts))
    await batch.flush()
    if redelivered:
        metrics.events_redelivered.labels(table=item_stats.NAME).inc(redelivered)
    if ads.clicks or ads.refused or ads.redelivered:
        _count_ads(metrics, ads)


def charge_click(rows: Any, tokens: Any, fwd: ItemEvent, charge: AdClick, partition: int, ads: AdTally,
                 now: float) -> None:
    """Charge a sponsored click to its campaign's spend row (in this, the item's, partition),
    once per source position (a redelivered forward rewrites the row unchanged, see user_events)
    and once per ad token: a later click with a charged token is refused as "replayed"."""
    if charge.token:
        # A token's clicks all come here: it names one item, whose partition this is.
        if charged_tokens.is_replay(tokens.get(charge.token, partition), fwd.src_partition, fwd.src_offset):
            ads.refused["replayed"] += 1
            return
        tokens.set(charge.token, partition, expiry.stamped(fwd.src_partition, fwd.src_offset, now))
    row = rows.get(charge.campaign_id, partition)
    if row is not None and ad_spend.already_applied(row, fwd.src_partition, fwd.src_offset):
        rows.set(charge.campaign_id, partition, row)
        ads.redelivered += 1
        return
    new, amount, refusal = ad_spend.apply_click(row, charge.price, charge.daily_budget, fwd.ts,
                                                fwd.src_partition, fwd.src_offset)
    rows.set(charge.campaign_id, partition, new)
    if refusal is not None:
        ads.refused[refusal] += 1
        return
    ads.clicks[charge.campaign_id] += 1
    ads.spend[charge.campaign_id] += amount
    if new["spend"] > charge.daily_budget:
        ads.overspent[charge.campaign_id] += 1


def _count_ads(metrics: Any, ads: AdTally) -> None:
    for campaign, n in ads.clicks.items():
        metrics.ad_clicks.labels(campaign=campaign).inc(n)
        metrics.ad_spend.labels(campaign=campaign).inc(ads.spend[campaign])
    for reason, n in ads.refused.items():
        metrics.ad_charges_refused.labels(reason=reason).inc(n)
    for campaign, n in ads.overspent.items():
        metrics.ad_overspend_clicks.labels(campaign=campaign).inc(n)
    if ads.redelivered:
        metrics.events_redelivered.labels(table=ad_spend.NAME).inc(ads.redelivered)


def _check_partition(worker: WorkerContext, forwards: list[ItemEvent], partition: int, partitions: int) -> None:
    """An item's stats live in the partition its id hashes to; a forward elsewhere would start
    a second row for it (only a foreign producer sends one)."""
    for fwd in forwards:
        home = worker.partition_of(fwd.item_id.encode(), partitions)
        if home != partition:
            raise ValidationError(f"item {fwd.item_id[:40]!r} belongs to partition {home}, not {partition}")
