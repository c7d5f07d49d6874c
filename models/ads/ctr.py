"""pCTR of an ad: the position-debiased click model's estimate, corrected by the ad's own clicks.

The online click model (`models/online/click_model.py`) learns, per item, a position-free
attractiveness and, per slot, a position bias: how much less a lower slot is looked at. An
ad's pCTR (its click probability at the top slot) starts from that estimate for its item and
moves to the clicks the item gets, per (item, page context) and per item, counted against
examinations (each impression weighted by its slot's examination) so an item shown low is not
taken for a bad one. Each level is a Beta prior worth `strength` examinations for the next:
a new campaign is ranked by the model's estimate, a well-shown one by its own record.
`AdClickCounts` holds those counts: the online click model keeps them as it learns and ships
them with its versions, so the gateway's pCTR is per (item, query) as the evaluation's is.

`CountsCtr` is the baseline without the model: clicks over impressions, position ignored.
Context is what the page is about: a normalised query for search, e.g. "rec" for recommendations.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

Key = Hashable
ITEM_LEVEL = ""  # the context of an item's counts over every page (no page's context is empty)
REC_CONTEXT = "rec"  # the context of pages without a query: recommendations
_ZERO = (0.0, 0.0)


def page_context(query: str | None) -> str:
    """What a page is about, as ad counts are keyed: its query in lower case with single
    spaces, or "rec" for a page without one."""
    text = " ".join(query.lower().split()) if query else ""
    return text or REC_CONTEXT


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


class AdClickCounts:
    """Clicks and examinations per (item, page context) and per item (context `ITEM_LEVEL`), at
    most `capacity` keys: past it, the least recently counted tenth goes at once (one key at a
    time from a dict's front rescans the dead slots there: 37 us a count instead of ~2). What
    changed and what was dropped since `mark` are kept, so a version ships only those."""

    def __init__(self, capacity: int = 100_000) -> None:
        if capacity < 2:
            raise ValueError(f"capacity must be >= 2 (an item and one of its pairs), got {capacity}")
        self.capacity = capacity
        self.counts: dict[tuple[Key, Key], tuple[float, float]] = {}  # insertion order: least recent first
        self.changed: set[tuple[Key, Key]] = set()
        self.evicted: set[tuple[Key, Key]] = set()

    def add(self, item_id: Key, context: Key, examination: float, clicked: float) -> None:
        self.add_all([(item_id, context, examination, clicked)])

    def add_all(self, rows: Iterable[tuple[Key, Key, float, float]]) -> None:
        """Count (item, context, examination, clicked) rows, then drop what passes the capacity."""
        counts, changed, evicted, zero = self.counts, self.changed, self.evicted, _ZERO
        for item_id, context, examination, clicked in rows:
            for key in ((item_id, context), (item_id, ITEM_LEVEL)):
                clicks, exams = counts.pop(key, zero)  # popped and put back: now the most recent
                counts[key] = (clicks + clicked, exams + examination)
                changed.add(key)
                if evicted:
                    evicted.discard(key)
        if len(counts) > self.capacity:
            for key in list(itertools.islice(counts, len(counts) - self.capacity * 9 // 10)):
                del counts[key]
                changed.discard(key)
                evicted.add(key)

    def predict(self, item_id: Key, context: Key, model_ctr: float | None, prior: CtrPrior) -> float:
        """Top-slot pCTR: the model's estimate (the prior's mean when None), moved by the item's
        clicks over examinations, then by the pair's."""
        base = prior.mean if model_ctr is None else model_ctr
        counts = self.counts
        clicks, exams = counts.get((item_id, ITEM_LEVEL), _ZERO)
        item_ctr = _shrunk(clicks, exams, base, prior.strength)
        clicks, exams = counts.get((item_id, context), _ZERO)
        return _shrunk(clicks, exams, item_ctr, prior.strength)

    def mark(self) -> None:
        """Forget what changed: a version has shipped it."""
        self.changed.clear()
        self.evicted.clear()

    def export(self, keys: Iterable[tuple[Key, Key]] | None = None) -> tuple[list[tuple[Key, Key]], list[tuple[float, float]]]:
        """(keys, [clicks, examinations] of each) of `keys` held (None: all)."""
        counts = self.counts
        held = list(counts) if keys is None else [k for k in keys if k in counts]
        return held, [counts[k] for k in held]

    def replaced(self, keys: Sequence[Sequence[Key]], values: Sequence[Sequence[float]],
                 evicted: Sequence[Sequence[Key]] = (), full: bool = False) -> "AdClickCounts":
        """A copy with a version's counts applied (keys may come as JSON lists); this one is left
        unchanged, and is the answer itself when the version changes nothing (no copy of every key)."""
        if not (keys or evicted or full):
            return self
        out = AdClickCounts(self.capacity)
        counts = {} if full else dict(self.counts)
        for item, context in evicted:
            counts.pop((item, context), None)
        for (item, context), (clicks, exams) in zip(keys, values):
            counts[(item, context)] = (float(clicks), float(exams))
        out.counts = counts
        return out

    def __len__(self) -> int:
        return len(self.counts)

    def __deepcopy__(self, memo: dict[int, object]) -> "AdClickCounts":
        # Keys and values are immutable tuples: a shallow copy of the dict is a deep one, and
        # a learner snapshots its models at every version.
        out = AdClickCounts(self.capacity)
        out.counts, out.changed, out.evicted = dict(self.counts), set(self.changed), set(self.evicted)
        return out


class DebiasedCtr:
    """Ad pCTR from clicks over examinations, per (item, context) then per item, over the model's prior."""

    def __init__(self, examination: Sequence[float], prior: CtrPrior = CtrPrior(), capacity: int = 1_000_000) -> None:
        self.examination = list(examination) or [1.0]
        self.prior = prior
        self.counts = AdClickCounts(capacity)

    def examined(self, position: int) -> float:
        return self.examination[min(max(position, 0), len(self.examination) - 1)]

    def observe(self, item_id: Key, context: Key, position: int, clicked: bool) -> None:
        self.counts.add(item_id, context, self.examined(position), float(clicked))

    def predict(self, item_id: Key, context: Key, model_ctr: float | None = None) -> float:
        return self.counts.predict(item_id, context, model_ctr, self.prior)


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
