"""Item-to-item transitions learned one event at a time, for serving fresh recommendations.

The streaming twin of `baselines.Transition` (same scoring: for each of the user's last
items, weights 1, 0.5, 0.25, add count(a->b) / sqrt(1 + count(a->.)); popularity breaks ties).
The counts are the online learner's `TransitionCounts` (one channel), so a new event changes
the next answer. River-style contract: `learn_one(previous_item, item)` and
`rank(history, k, ...)`; inputs are never mutated.
"""
from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from models.online.counts import TransitionCounts


@dataclass(frozen=True)
class OnlineTransitionConfig:
    weights: tuple[float, ...] = (1.0, 0.5, 0.25)
    popularity_weight: float = 1e-3
    # Bound on neighbours kept per item: the rarest are dropped, so memory stays linear.
    max_neighbours: int = 500


class OnlineTransitions:
    def __init__(self, config: OnlineTransitionConfig | None = None) -> None:
        self.config = config or OnlineTransitionConfig()
        self.counts = TransitionCounts(self.config.max_neighbours)
        self.popularity: Counter[str] = Counter()
        self.top_popularity = 1  # kept as counts grow: a max over all items per request is slow
        self.events = 0

    @property
    def next(self) -> dict[str, Counter[str]]:
        """count(a -> b) per source a."""
        return self.counts.next  # type: ignore[return-value]

    def learn_one(self, previous: str | None, item: str) -> None:
        """One step of a user's sequence: `item` followed `previous` (None for a first item)."""
        self.events += 1
        self.popularity[item] += 1
        if self.popularity[item] > self.top_popularity:
            self.top_popularity = self.popularity[item]
        if previous is not None:
            self.counts.add(previous, item)

    def learn_sequence(self, items: Sequence[str], previous: str | None = None) -> None:
        for item in items:
            self.learn_one(previous, item)
            previous = item

    def scores(self, history: Sequence[str]) -> dict[str, float]:
        """Transition score of every item reachable from the user's last items."""
        weights = self.config.weights
        return self.counts.weighted_sum(history, len(weights), weights)  # type: ignore[return-value]

    def rank(
        self,
        history: Sequence[str],
        k: int,
        exclude: Iterable[str] = (),
        allow: Callable[[str], bool] | None = None,
        fallback: Iterable[tuple[str, float]] = (),
    ) -> list[tuple[str, float]]:
        """Top `k` (item, score): transitions first, popularity breaking ties, then `fallback`.

        `fallback` (e.g. trending items, best first) fills the list when the history says too
        little; its scores are shifted below every transition score.
        """
        excluded = set(exclude)
        pw = self.config.popularity_weight / self.top_popularity
        candidates = (
            (b, s + pw * self.popularity[b]) for b, s in self.scores(history).items()
            if b not in excluded and (allow is None or allow(b))
        )
        ranked = heapq.nlargest(k, candidates, key=lambda kv: kv[1])
        if len(ranked) < k:
            taken = excluded | {b for b, _ in ranked}
            floor = min((s for _, s in ranked), default=0.0)
            for b, _ in fallback:
                if len(ranked) >= k:
                    break
                if b not in taken and (allow is None or allow(b)):
                    ranked.append((b, min(floor, 0.0) - 1.0 + 1.0 / (2.0 + len(ranked))))
                    taken.add(b)
        return ranked

    def similar(self, item: str, k: int, allow: Callable[[str], bool] | None = None) -> list[tuple[str, float]]:
        """Items people most often take right after `item`."""
        return self.rank([item], k, exclude=[item], allow=allow)

    def size(self) -> dict[str, int]:
        return {"items": len(self.popularity), "edges": self.counts.edges()}
