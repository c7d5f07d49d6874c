"""Item statistics, keyed by item id: counts per event type, decayed popularity, trend, CTR.

Fed from the item-keyed repartition topic. Each message carries the (partition, offset) of
the original event; the stats keep the last applied offset per source partition, which
makes a replayed forward idempotent.
"""
from __future__ import annotations

import math
from typing import Any

from models.decay import add_decayed, decayed

NAME = "item_stats"
Stats = dict[str, Any]

# How much each event type says about interest in an item (impressions and searches none).
POPULARITY_WEIGHTS = {"view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 8.0}


def empty() -> Stats:
    return {"counts": {}, "pop": 0.0, "trend": 0.0, "ts": 0.0, "src": {}}


def already_applied(stats: Stats, src_partition: int, src_offset: int) -> bool:
    last = stats["src"].get(str(src_partition))
    return last is not None and src_offset <= last


def apply_event(
    stats: Stats, etype: str, ts: float, src_partition: int, src_offset: int,
    half_life_s: float, trend_half_life_s: float,
) -> Stats:
    """A new stats record with one event applied; the input is not changed."""
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


def popularity_key(stats: Stats, half_life_s: float) -> float:
    """A number that orders items as `popularity_at` does at any common `now` (log scale):
    every item decays by the same factor, so the order never changes with time."""
    return math.log(stats["pop"]) + stats["ts"] * math.log(2) / half_life_s if stats["pop"] > 0 else float("-inf")


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
