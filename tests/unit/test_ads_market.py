"""The ad market: candidates from a page's scores, charging after clicks, the one-click overspend bound."""
import numpy as np
import pytest

from models.ads.auction import AuctionConfig, PageEntry, merge_page
from models.ads.campaigns import Campaign
from models.ads.ctr import CountsCtr, DebiasedCtr, FlatCtr
from models.ads.market import AdMarket
from models.ads.pacing import DAY_S, PacingConfig

DAY = 1_767_225_600.0
CONFIG = AuctionConfig(relevance_floor=0.5, reserve=0.05, min_expected_revenue=0.0)
ALWAYS = PacingConfig(lead=1.0)  # never throttled: the tests below are about charging


def always() -> float:
    return 0.0


def test_only_candidates_above_the_floor_that_target_the_page_and_run_enter():
    campaigns = [Campaign("fits", "a", 1.0, 10.0), Campaign("low", "b", 1.0, 10.0),
                 Campaign("kw", "a", 1.0, 10.0, keywords=("saw",)), Campaign("over", "a", 1.0, 10.0, stop_ts=DAY),
                 Campaign("absent", "zz", 1.0, 10.0)]
    market = AdMarket(campaigns, FlatCtr(), CONFIG, ALWAYS)
    found = market.candidates({"a": 10.0, "b": 4.0}, "drill", DAY + 60, always, query="drill")
    assert [(c.campaign_id, c.relevance) for c in found] == [("fits", 1.0)]


def test_the_model_ctr_is_asked_once_per_page_for_the_entered_items():
    asked = []

    def model_ctr(items):
        asked.append(list(items))
        return [0.4 for _ in items]

    market = AdMarket([Campaign("c", "a", 1.0, 10.0)], DebiasedCtr([1.0]), CONFIG, ALWAYS)
    (cand,) = market.candidates({"a": 1.0}, "q", DAY, always, model_ctr=model_ctr)
    assert asked == [["a"]] and cand.pctr == pytest.approx(0.4)
    assert market.candidates({"b": 1.0}, "q", DAY, always, model_ctr=model_ctr) == [] and asked == [["a"]]


def test_feedback_learns_every_entry_and_charges_ad_clicks_at_the_second_price():
    market = AdMarket([Campaign("c", "a", 1.0, 10.0), Campaign("d", "b", 0.5, 10.0)], CountsCtr(), CONFIG, ALWAYS)
    winners = market.auction({"a": 1.0, "b": 1.0}, "q", DAY, always)
    page = merge_page(["o1", "o2", "o3", "o4", "o5"], winners, k=6)
    clicked = [e.item_id in ("a", "o1") for e in page]
    charged = market.feedback(page, clicked, "q", DAY)
    assert charged == pytest.approx(0.5) == market.ledger.spent("c", DAY)  # d's bid prices c
    assert market.ledger.spent("d", DAY) == 0.0
    assert market.ctr.total == [2.0, 6.0]  # every entry shown teaches the pCTR, organic ones too
    assert market.ctr.item["o1"] == [1.0, 1.0] and market.ctr.item["b"] == [0.0, 1.0]


def test_spend_resets_each_utc_day_and_overspend_stays_under_one_click():
    campaign = Campaign("c", "a", 2.0, 5.0)
    market = AdMarket([campaign], FlatCtr(), CONFIG, ALWAYS)
    page = [PageEntry("a", True, "c", 2.0)]
    for n in range(10):
        market.feedback(page, [True], "q", DAY + n)
    assert market.ledger.spent("c", DAY) == pytest.approx(6.0)  # 3 clicks charged: the third crossed 5
    assert market.overspend() == pytest.approx(1.0) and market.overspend() < campaign.bid_per_click
    market.feedback(page, [True], "q", DAY + DAY_S)
    assert market.ledger.spent("c", DAY + DAY_S) == 2.0
    assert market.spend(since=DAY + DAY_S) == 2.0 and market.overspend(since=DAY + DAY_S) == 0.0


def test_a_spent_campaign_leaves_the_auction_until_the_next_day():
    market = AdMarket([Campaign("c", "a", 1.0, 1.0)], FlatCtr(), CONFIG, PacingConfig())
    market.feedback([PageEntry("a", True, "c", 1.0)], [True], "q", DAY)
    assert market.auction({"a": 1.0}, "q", DAY + 10, always) == []
    assert len(market.auction({"a": 1.0}, "q", DAY + DAY_S, always)) == 1


def test_pacing_throttles_early_spenders():
    market = AdMarket([Campaign("c", "a", 1.0, 10.0)], FlatCtr(), CONFIG, PacingConfig(lead=0.05, ramp=0.1))
    market.feedback([PageEntry("a", True, "c", 1.0)], [True], "q", DAY)  # 10% of the budget at midnight
    rng = np.random.default_rng(1)
    early = sum(bool(market.auction({"a": 1.0}, "q", DAY + 60, rng.random)) for _ in range(100))
    late = sum(bool(market.auction({"a": 1.0}, "q", DAY + DAY_S / 2, rng.random)) for _ in range(100))
    assert early < 70 and late == 100
