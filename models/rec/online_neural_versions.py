"""OnlineSASRec versions through the learner's own guard, probation, fusion and deltas.

`OnlineLearner` (models/online/versions.py) judges a live model against its serving snapshot
on the same samples, refuses a worse one (live reset to serving), promotes a fused version as
a delta, and rolls back a promoted version that degrades on probation. It reads its rec model
through a few members only: `learn(samples)`, `score_batch(histories, targets)`, the `store`
and `dense` weights (fusion, deltas), `popularity` and `counts` (deltas) and the `changed_*`
sets it clears. `NeuralRecModel` gives an OnlineSASRec those members, so the very same
learner decides its versions: a delta carries the item rows changed since the parent and the
transformer's weights, and no counts or popularity (the neural model has none). The learner's
checkpoints (`save`/`load`) and `serving_model` stay the count model's.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import cast

import torch

from models.metrics import batch_ranks
from models.online.config import LearnerConfig
from models.online.counts import TransitionCounts
from models.online.rec_model import OnlineRecModel, Sample
from models.online.row_stats import RowStats
from models.online.versions import OnlineLearner
from models.rec.online_neural import OnlineSASRec

Id = Hashable


class NeuralRecModel:
    """An OnlineSASRec with the members `OnlineLearner` reads from its rec model."""

    def __init__(self, model: OnlineSASRec) -> None:
        self.model = model
        self.store = model.store
        self.dense = model.dense
        self.popularity = RowStats(model.store, 1)  # stays at zero: a neural version ships none
        self.counts = TransitionCounts()  # stays empty: a neural version ships no transitions
        self.changed_sources: set[Id] = set()
        self.changed_popularity: set[Id] = set()

    @property
    def samples_learned(self) -> int:
        return self.model.samples_learned

    def learn(self, samples: Sequence[Sample]) -> float:
        """Learn (history, target) samples as sequences ending with their target."""
        return self.model.learn([[*history, target] for history, target in samples])

    def score_batch(self, histories: Sequence[Sequence[Id]], targets: Sequence[Id]) -> list[int | None]:
        """0-based rank of each target over every item with a row, history masked (the target
        excepted), ties against the target; None if the target has no row (as the count model's)."""
        scores = self.model.scores(histories)  # [B, n] over catalogue()
        column = {key: i for i, key in enumerate(self.model.catalogue())}
        cols = [column.get(t) for t in targets]
        masked = [[column[k] for k in h if k in column] for h in histories]
        ranks = batch_ranks(scores, torch.tensor([c or 0 for c in cols], dtype=torch.long), masked)
        return [None if c is None else int(r) for c, r in zip(cols, ranks.tolist())]


def neural_learner(model: OnlineSASRec, config: LearnerConfig | None = None) -> OnlineLearner:
    """The learner's guard around `model` (rank samples only, no click model)."""
    # the learner is typed for the count model; NeuralRecModel has every member it reads
    return OnlineLearner(cast(OnlineRecModel, NeuralRecModel(model)), config=config)
