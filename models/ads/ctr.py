"""pCTR of an ad: the position-debiased click model's estimate, corrected by the ad's own clicks.

The online click model (`models/online/click_model.py`) learns, per item, a position-free
attractiveness and, per slot, a position bias: how much less a lower slot is looked at. An
ad's pCTR (its click probability at the top slot) starts from that estimate for its item and
moves to the clicks the ad itself gets, per (item, context) and per item, counted against
examinations (each impression weighted by its slot's examination) so an ad shown low is not
taken for a bad one. Each level is a Beta prior worth `strength` examinations for the next:
a new campaign is ranked by the model's estimate, a well-shown one by its own record.

`CountsCtr` is the baseline without the model: clicks over impressions, position ignored.
Context is what the page is about: a normalised query for search, e.g. "rec" for recommendations.
"""
from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol

Key = Hashable


@dataclass(frozen=True)
class CtrPrior:
    strength: float = 10.0  # examinations a prior mean is worth at each level
    mean: float = 0.05  # pCTR of an item nothing is known about

    def __post_init__(self) -> None:
        if not (self.strength > 0 and 0 < self.mean < 1):
            raise ValueError(f"need strength > 0 and 0 < mean < 1, got {self.strength}, {self.mean}")


class AdCtr(Protocol):
    def observe(self, item_id: Key, context: Key, position: int, clicked: bool) -> None: ...
    def predict(self, item_id: Key, context: Key, model_ctr: float | None = None) -> float: ...


def examination_from_position_bias(position_bias: Sequence[float]) -> list[float]:
    """Examination of each slot relative to the top one, [P] in (0, 1], from the click model's
    position biases (logits): exp(b_p - b_0), exact where clicks are rare, as on most slots."""
    if not position_bias:
        return [1.0]
    top = position_bias[0]
    return [min(1.0, max(0.01, math.exp(b - top))) for b in position_bias]


def click_model_ctr(relevance: float, top_bias: float) -> float | None:
    """The click model's click probability at the top slot from its position-free `relevance`
    (the probability at a slot of zero bias); None when the model does not know the item (0)."""
    if not 0 < relevance < 1:
        return None
    return 1.0 / (1.0 + math.exp(-(math.log(relevance / (1.0 - relevance)) + top_bias)))


def _shrunk(clicks: float, trials: float, mean: float, strength: float) -> float:
    """Posterior mean of a Beta(strength * mean, strength * (1 - mean)) prior after the counts."""
    return min(1.0, (clicks + strength * mean) / (trials + strength))


class DebiasedCtr:
    """Ad pCTR from clicks over examinations, per (item, context) then per item, over the model's prior."""

    def __init__(self, examination: Sequence[float], prior: CtrPrior = CtrPrior()) -> None:
        self.examination = list(examination) or [1.0]
        self.prior = prior
        self.pair: dict[tuple[Key, Key], list[float]] = {}  # (item, context) -> [clicks, examinations]
        self.item: dict[Key, list[float]] = {}

    def examined(self, position: int) -> float:
        return self.examination[min(max(position, 0), len(self.examination) - 1)]

    def observe(self, item_id: Key, context: Key, position: int, clicked: bool) -> None:
        weight = self.examined(position)
        for counts in (self.pair.setdefault((item_id, context), [0.0, 0.0]), self.item.setdefault(item_id, [0.0, 0.0])):
            counts[0] += float(clicked)
            counts[1] += weight

    def predict(self, item_id: Key, context: Key, model_ctr: float | None = None) -> float:
        strength = self.prior.strength
        base = self.prior.mean if model_ctr is None else model_ctr
        clicks, exams = self.item.get(item_id, (0.0, 0.0))
        item_ctr = _shrunk(clicks, exams, base, strength)
        clicks, exams = self.pair.get((item_id, context), (0.0, 0.0))
        return _shrunk(clicks, exams, item_ctr, strength)


class CountsCtr:
    """Baseline pCTR: the item's ad clicks over ad impressions, shrunk to the CTR of all ads so
    far; no position correction, no click model."""

    def __init__(self, prior: CtrPrior = CtrPrior()) -> None:
        self.prior = prior
        self.item: dict[Key, list[float]] = {}
        self.total = [0.0, 0.0]  # clicks, impressions of every ad

    def observe(self, item_id: Key, context: Key, position: int, clicked: bool) -> None:
        for counts in (self.item.setdefault(item_id, [0.0, 0.0]), self.total):
            counts[0] += float(clicked)
            counts[1] += 1.0

    def predict(self, item_id: Key, context: Key, model_ctr: float | None = None) -> float:
        overall = _shrunk(self.total[0], self.total[1], self.prior.mean, self.prior.strength)
        clicks, shown = self.item.get(item_id, (0.0, 0.0))
        return _shrunk(clicks, shown, overall, self.prior.strength)


class FlatCtr:
    """Every ad alike (pCTR 1): the auction then ranks by bid alone, the highest-bid baseline."""

    def observe(self, item_id: Key, context: Key, position: int, clicked: bool) -> None:
        return None

    def predict(self, item_id: Key, context: Key, model_ctr: float | None = None) -> float:
        return 1.0
