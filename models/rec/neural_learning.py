"""The online SASRec in the learner: guarded versions, a bounded share of time, a validated blend weight.

- Warm start: the newest `rec-neural` version (the offline model's, written by `streamrank
  train`, or the last one the learner promoted: a restarted learner takes up what gateways serve).
- Versions go through the learner's own guard (`neural_learner`): a promoted one becomes a new
  `NeuralRecVersion` for the gateways, a degraded one on probation is rolled back.
- Throughput: the model may spend at most `share` of the wall time learning (its scoring for
  the guard and the blend included); samples that come while it is over its share are left to
  the count model, and counted, so what it learns is a measured sample of the stream.
- The blend weight: the served blend (`models.ranker.blend`) of the count model's ranking and
  this model's, scored on samples before either has learned them, over a window of recent
  ones; the weight with the best NDCG@10 wins, 0 (the neural model left out) unless another
  is better. So the neural term is on in the served model only where it helps on validation.
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from models.metrics import ndcg_at_k
from models.online.config import LearnerConfig
from models.online.click_model import ClickSample
from models.online.versions import Decision, OnlineLearner
from models.ranker import BatchRanker, Ranker, blend
from models.rec.neural_version import NeuralRecVersion
from models.rec.online_neural import OnlineSASRecConfig
from models.rec.online_neural_versions import NeuralRecModel, neural_learner

BLEND_WEIGHTS = (0.0, 0.1, 0.2, 0.35, 0.5)
K = 10
ItemSample = tuple[Sequence[str], str]  # (history, target): the learner's rank samples (ids are strings)
BITE = 128  # samples learned from a batch the time share cannot afford whole


class BlendPicker:
    """NDCG@10 of the served blend at each candidate weight, over the last `window` samples."""

    def __init__(self, window: int, weights: Sequence[float] = BLEND_WEIGHTS, min_samples: int = 200) -> None:
        self.weights = tuple(weights)
        self.gains: deque[tuple[float, ...]] = deque(maxlen=window)
        self.min_samples = min(min_samples, window)

    def add(self, counts: Ranker, neural: BatchRanker, samples: Sequence[ItemSample]) -> None:
        """Score `samples` (neither model has learned them yet) under every weight."""
        depth = 4 * K
        histories = [list(history) for history, _ in samples]
        neural_ranked = neural.rank_many([(h, depth, h, None) for h in histories])
        for (history, target), by_neural in zip(samples, neural_ranked):
            by_counts = counts.rank(history, depth, exclude=history)
            self.gains.append(tuple(ndcg_at_k([i for i, _ in blend([(1 - w, by_counts), (w, by_neural)], K)],
                                              {target: 1.0}, K) for w in self.weights))

    def ndcg(self) -> dict[float, float]:
        n = len(self.gains)
        return {w: (sum(g[j] for g in self.gains) / n if n else 0.0) for j, w in enumerate(self.weights)}

    def weight(self) -> float:
        """The best weight; 0 until `min_samples` are scored, and whenever 0 is as good as any."""
        if len(self.gains) < self.min_samples:
            return 0.0
        scores = self.ndcg()
        best = max(self.weights, key=lambda w: (scores[w], -w))  # ties: the smaller weight
        return best if scores[best] > scores.get(0.0, 0.0) else 0.0


@dataclass
class StepReport:
    learned: int = 0
    skipped: int = 0
    seconds: float = 0.0


class NeuralLearning:
    """The online SASRec beside the count model: `step` in the learner's loop, `propose` with its versions."""

    def __init__(self, start: NeuralRecVersion, config: LearnerConfig, share: float, blend_window: int,
                 model_config: OnlineSASRecConfig | None = None,
                 clock: Callable[[], float] = time.perf_counter, blend_share: float = 0.05) -> None:
        self.model = start.to_online(model_config)
        self.learner = neural_learner(self.model, config)
        self.picker = BlendPicker(blend_window)
        self.share, self.blend_share = share, blend_share
        self.clock = clock
        self.started = clock()
        self.spent = 0.0
        self.served = start  # what gateways serve now: the blend is judged with it
        self.blend = start.blend
        self._credit = 0.0
        self._per_sample: float | None = None  # seconds one learned sample costs (moving average)

    def budget(self) -> float:
        """Seconds of learning the time share allows now (negative: over it)."""
        return self.share * (self.clock() - self.started) - self.spent

    def step(self, samples: Sequence[ItemSample], counts: Ranker) -> StepReport:
        """Learn as many of `samples` (history, target) as the time share allows, spread evenly
        over them (a uniform sample of the stream); a few are scored first for the blend weight."""
        budget = self.budget()
        unlimited = self.share >= 1.0  # all of the time: it learns every sample, however slowly
        if not samples or (budget <= 0 and not unlimited):
            return StepReport(skipped=len(samples))
        # All of them if the budget holds their cost (as measured so far), else a bite: a step
        # has a fixed cost (a softmax over every row), so fewer samples would learn less per second.
        affordable = unlimited or (self._per_sample is not None and self._per_sample * len(samples) <= budget)
        n = len(samples) if affordable else min(len(samples), BITE)
        chosen = [samples[int((j + 0.5) * len(samples) / n)] for j in range(n)] if n < len(samples) else list(samples)
        began = self.clock()
        self._credit += self.blend_share * n
        picked = int(self._credit)
        if picked:
            self._credit -= picked
            self.picker.add(counts, self.served, chosen[:picked])
        self.learner.step(chosen)
        seconds = self.clock() - began
        self.spent += seconds
        per_sample = seconds / n
        self._per_sample = per_sample if self._per_sample is None else 0.8 * self._per_sample + 0.2 * per_sample
        return StepReport(learned=n, skipped=len(samples) - n, seconds=seconds)

    def propose(self, now: float) -> tuple[Decision, NeuralRecVersion | None]:
        """The guard's decision, and the version to write when it promotes or rolls back."""
        decision = self.learner.propose(now)
        self.blend = self.picker.weight()
        if decision.action not in ("promote", "rollback"):
            return decision, None
        serving = self.learner.serving_rec
        assert isinstance(serving, NeuralRecModel)  # what neural_learner put there
        self.served = NeuralRecVersion.from_model(serving.model, f"neural-{self.learner.version}", self.blend)
        return decision, self.served

    def report(self) -> dict[str, object]:
        elapsed = max(self.clock() - self.started, 1e-9)
        return {"time_share": round(self.spent / elapsed, 3), "blend": self.blend,
                "blend_ndcg": {str(w): round(v, 4) for w, v in self.picker.ndcg().items()},
                "blend_samples": len(self.picker.gains), "version": self.learner.version}


def step_both(counts: OnlineLearner, neural: NeuralLearning | None, rec: Sequence[ItemSample],
              clicks: Sequence[ClickSample] = ()) -> StepReport | None:
    """One learner step: the count model's, then the neural model's within its share (None when
    there is none). The blend is judged against the count model's serving snapshot, which has not
    learned these samples either."""
    serving_counts = counts.serving_rec
    counts.step(rec, clicks)
    if neural is None or not rec:
        return None
    return neural.step(rec, cast(Ranker, serving_counts))  # its ids are the samples' strings
