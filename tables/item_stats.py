"""Item statistics, keyed by item id: counts per event type, decayed popularity, trend, CTR.

Fed from the item-keyed repartition topic. Each message carries the (partition, offset) of
the original event; the stats keep the last applied offset per source partition, which
makes a replayed forward idempotent.

Event times are bounded where records enter (`max_clock_skew_s`), but a stats record may
still hold a far-future `ts` written before they were: its decayed sums are then measured
from a time that will not come, so every later event would add nothing. `max_ts` (the wall
clock plus the skew) lets such a record be recognised and its sums started again.
"""
from __future__ import annotations

import math
from typing import Any, TypedDict

from models.decay import add_decayed, decayed
from tables.shapes import is_counts, is_number, require

NAME = "item_stats"


class Stats(TypedDict):
    """An item_stats value (the changelog's JSON object)."""

    counts: dict[str, int]  # events per type
    pop: float  # decayed popularity, as of `ts`
    trend: float  # the same with the short half-life
    ts: float  # newest event time applied (seconds)
    src: dict[str, int]  # source partition (as text) -> offset of the last event applied


# How much each event type says about interest in an item (impressions and searches none).
POPULARITY_WEIGHTS = {"view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 8.0}


def empty() -> Stats:
    return {"counts": {}, "pop": 0.0, "trend": 0.0, "ts": 0.0, "src": {}}


def already_applied(stats: Stats, src_partition: int, src_offset: int) -> bool:
    last = stats["src"].get(str(src_partition))
    return last is not None and src_offset <= last


def apply_event(
    stats: Stats, etype: str, ts: float, src_partition: int, src_offset: int,
    half_life_s: float, trend_half_life_s: float, max_ts: float = math.inf,
) -> Stats:
    """A new stats record with one event applied; the input is not changed. Decayed sums
    stored at a time past `max_ts` (seconds) are dropped first: they cannot be trusted."""
    if stats["ts"] > max_ts:
        stats = Stats(counts=stats["counts"], pop=0.0, trend=0.0, ts=0.0, src=stats["src"])
    counts = dict(stats["counts"])
    counts[etype] = counts.get(etype, 0) + 1
    weight = POPULARITY_WEIGHTS.get(etype, 0.0)
    pop, new_ts = add_decayed(stats["pop"], stats["ts"], weight, ts, half_life_s)
    trend, _ = add_decayed(stats["trend"], stats["ts"], weight, ts, trend_half_life_s)
    return {
        "counts": counts,
        "pop": pop,
        "trend": trend,
        "ts": new_ts,
        "src": {**stats["src"], str(src_partition): src_offset},
    }


def ctr(stats: Stats) -> float | None:
    """Clicks per impression, None before the first impression."""
    impressions = stats["counts"].get("impression", 0)
    return stats["counts"].get("click", 0) / impressions if impressions else None


def popularity_at(stats: Stats, now: float, half_life_s: float) -> float:
    return decayed(stats["pop"], stats["ts"], now, half_life_s)


def popularity_key(stats: Stats, half_life_s: float, max_ts: float = math.inf) -> float:
    """A number that orders items as `popularity_at` does at any common `now` (log scale):
    every item decays by the same factor, so the order never changes with time. A `ts` past
    `max_ts` counts as `max_ts`, so a far-future record cannot outrank every item for good."""
    if stats["pop"] <= 0:
        return float("-inf")
    return math.log(stats["pop"]) + min(stats["ts"], max_ts) * math.log(2) / half_life_s


def trending_at(stats: Stats, now: float, half_life_s: float, trend_half_life_s: float) -> float:
    """Short-term over long-term interest: above 1 means rising."""
    long = popularity_at(stats, now, half_life_s)
    short = decayed(stats["trend"], stats["ts"], now, trend_half_life_s)
    return short / long if long > 0 else 0.0


def public_view(item_id: str, stats: Stats, now: float, half_life_s: float, trend_half_life_s: float) -> dict[str, Any]:
    return {
        "item_id": item_id,
        "counts": stats["counts"],
        "popularity": popularity_at(stats, now, half_life_s),
        "trending": trending_at(stats, now, half_life_s, trend_half_life_s),
        "ctr": ctr(stats),
        "last_event_ts": stats["ts"],
    }


def validate(value: Any) -> None:
    """Refuse a changelog value that is not a stats record (ValidationError says what is wrong)."""
    require(isinstance(value, dict), NAME, "an object")
    require(is_counts(value.get("counts")), NAME, "an object whose 'counts' maps event types to counts")
    for key in ("pop", "trend", "ts"):
        require(is_number(value.get(key)) and value[key] >= 0, NAME, f"an object whose '{key}' is a number >= 0")
    require(is_counts(value.get("src")), NAME, "an object whose 'src' maps partitions to offsets")
