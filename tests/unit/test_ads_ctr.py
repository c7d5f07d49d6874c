"""Ad pCTR: the click model's prior for new campaigns, debiasing by examination, the counts baseline."""
import math

import pytest

from models.ads.ctr import (
    ITEM_LEVEL,
    AdClickCounts,
    CountsCtr,
    CtrPrior,
    DebiasedCtr,
    FlatCtr,
    click_model_ctr,
    examination_from_position_bias,
    page_context,
)

PRIOR = CtrPrior(strength=10.0, mean=0.05)


def test_a_new_campaign_gets_the_click_model_estimate_or_the_global_prior():
    ctr = DebiasedCtr([1.0, 0.5], PRIOR)
    assert ctr.predict("new", "q", model_ctr=0.3) == pytest.approx(0.3)
    assert ctr.predict("new", "q") == pytest.approx(0.05)


def test_own_clicks_pull_the_prior_by_its_strength():
    ctr = DebiasedCtr([1.0], PRIOR)
    for n in range(10):
        ctr.observe("a", "q", 0, clicked=n < 5)  # 5 clicks in 10 examinations
    item = (5 + 10 * 0.1) / (10 + 10)  # item level over the model's 0.1
    assert ctr.predict("a", "q", model_ctr=0.1) == pytest.approx((5 + 10 * item) / (10 + 10))
    assert ctr.predict("a", "other", model_ctr=0.1) == pytest.approx(item)  # another query: the item's record


def test_clicks_low_on_the_page_count_for_more():
    curve = [1.0, 0.5, 0.25]
    top, low = DebiasedCtr(curve, PRIOR), DebiasedCtr(curve, PRIOR)
    for n in range(20):
        top.observe("a", "q", 0, clicked=n % 4 == 0)
        low.observe("a", "q", 2, clicked=n % 4 == 0)  # the same clicks where a quarter as many look
    assert low.predict("a", "q") > top.predict("a", "q")
    assert top.examined(99) == 0.25 and top.examined(-1) == 1.0


def test_counts_baseline_ignores_position_and_the_model():
    counts = CountsCtr(PRIOR)
    for n in range(20):
        counts.observe("a", "q", 5, clicked=n % 4 == 0)
    assert counts.predict("a", "q", model_ctr=0.9) == counts.predict("a", "q2")
    overall = (5 + 10 * 0.05) / (20 + 10)
    assert counts.predict("a", "q") == pytest.approx((5 + 10 * overall) / (20 + 10))
    assert counts.predict("unseen", "q") == pytest.approx(overall)  # new ads: the CTR of all ads so far


def test_examination_from_position_biases():
    curve = examination_from_position_bias([0.5, 0.5 + math.log(0.5), -50.0, 2.0])
    assert curve == pytest.approx([1.0, 0.5, 0.01, 1.0])
    assert examination_from_position_bias([]) == [1.0]


def test_click_model_ctr_moves_relevance_to_the_top_slot():
    assert click_model_ctr(0.5, 0.0) == pytest.approx(0.5)
    assert click_model_ctr(0.5, math.log(3)) == pytest.approx(0.75)
    assert click_model_ctr(0.0, 1.0) is None and click_model_ctr(1.0, 0.0) is None  # unknown to the model


def test_flat_ctr_ranks_by_bid():
    flat = FlatCtr()
    flat.observe("a", "q", 0, True)
    assert flat.predict("a", "q", 0.01) == 1.0


def test_bad_priors_are_refused():
    for strength, mean in ((0.0, 0.1), (1.0, 0.0), (1.0, 1.0)):
        with pytest.raises(ValueError):
            CtrPrior(strength, mean)


def test_page_context_is_the_normalised_query_or_rec():
    assert page_context("  Cordless   DRILL ") == "cordless drill"
    assert page_context(None) == page_context("") == page_context("   ") == "rec"


def test_ad_counts_keep_the_most_recently_counted_within_capacity():
    counts = AdClickCounts(capacity=4)
    counts.add("a", "q", 1.0, 1.0)
    counts.add("b", "q", 0.5, 0.0)
    assert counts.counts == {("a", "q"): (1.0, 1.0), ("a", ITEM_LEVEL): (1.0, 1.0),
                             ("b", "q"): (0.0, 0.5), ("b", ITEM_LEVEL): (0.0, 0.5)}
    counts.mark()
    counts.add("a", "q", 1.0, 0.0)  # a is the most recent now: b goes first
    counts.add("c", "q", 1.0, 1.0)  # 6 keys: the oldest go, down to 9/10 of the capacity
    assert list(counts.counts) == [("a", ITEM_LEVEL), ("c", "q"), ("c", ITEM_LEVEL)]
    assert counts.counts[("a", ITEM_LEVEL)] == (1.0, 2.0)
    assert counts.evicted == {("b", "q"), ("b", ITEM_LEVEL), ("a", "q")}
    assert counts.changed == {("a", ITEM_LEVEL), ("c", "q"), ("c", ITEM_LEVEL)}  # a's pair is gone, not changed
    counts.add("b", "q", 1.0, 0.0)  # back: no longer dropped, and the oldest go again
    assert ("b", "q") not in counts.evicted and ("a", ITEM_LEVEL) in counts.evicted
    assert len(counts) == 3
    with pytest.raises(ValueError):
        AdClickCounts(capacity=1)


def test_a_version_of_counts_applies_over_a_copy():
    held = AdClickCounts()
    held.add("a", "q", 1.0, 1.0)
    moved = held.replaced([["b", "q"]], [[2.0, 3.0]], evicted=[["a", "q"]])
    assert moved.counts == {("a", ITEM_LEVEL): (1.0, 1.0), ("b", "q"): (2.0, 3.0)}
    assert len(held) == 2 and ("a", "q") in held.counts  # the old one is left as it was
    assert held.replaced([["b", "q"]], [[2.0, 3.0]], full=True).counts == {("b", "q"): (2.0, 3.0)}
    assert held.replaced([], []) is held  # nothing changed: shared, not copied
    assert held.replaced([], [], full=True).counts == {}


def test_debiased_ctr_predicts_from_its_counts():
    ctr = DebiasedCtr([1.0, 0.5], PRIOR)
    ctr.observe("a", "q", 1, clicked=True)
    assert ctr.counts.counts[("a", "q")] == (1.0, 0.5)
    item = (1 + 10 * 0.2) / (0.5 + 10)  # one click in half an examination, over the model's 0.2
    assert ctr.predict("a", "q", 0.2) == pytest.approx((1 + 10 * item) / (0.5 + 10))
