"""The full leave-one-out run: tune on validation, refit on all but each user's last, test.

Validation: train on all but the last two items, target = second-last; the blend is picked
there. Test: a fresh model with the same epochs and blend is trained on all but the last
item (validation items included, as a streaming system would), target = last. Baselines
are fitted on the same training items in the same run.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from models.data.sequences import Dataset, split_leave_one_out
from models.rec.baselines import Popularity, Transition
from models.rec.blend import LogBlend
from models.rec.evaluation import Ranker, evaluate_split, metrics_of
from models.rec.hybrid import HybridConfig, HybridRecommender, fit_hybrid, tune_blend
from models.rec.training import TrainHistory

Progress = Callable[[str, int, int, float], None]  # (phase, epoch, epochs, loss)


@dataclass
class FitReport:
    """What fitting for serving learned: the chosen blend and the validation table."""

    blend: LogBlend
    validation: dict[str, dict[str, float]]
    validation_history: TrainHistory
    history: TrainHistory
    seconds: float


def fit_for_serving(data: Dataset, config: HybridConfig, progress: Progress | None = None) -> tuple[HybridRecommender, FitReport]:
    """Tune on validation, then train on every item but each user's last."""
    start = time.monotonic()
    val = split_leave_one_out(data.sequences, holdout=2)
    model_v, hist_v = fit_hybrid(data, val.train, config, progress=_phase(progress, "validation"))
    blend, table = tune_blend(model_v, val, config)
    del model_v
    test_train = split_leave_one_out(data.sequences, holdout=1).train
    epochs = max(1, len(hist_v.loss))
    model, hist = fit_hybrid(data, test_train, config, blend=blend, epochs=epochs, progress=_phase(progress, "final"))
    return model, FitReport(blend, table, hist_v, hist, time.monotonic() - start)


def evaluate_test(data: Dataset, model: HybridRecommender) -> dict[str, dict[str, float]]:
    """Test metrics of the model, its parts and the two baselines (fitted on all but the last)."""
    test = split_leave_one_out(data.sequences, holdout=1)
    popularity = Popularity(data.n_items).fit(test.train)
    transition = Transition(data.n_items).fit(test.train)

    def parts(histories: list[np.ndarray]) -> dict[str, torch.Tensor]:
        rows = dict(model.parts(histories))  # neural, transition (extended, normalised), prior
        rows["popularity"] = popularity.score(histories[:1])  # the same row for every user
        rows["baseline"] = transition.score(histories)
        return rows

    neural_only = LogBlend(0.0, neural_only=True)
    transition_only = LogBlend(0.0)
    rankers: dict[str, Ranker] = {
        "model": model.blend,
        "popularity": lambda p: p["popularity"],
        "transition": lambda p: p["baseline"],
        "neural": neural_only,
        "transition_ext": transition_only,
    }
    return metrics_of(evaluate_split(test, parts, rankers))


def _phase(progress: Progress | None, phase: str) -> Callable[[int, int, float], None] | None:
    if progress is None:
        return None
    return lambda epoch, epochs, loss: progress(phase, epoch, epochs, loss)
