"""Turning the shared data sets into the event stream a shop would send."""
from __future__ import annotations

import hashlib
import heapq
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tables.wire.records import UserEvent

# A fixed origin keeps event ids and times identical between replays, so replaying twice
# is recognised as duplicates instead of doubling every count. Early enough that Beauty's
# whole synthetic timeline (about 760 days) lies in the past: receivers refuse a ts more than
# `max_clock_skew_s` ahead of their clock.
REPLAY_EPOCH = 1_704_067_200.0  # 2024-01-01T00:00:00Z


@dataclass(frozen=True)
class ReplayPlan:
    """How a sequence file becomes timed events: each user starts somewhere in `span_s`."""

    event_type: str = "purchase"
    # Event ids are `<run>:<user>:<k>`: the same run replayed again is all duplicates.
    run: str = "seq"
    span_s: float = 180 * 24 * 3600.0
    gap_s: float = 3 * 24 * 3600.0
    seed: int = 7


def catalog_price(item_id: str) -> float:
    """A plausible shelf price for a product of a file that has none (Home Depot's has no prices).

    Log-normal around $30 (most products $8-$110, a few hundred dollars), ending in .97; a hash
    of the id, so every replay and every process gives a product the same price.
    """
    digest = hashlib.sha256(item_id.encode()).digest()
    u1, u2 = (int.from_bytes(digest[i:i + 8], "big") / 2**64 for i in (0, 8))
    normal = math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)  # Box-Muller
    price = min(max(math.exp(math.log(30.0) + 0.9 * normal), 2.0), 1999.0)
    return round(price) - 0.03


def first_user(path: Path) -> str:
    """The user whose events the replay sends first (the demo shows this one)."""
    return next(sequence_events(read_sequences(path))).user_id


def read_sequences(path: Path) -> list[tuple[str, list[str]]]:
    """`user item item ...` lines, items in time order."""
    out = []
    with path.open() as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 2:
                out.append((parts[0], parts[1:]))
    return out


def sequence_events(sequences: list[tuple[str, list[str]]], plan: ReplayPlan = ReplayPlan()) -> Iterator[UserEvent]:
    """Events of all users interleaved by time, each user's items in their order."""
    rng = random.Random(plan.seed)
    heap: list[tuple[float, int, int]] = []
    for u in range(len(sequences)):
        heap.append((REPLAY_EPOCH + rng.random() * plan.span_s, u, 0))
    heapq.heapify(heap)
    while heap:
        ts, u, k = heapq.heappop(heap)
        user, items = sequences[u]
        yield UserEvent(event_id=f"{plan.run}:{user}:{k}", user_id=user, type=plan.event_type,
                        ts=round(ts, 3), item_id=items[k])
        if k + 1 < len(items):
            heapq.heappush(heap, (ts + plan.gap_s * (0.5 + rng.random()), u, k + 1))
