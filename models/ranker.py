"""The one contract every recommender serves by: `rank(history, k, exclude, allow)`.

Implemented by the batch-trained `EmbeddingRecVersion`, the online `OnlineRecModel` and its
read-only `ServingRecModel`, and `OnlineTransitions`; tests/unit/test_ranker_contract.py runs
the same checks over each. Ids are strings in the product; the online models accept any
hashable id.
"""
from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import Protocol, runtime_checkable

Ranking = list[tuple[str, float]]  # (item, score), best first
RankRequest = tuple[Sequence[str], int, Iterable[str], Callable[[str], bool] | None]  # rank's arguments


@runtime_checkable
class Ranker(Protocol):
    def rank(self, history: Sequence[str], k: int, exclude: Sequence[str] = (),
             allow: Callable[[str], bool] | None = None) -> Ranking:
        """At most `k` items, best first, none in `exclude`, each accepted by `allow`.

        `history` is oldest first and is not excluded unless passed in `exclude`; the inputs
        are left unchanged.
        """
        ...


@runtime_checkable
class BatchRanker(Ranker, Protocol):
    def rank_many(self, requests: Sequence[RankRequest]) -> list[Ranking]:
        """`rank` of each request, computed together (what the gateway's RankBatcher calls)."""
        ...


@runtime_checkable
class VersionedRanker(Ranker, Protocol):
    """A ranker a serving process swaps whole; `version` names what it serves."""

    @property
    def version(self) -> int | str: ...


def blend(parts: list[tuple[float, list[tuple[str, float]]]], k: int) -> list[tuple[str, float]]:
    """Weighted sum of rankings (each best first), each scaled by its largest |score|; an item
    absent from one counts 0."""
    total: dict[str, float] = {}
    get = total.get
    for weight, ranked in parts:
        # best first: the largest |score| is the first's or the last's
        scale = weight / ((max(abs(ranked[0][1]), abs(ranked[-1][1])) if ranked else 0.0) or 1.0)
        for item, score in ranked:
            total[item] = get(item, 0.0) + scale * score
    return heapq.nlargest(k, total.items(), key=itemgetter(1))  # ties keep their first-seen order
