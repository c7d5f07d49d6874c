"""`replay --ads` without Kafka: sponsored slots auctioned into local BM25 results, clicked like results."""
import argparse

import pytest

from app.jobs.replay import replay_homedepot, simulate_sessions
from app.search_sessions import CampaignPlan, SessionPlan, SessionSimulator, SponsoredSlots, synthetic_campaigns, training_queries
from app.session_rankers import LocalRanker
from app.settings import Settings
from models.ads.auction import AuctionConfig
from models.errors import DataError
from tests.unit.test_search_sessions import CALIB, DEV, catalog


def test_synthetic_campaigns_are_a_share_of_the_catalog_with_skewed_bids():
    items = [f"p{i}" for i in range(5000)]
    campaigns = synthetic_campaigns(items, CampaignPlan(share=0.2))
    assert 900 < len(campaigns) < 1100 and len({c.item_id for c in campaigns}) == len(campaigns)
    bids = sorted(c.bid_per_click for c in campaigns)
    assert bids[0] >= 0.05 and bids[-1] > 5 * bids[len(bids) // 2]  # a long right tail
    assert all(c.daily_budget >= c.bid_per_click for c in campaigns)
    assert synthetic_campaigns(items, CampaignPlan(share=0.2)) == campaigns  # seeded


async def test_sessions_with_ads_show_and_charge_sponsored_items():
    data = catalog()
    plan = SessionPlan(run="t", k=5)
    sim = SessionSimulator(data, training_queries(data, DEV, CALIB), plan)
    sent = []

    async def send(event):
        sent.append(event)

    async with LocalRanker(data) as ranker:
        ads = SponsoredSlots(synthetic_campaigns(data.items, CampaignPlan(share=0.5)), ranker.index, plan,
                             AuctionConfig(relevance_floor=0.3, min_expected_revenue=0.0))
        summary = await simulate_sessions(sim, ranker, send, sessions=60, ads=ads)
    tally = ads.tally.as_dict()
    assert summary.sessions == 60 == ads.tally.searches
    assert tally["ad_impressions"] > 0 and tally["ad_clicks"] > 0 and tally["revenue"] > 0
    assert summary.as_dict()["impressions"] == 300  # ads take result slots, never add to the page
    assert ads.market.spend() == pytest.approx(tally["revenue"], abs=0.01)


async def test_ads_need_the_local_ranker():
    args = argparse.Namespace(ads=True, ranker="gateway")
    with pytest.raises(DataError, match="--ranker local"):
        await replay_homedepot(Settings(), "unused.csv", args)
