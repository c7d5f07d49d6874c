"""A synthetic shop for scale runs: shoppers, a catalog and their events, deterministic by seed.

Item popularity is Zipf (a few items take most of the traffic, as in real shops), and each
item has a few fixed successors that a shopper moves to next most of the time (a Markov
next-item structure), so a sequence model has something to learn that popularity alone does
not give. Sessions mix searches (a query from the category's words), impressions of the
results (positions, one request id), clicks, views along the chain, add-to-carts and
purchases. Records are plain dicts in the shape of `tables.wire.records` (this module stays pure).
"""
from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

CATEGORIES = ("drill", "saw", "paint", "lamp", "faucet", "tile", "rug", "chair", "hose", "shelf",
              "ladder", "glove", "mower", "sander", "grill", "fan", "heater", "sink", "door", "lock")
ADJECTIVES = ("cordless", "compact", "heavy duty", "outdoor", "white", "black", "steel", "oak", "led", "pro")
SUCCESSORS = 3  # next items per item: few enough that the chain is learnable
FOLLOW_P = 0.7  # chance that the next item follows the chain rather than popularity


@dataclass(frozen=True)
class ShopConfig:
    shoppers: int = 1_000_000
    items: int = 100_000
    seed: int = 0
    zipf_s: float = 1.05  # popularity exponent: item of rank r drawn with weight r ** -s


@dataclass
class SyntheticShop:
    config: ShopConfig
    _cum: list[float] = field(init=False, repr=False)
    _rank_item: list[int] = field(init=False, repr=False)
    _next: list[tuple[int, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        c = self.config
        rng = random.Random(f"{c.seed}:structure")
        # Popularity ranks are a permutation, so that item ids say nothing about popularity.
        self._rank_item = list(range(c.items))
        rng.shuffle(self._rank_item)
        self._cum = list(itertools.accumulate((r + 1) ** -c.zipf_s for r in range(c.items)))
        # Successors are drawn by popularity too (paths lead to items people buy), but fixed per item.
        self._next = [tuple(self._popular(rng) for _ in range(SUCCESSORS)) for _ in range(c.items)]

    def _popular(self, rng: random.Random) -> int:
        r = bisect.bisect_left(self._cum, rng.random() * self._cum[-1])
        return self._rank_item[min(r, len(self._rank_item) - 1)]

    def successors(self, item: str) -> tuple[str, ...]:
        return tuple(item_id(j) for j in self._next[int(item[1:])])

    def category(self, item: int) -> str:
        return CATEGORIES[item % len(CATEGORIES)]

    def catalog(self, ts: float) -> Iterator[dict[str, Any]]:
        """One upsert per item (a `CatalogChange` as a dict)."""
        rng = random.Random(f"{self.config.seed}:catalog")
        for i in range(self.config.items):
            cat = self.category(i)
            title = f"{rng.choice(ADJECTIVES)} {cat} {i}"
            yield {"op": "upsert", "item_id": item_id(i), "ts": ts, "title": title, "category": cat,
                   "price": round(rng.uniform(2.0, 500.0), 2), "stock": rng.randint(0, 50)}

    def events(self, n: int, start_ts: float, span_s: float) -> Iterator[dict[str, Any]]:
        """`n` events (`UserEvent`s as dicts), their ts evenly spread over [start_ts, start_ts + span_s]."""
        rng = random.Random(f"{self.config.seed}:events")
        step = span_s / max(1, n - 1)
        produced = 0
        for s in itertools.count():
            for e in self._session(rng, s):
                if produced == n:
                    return
                yield {**e, "event_id": f"e{produced}", "ts": start_ts + produced * step}
                produced += 1

    def _session(self, rng: random.Random, s: int) -> Iterator[dict[str, Any]]:
        user = f"u{rng.randrange(self.config.shoppers)}"
        if rng.random() < 0.3:
            first = yield from self._search(rng, user, s)
        else:
            first = self._popular(rng)
        item = first
        for _ in range(rng.randint(1, 6)):
            yield {"user_id": user, "type": "view", "item_id": item_id(item)}
            roll = rng.random()
            if roll < 0.1:
                yield {"user_id": user, "type": "add_to_cart", "item_id": item_id(item)}
                if roll < 0.03:
                    yield {"user_id": user, "type": "purchase", "item_id": item_id(item)}
            item = rng.choice(self._next[item]) if rng.random() < FOLLOW_P else self._popular(rng)

    def _search(self, rng: random.Random, user: str, s: int) -> Generator[dict[str, Any], None, int]:
        """A search, the impressions of its results, and a click on one; returns the clicked item."""
        anchor = self._popular(rng)
        request = f"r{s}"
        yield {"user_id": user, "type": "search", "query": f"{rng.choice(ADJECTIVES)} {self.category(anchor)}",
               "request_id": request}
        results = [anchor, *self._next[anchor]]
        for pos, item in enumerate(results):
            yield {"user_id": user, "type": "impression", "item_id": item_id(item), "position": pos,
                   "request_id": request}
        clicked = rng.randrange(len(results))
        yield {"user_id": user, "type": "click", "item_id": item_id(results[clicked]), "position": clicked,
               "request_id": request}
        return results[clicked]


def item_id(i: int) -> str:
    return f"i{i}"
