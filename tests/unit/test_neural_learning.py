"""The online SASRec in the learner: a time share, a blend weight picked on unlearned samples, guarded versions."""
from __future__ import annotations

import torch

from models.online.config import LearnerConfig
from models.online.versions import OnlineLearner
from models.rec.neural_learning import BITE, BlendPicker, NeuralLearning, step_both
from models.rec.neural_version import NeuralRecVersion
from models.rec.online_neural import OnlineSASRec, OnlineSASRecConfig
from models.rec.sasrec import SASRec, SASRecConfig
from tests.unit.online_streams import small_model

ITEMS = [f"i{i}" for i in range(30)]


class Fixed:
    """A ranker that always answers the same list (best first), history excluded."""

    def __init__(self, order: list[str]) -> None:
        self.order = order

    def rank(self, history, k, exclude=(), allow=None):
        out = [i for i in self.order if i not in set(exclude)][:k]
        return [(item, 1.0 / (r + 1)) for r, item in enumerate(out)]

    def rank_many(self, requests):
        return [self.rank(*r) for r in requests]


def _samples(n: int) -> list[tuple[list[str], str]]:
    return [([f"i{(j + 1) % 30}"], f"i{j % 30}") for j in range(n)]


class Oracle(Fixed):
    """Ranks the target of a sample first (the target of history [i(j+1)] is i(j))."""

    def rank(self, history, k, exclude=(), allow=None):
        j = (int(history[-1][1:]) - 1) % 30
        return [(f"i{j}", 1.0)] + super().rank(history, k - 1, [*exclude, f"i{j}"])


def test_the_weight_goes_to_the_neural_model_when_it_ranks_better_on_unlearned_samples():
    picker = BlendPicker(window=500, min_samples=100)
    picker.add(Fixed(ITEMS[::-1]), Oracle(ITEMS), _samples(50))
    assert picker.weight() == 0.0  # too few samples yet
    picker.add(Fixed(ITEMS[::-1]), Oracle(ITEMS), _samples(100))
    scores = picker.ndcg()
    assert picker.weight() > 0.0 and scores[picker.weight()] > scores[0.0]


def test_the_weight_stays_0_when_the_neural_model_does_not_help():
    picker = BlendPicker(window=500, min_samples=100)
    picker.add(Oracle(ITEMS), Fixed(ITEMS), _samples(200))  # the counts already rank every target first
    assert picker.weight() == 0.0


def _start(blend: float = 0.0) -> NeuralRecVersion:
    torch.manual_seed(0)
    sasrec = SASRec(SASRecConfig(n_items=len(ITEMS), dim=8, layers=1, heads=1, max_len=6, dropout=0.0)).eval()
    return NeuralRecVersion.from_model(OnlineSASRec.warm_start(sasrec, ITEMS, OnlineSASRecConfig(num_shards=1)), "s", blend)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_over_its_time_share_the_model_leaves_samples_to_the_count_model():
    clock = Clock()
    neural = NeuralLearning(_start(), LearnerConfig(min_samples=5), share=0.25, blend_window=100, clock=clock,
                            model_config=OnlineSASRecConfig(num_shards=1, negatives=8))
    clock.now = 4.0
    first = neural.step(_samples(8), Fixed(ITEMS))  # 4 s elapsed, nothing spent: it learns
    assert first.learned == 8 and first.skipped == 0
    neural.spent = 2.0  # as if that step had taken 2 s: over 0.25 x 4 s
    second = neural.step(_samples(8), Fixed(ITEMS))
    assert second.learned == 0 and second.skipped == 8
    clock.now = 9.0  # 0.25 x 9 s > 2 s: its share has room again
    assert neural.step(_samples(8), Fixed(ITEMS)).learned == 8
    assert neural.model.samples_learned == 16
    # a batch the budget cannot afford whole (at the measured cost per sample): a bite, spread over it
    neural._per_sample, neural.spent = 0.01, 2.0  # budget 0.25 x 10 s - 2 s = 0.5 s < 300 x 0.01 s
    clock.now = 10.0
    part = neural.step(_samples(300), Fixed(ITEMS))
    assert (part.learned, part.skipped) == (BITE, 300 - BITE) and neural.model.samples_learned == 16 + BITE
    neural._per_sample, neural.spent = 0.001, 2.0  # 0.3 s: affordable whole
    assert neural.step(_samples(300), Fixed(ITEMS)).learned == 300


def test_a_share_of_1_learns_every_sample_whatever_it_costs():
    clock = Clock()
    neural = NeuralLearning(_start(), LearnerConfig(min_samples=5), share=1.0, blend_window=100, clock=clock,
                            model_config=OnlineSASRecConfig(num_shards=1, negatives=8))
    neural._per_sample, neural.spent = 1.0, 5.0  # over the elapsed time, and 300 s a batch
    clock.now = 1.0
    report = neural.step(_samples(300), Fixed(ITEMS))
    assert (report.learned, report.skipped) == (300, 0)


def test_a_promoted_state_comes_back_as_a_version_with_the_picked_weight():
    start = _start()
    neural = NeuralLearning(start, LearnerConfig(min_samples=20, guard_ratio=0.0, validation_share=1.0), share=1.0, blend_window=1000,
                            model_config=OnlineSASRecConfig(num_shards=1, negatives=8, row_lr=0.05), blend_share=1.0)
    neural.picker.min_samples = 10
    samples = [(["i1", "i2"], "i3"), (["i2"], "i3"), (["i4"], "i5")] * 10
    for _ in range(3):
        neural.step(samples, Fixed(ITEMS[::-1]))
    decision, version = neural.propose(1.0)
    assert decision.action == "promote" and version is not None
    assert version.blend == neural.picker.weight() == neural.blend
    assert not torch.equal(version.rows[version.index["i3"]], start.rows[start.index["i3"]])  # it learned
    assert neural.served is version  # the next weights are judged with what gateways now serve


def test_a_learner_step_teaches_the_count_model_then_the_neural_one():
    counts = OnlineLearner(small_model(), None, LearnerConfig(min_samples=10**9))
    samples = [([a], b) for a, b in zip(ITEMS, ITEMS[1:])][:20]
    assert step_both(counts, None, samples) is None  # no neural model: counts only
    assert counts.live_rec.samples_learned == 20
    neural = NeuralLearning(_start(), LearnerConfig(min_samples=10**9), share=1.0, blend_window=100,
                            model_config=OnlineSASRecConfig(num_shards=1, negatives=8))
    report = step_both(counts, neural, samples)
    assert report is not None and report.learned == 20
    assert counts.live_rec.samples_learned == 40 and neural.model.samples_learned == 20
