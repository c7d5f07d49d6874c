"""The learner's validation budget: a share of rank samples scored, paired, every sample learned;
and the candidate-restricted transition features the training step reads."""
import math
import random

from models.online.counts import TransitionCounts
from models.online.progressive import WindowMetric
from models.online.versions import LearnerConfig, OnlineLearner
from tests.unit.online_streams import batches, chain_stream, shuffled_targets, small_model


def test_a_share_of_samples_is_scored_on_both_models_and_every_sample_is_learned():
    learner = OnlineLearner(small_model(), config=LearnerConfig(min_samples=10, validation_share=0.25))
    samples = chain_stream(40, seed=1)
    for batch in batches(samples, 64):
        learner.step(batch)
    assert learner.live_rec.samples_learned == len(samples)
    assert abs(learner.live_window.count - 0.25 * len(samples)) <= 1
    assert learner.serving_window.count == learner.live_window.count  # paired: the same samples


def test_the_share_carries_over_between_batches_and_every_batch_is_scored_at_least_once():
    learner = OnlineLearner(small_model(), config=LearnerConfig(validation_share=0.1))
    samples = chain_stream(200, seed=2)[:600]
    assert len(samples) == 600
    for batch in batches(samples[:300], 30):  # 3 scored per batch
        learner.step(batch)
    assert learner.live_window.count == 30
    for batch in batches(samples[300:], 3):  # a quiet stream: 0.3 per batch, one scored each
        learner.step(batch)
    assert learner.live_window.count == 30 + 100


def test_the_guard_still_refuses_a_poisoned_version_on_a_scored_share():
    # The window (scored samples) holds the real traffic after the flood, as in test_online_versions.
    learner = OnlineLearner(small_model(), config=LearnerConfig(min_samples=75, window=150, validation_share=0.5))
    for batch in batches(chain_stream(60, seed=1), 64):
        learner.step(batch)
    assert learner.propose(now=1.0).action == "promote"
    for batch in batches(shuffled_targets(chain_stream(1000, seed=2)), 64):
        learner.step(batch)
    for batch in batches(chain_stream(100, seed=3), 64):
        learner.step(batch)
    decision = learner.propose(now=2.0)
    assert decision.action == "refuse", decision


def test_ndcg_standard_error_is_that_of_the_per_sample_gains():
    window = WindowMetric(100)
    ranks = [0, 3, None, 20, 1, 9, 10, None]
    window.add_ranks(ranks)
    gains = [1 / math.log2(r + 2) if r is not None and r < 10 else 0.0 for r in ranks]
    mean = sum(gains) / len(gains)
    se = math.sqrt(sum((g - mean) ** 2 for g in gains) / (len(gains) - 1) / len(gains))
    assert math.isclose(window.ndcg_se(), se)
    assert window.summary()["NDCG@10_se"] == window.ndcg_se()
    assert WindowMetric(5).ndcg_se() is None


def test_features_among_equals_the_full_features_filtered_to_the_candidates():
    rng = random.Random(3)
    counts = TransitionCounts(max_neighbours=20, gaps=3, reverse=True)
    for _ in range(3000):
        history = [rng.randrange(60) for _ in range(rng.randrange(1, 6))]
        counts.add_sample(history, rng.randrange(60))
    histories = [[rng.randrange(70) for _ in range(rng.randrange(0, 6))] for _ in range(40)]
    column = {item: c for c, item in enumerate(rng.sample(range(70), 25))}
    full = sorted((b, f, column[i], v) for b, f, i, v in counts.features(histories, 4) if i in column)
    among = sorted(zip(*counts.features_among(histories, 4, column)))
    assert len(full) > 50
    assert among == full
