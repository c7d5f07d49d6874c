"""The serving click model equals the live one on what a version carried, ad counts included."""
import torch

from models.ads.ctr import AdClickCounts, CtrPrior
from models.online import state
from models.online.click_model import ClickSample, OnlineClickConfig, OnlineClickModel
from models.online.click_serving import ServingClickModel
from models.online.rec_model import OnlineRecConfig, OnlineRecModel
from models.online.versions import LearnerConfig, OnlineLearner, Version, full_version


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


def _promoted(learner: OnlineLearner, samples: list[ClickSample], now: float):
    for start in range(0, len(samples), 50):
        learner.step([], samples[start:start + 50])
    decision = learner.propose(now)
    assert decision.action == "promote", decision.reason
    return decision.version


def test_ad_counts_per_query_reach_the_gateway_with_the_versions():
    """An item clicked on one query's pages and ignored on another's has two pCTRs at the
    gateway, and a later delta carries only the pairs that changed since the last version."""
    learner = OnlineLearner(OnlineRecModel(OnlineRecConfig(dim=4, num_shards=1, capacity=100, negatives=4)),
                            OnlineClickModel(), LearnerConfig(min_samples=1, guard_ratio=0.01))
    shown = [ClickSample("u", "drill", 0, 1, "Cordless  DRILL"), ClickSample("u", "drill", 0, 0, "saw")] * 50
    first = _promoted(learner, shown, 1.0)
    serving = ServingClickModel.empty().apply(first)
    prior = CtrPrior()
    on_drill, on_saw, on_new = serving.ad_ctr(["drill"] * 3, "cordless drill", prior), \
        serving.ad_ctr(["drill"], "saw", prior), serving.ad_ctr(["drill"], "hammer", prior)
    assert on_drill[0] > on_new[0] > on_saw[0]  # a query never seen: the item's record over all pages
    assert on_drill[0] == on_drill[2]
    want = learner.serving_click.ad_counts
    assert serving.ad_counts.counts == want.counts and len(want) == 3  # two pairs and the item

    second = _promoted(learner, [ClickSample("u", "nail", 1, 1, None)] * 2, 2.0)
    assert sorted(map(tuple, second.ad_keys)) == [("nail", ""), ("nail", "rec")]
    moved = serving.apply(second)
    assert moved.ad_counts.counts == learner.serving_click.ad_counts.counts
    assert len(serving.ad_counts) == 3  # the older model is left as it was (copy-on-write)
    restarted = ServingClickModel.empty().apply(Version.from_bytes(full_version(
        learner.serving_rec, learner.serving_click, 3, 2, 3.0, {}).to_bytes()))
    assert restarted.ad_counts.counts == moved.ad_counts.counts


def test_a_learner_checkpoint_keeps_the_ad_counts(tmp_path):
    click = OnlineClickModel(OnlineClickConfig(ad_pair_capacity=4))
    click.learn([ClickSample("u", f"i{n}", n, n % 2, "q") for n in range(4)])
    assert len(click.ad_counts) <= 4 and click.ad_counts.evicted  # capacity 4: the oldest went
    tensors, meta = state.click_state(click)
    state.write_state_dir(tmp_path / "s", tensors, meta)
    back_tensors, back_meta = state.read_state_dir(tmp_path / "s")
    back = state.click_from_state(back_tensors, back_meta)
    assert back.ad_counts.counts == click.ad_counts.counts
    assert list(back.ad_counts.counts) == list(click.ad_counts.counts)  # eviction order kept
    assert back.ad_counts.changed == click.ad_counts.changed and back.ad_counts.evicted == click.ad_counts.evicted


def _click_with_pairs() -> ServingClickModel:
    counts = AdClickCounts()
    counts.add_all([("a", "q1", 5.0, 3.0), ("b", "q1", 10.0, 0.0), ("a", "q2", 4.0, 0.0)])
    return ServingClickModel({"a": 0.5, "b": -1.0}, {"a": (40.0, 4.0), "b": (30.0, 1.0)}, torch.tensor([0.1, 1.0]),
                             -1.0, [0.0, -0.5], counts)


def test_remembered_ad_ctr_answers_as_a_fresh_model_does_per_context_and_prior(monkeypatch):
    """pCTRs a version remembers are the ones it would compute: per context (a pair's clicks
    count on its own query only), per prior, and again after the memo is forgotten at its bound."""
    monkeypatch.setattr("models.online.click_serving.AD_CTR_MEMO", 3)
    prior, strong = CtrPrior(), CtrPrior(strength=100.0)
    model = _click_with_pairs()
    asked = [(["a", "b", "c"], "q1", prior), (["a"], "q2", prior), (["b", "a"], "q1", prior), (["a", "b"], "q1", strong),
             (["c", "a", "a"], "q2", prior), (["a"], "q1", prior), (["a", "b"], "q3", strong)]
    for items, context, p in asked:
        assert model.ad_ctr(items, context, p) == _click_with_pairs().ad_ctr(items, context, p), (items, context)
        assert model._ad_ctr_memo_size <= 3 + len(items)  # forgotten once past the bound
    on_q1, on_q2 = model.ad_ctr(["a"], "q1", prior), model.ad_ctr(["a"], "q2", prior)
    assert on_q1[0] > on_q2[0]  # clicked on q1's pages, not on q2's
    assert model.ad_ctr(["a"], "q1", strong)[0] != on_q1[0]  # another prior: not the remembered answer
