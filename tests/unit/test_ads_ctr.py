"""Ad pCTR: the click model's prior for new campaigns, debiasing by examination, the counts baseline."""
import math

import pytest

from models.ads.ctr import (
    CountsCtr,
    CtrPrior,
    DebiasedCtr,
    FlatCtr,
    click_model_ctr,
    examination_from_position_bias,
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
