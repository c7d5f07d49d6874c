"""The serving click model equals the live one on what a version carried."""
import torch

from models.online.click_model import ClickSample, OnlineClickModel
from models.online.click_serving import ServingClickModel
from models.online.rec_model import OnlineRecConfig, OnlineRecModel
from models.online.versions import LearnerConfig, OnlineLearner


def test_serving_relevance_matches_the_live_model_and_follows_clicks():
    learner = OnlineLearner(OnlineRecModel(OnlineRecConfig(dim=4, num_shards=1, capacity=100, negatives=4)),
                            OnlineClickModel(), LearnerConfig(min_samples=1, guard_ratio=0.01))
    # 'good' is clicked at the bottom slot, 'bad' never at the top: position cannot explain it.
    clicks = [ClickSample("u", "good", 5, 1), ClickSample("u", "bad", 0, 0)] * 200
    for start in range(0, len(clicks), 50):
        learner.step([], clicks[start:start + 50])
    decision = learner.propose(1.0)
    assert decision.action == "promote", decision.reason
    serving = ServingClickModel.empty().apply(decision.version)
    got = serving.relevance(["good", "bad", "never-shown"])
    want = learner.serving_click.relevance(["good", "bad"])
    assert torch.allclose(got[:2], want, atol=1e-5)
    assert got[0] > got[1] and got[2] == 0.0
    assert len(ServingClickModel.empty()) == 0  # apply did not touch the empty model
