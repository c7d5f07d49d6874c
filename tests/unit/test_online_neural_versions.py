"""OnlineSASRec versions go through the learner's guard: good ones promoted, damaged ones refused or rolled back."""
from __future__ import annotations

import copy
import dataclasses
import functools

import numpy as np
import torch

from models.online.versions import LearnerConfig, OnlineLearner, Version
from models.rec.online_neural import OnlineSASRec, OnlineSASRecConfig
from models.rec.online_neural_versions import NeuralRecModel, neural_learner
from models.rec.sasrec import SASRec, SASRecConfig
from models.rec.training import TrainConfig, train_sasrec
from tests.unit.online_streams import batches, chain_stream

ITEMS = [f"{c}{i}" for c in "xyz" for i in range(12)]  # the chains x_i -> y_i -> z_i of chain_stream


@functools.lru_cache(maxsize=1)
def _checkpoint() -> SASRec:
    """A SASRec that learned the chains offline (warm_start copies it: shared by the tests)."""
    torch.manual_seed(0)
    model = SASRec(SASRecConfig(n_items=len(ITEMS), dim=16, layers=1, heads=1, max_len=4, dropout=0.0))
    index = {key: i for i, key in enumerate(ITEMS)}
    walks = [np.asarray([index[k] for k in [*h, t]], dtype=np.int64) for h, t in chain_stream(200) if len(h) == 2]
    train_sasrec(model, walks, TrainConfig(epochs=30, batch_size=64, lr=1e-2, negatives=0))
    return model


def _learner(**config: object) -> OnlineLearner:
    model = OnlineSASRec.warm_start(_checkpoint(), ITEMS, OnlineSASRecConfig(num_shards=2, seed=1))
    # every sample scored: the windows are sized in samples fed
    return neural_learner(model, LearnerConfig(**{"min_samples": 150, "window": 300, "validation_share": 1.0,
                                                  **config}))  # type: ignore[arg-type]


def _feed(learner: OnlineLearner, samples: list[tuple[list[str], str]]) -> None:
    for batch in batches(samples, 60):
        learner.step(batch)


def _neural(model: object) -> OnlineSASRec:
    assert isinstance(model, NeuralRecModel)
    return model.model


def _same(a: object, b: object) -> bool:
    x, y = _neural(a), _neural(b)
    rows = all(torch.equal(p.weights, q.weights) for p, q in zip(x.store.shards, y.store.shards))
    return rows and all(torch.equal(p, q) for p, q in zip(x.dense.parameters(), y.dense.parameters()))


def _blow_up(model: object) -> None:
    """A learning-rate blow-up: one step at rates 10^4 times the configured ones."""
    neural = _neural(model)
    for group in neural.optimizer.param_groups:
        group["lr"] = 1.0
    neural.config = dataclasses.replace(neural.config, row_lr=200.0)
    neural.learn([[*h, t] for h, t in chain_stream(60, seed=9) if h])


def test_the_learner_scores_the_neural_model_like_the_count_model():
    learner = _learner()
    ranks = learner.live_rec.score_batch([["x1"], ["x1", "y1"], ["nope"]], ["y1", "z1", "unknown"])
    assert ranks[0] == 0 and ranks[1] == 0  # the checkpoint knows the chains
    assert ranks[2] is None  # a target without a row


def test_a_good_version_is_promoted_as_a_delta_of_rows_and_transformer_weights():
    learner = _learner()
    _feed(learner, chain_stream(100, seed=1))
    decision = learner.propose(now=1.0)
    assert decision.action == "promote", decision
    version = Version.from_bytes(decision.version.to_bytes())
    neural = _neural(learner.serving_rec)
    assert version.number == 1 and version.row_ids and version.rows.shape == (len(version.row_ids), 16)
    assert set(version.dense) == set(neural.dense.state_dict()) and not version.transitions
    assert decision.metrics["live"]["NDCG@10"] > 0.5


def test_a_corrupted_version_is_refused_and_live_goes_back_to_serving():
    learner = _learner()
    with torch.no_grad():
        for p in _neural(learner.live_rec).dense.parameters():
            p.add_(torch.randn_like(p) * 2.0)
    _feed(learner, chain_stream(100, seed=2))
    decision = learner.propose(now=1.0)
    assert decision.action == "refuse", decision
    assert decision.metrics["live"]["NDCG@10"] < decision.metrics["serving"]["NDCG@10"]
    assert _same(learner.live_rec, learner.serving_rec) and learner.live_rec is not learner.serving_rec
    _feed(learner, chain_stream(100, seed=3))  # the reset model learns on and is promoted
    assert learner.propose(now=2.0).action == "promote"


def test_a_learning_rate_blow_up_is_refused():
    learner = _learner()
    _blow_up(learner.live_rec)
    _feed(learner, chain_stream(100, seed=4))
    assert learner.propose(now=1.0).action == "refuse"


def test_damage_learned_after_the_window_is_rolled_back_on_probation():
    learner = _learner()
    good = copy.deepcopy(learner.serving_rec)
    _feed(learner, chain_stream(100, seed=5))  # the window is judged on a healthy model
    _blow_up(learner.live_rec)  # then a blow-up the window never saw
    assert learner.propose(now=1.0).action == "promote" and learner.on_probation
    _feed(learner, chain_stream(100, seed=6))
    decision = learner.propose(now=2.0)
    assert decision.action == "rollback", decision
    assert decision.version.full and decision.version.metrics["rollback_to"] == 0
    assert _same(learner.serving_rec, good) and _same(learner.live_rec, good)
