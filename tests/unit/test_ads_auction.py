"""The sponsored-slot auction: ranking by pCTR x bid, second prices, reserves, the relevance floor, the page."""
import pytest

from models.ads.auction import (
    AdCandidate,
    AdWinner,
    AuctionConfig,
    PageEntry,
    merge_page,
    rank_ads,
    relative_relevance,
    run_auction,
)

OPEN = AuctionConfig(slots=(0, 4), max_ads=2, reserve=0.05, relevance_floor=0.0, min_expected_revenue=0.0)


def ad(cid: str, bid: float, pctr: float, relevance: float = 1.0, item: str | None = None) -> AdCandidate:
    return AdCandidate(cid, item or f"i-{cid}", bid, pctr, relevance)


def test_ranks_by_expected_revenue_not_by_bid():
    ranked = rank_ads([ad("high-bid", 2.0, 0.05), ad("clicked", 0.5, 0.4), ad("mid", 1.0, 0.15)])
    assert [c.campaign_id for c in ranked] == ["clicked", "mid", "high-bid"]  # 0.2, 0.15, 0.1


def test_second_price_is_the_least_bid_that_keeps_the_slot():
    winners = run_auction([ad("a", 0.5, 0.4), ad("b", 1.0, 0.15), ad("c", 2.0, 0.05)], OPEN)
    assert [(w.campaign_id, w.position) for w in winners] == [("a", 0), ("b", 4)]
    assert winners[0].price == pytest.approx(0.15 * 1.0 / 0.4)  # b's pCTR x bid over a's pCTR
    assert winners[1].price == pytest.approx(0.05 * 2.0 / 0.15)  # c, the first loser, prices b
    assert all(w.price <= w.bid for w in winners)


def test_last_winner_without_runner_up_pays_the_reserve():
    winners = run_auction([ad("a", 0.5, 0.4), ad("b", 1.0, 0.15)], OPEN)
    assert winners[1].price == pytest.approx(OPEN.reserve)


def test_price_never_exceeds_the_bid_nor_falls_under_the_reserve():
    (only,) = run_auction([ad("a", 0.06, 0.9)], OPEN)
    assert only.price == pytest.approx(0.05)
    low = run_auction([ad("a", 1.0, 0.5), ad("b", 1.0, 0.001)], OPEN)
    assert low[0].price == pytest.approx(0.05)  # b's 0.001 / 0.5 is under the reserve
    tie = run_auction([ad("a", 1.0, 0.2), ad("b", 1.0, 0.2)], OPEN)
    assert tie[0].price == pytest.approx(1.0)  # an equal rival: the winner pays its own bid


def test_ties_break_on_bid_then_campaign_id():
    ranked = rank_ads([ad("b", 1.0, 0.2), ad("a", 1.0, 0.2), ad("c", 2.0, 0.1)])
    assert [c.campaign_id for c in ranked] == ["c", "a", "b"]


def test_bids_under_the_reserve_never_run():
    winners = run_auction([ad("cheap", 0.04, 0.9), ad("ok", 0.05, 0.1)], OPEN)
    assert [w.campaign_id for w in winners] == ["ok"]


def test_relevance_floor_keeps_unfitting_ads_off_the_page():
    config = AuctionConfig(relevance_floor=0.6, min_expected_revenue=0.0)
    winners = run_auction([ad("fits", 0.5, 0.2, relevance=0.6), ad("rich", 5.0, 0.9, relevance=0.59)], config)
    assert [w.campaign_id for w in winners] == ["fits"]


def test_relevance_is_relative_to_the_best_candidate_and_absent_items_have_none():
    assert relative_relevance({"a": 8.0, "b": 4.0, "c": -1.0}) == {"a": 1.0, "b": 0.5, "c": 0.0}
    assert relative_relevance({}) == {} == relative_relevance({"a": 0.0})


def test_min_expected_revenue_filters_and_floors_the_price():
    config = AuctionConfig(relevance_floor=0.0, reserve=0.05, min_expected_revenue=0.1)
    winners = run_auction([ad("good", 0.5, 0.4), ad("poor", 0.9, 0.1)], config)  # poor: 0.09 < 0.1
    assert [w.campaign_id for w in winners] == ["good"]
    assert winners[0].price == pytest.approx(0.1 / 0.4)


def test_squashing_exponent_moves_the_ranking_between_expected_revenue_and_bid():
    ads = [ad("high-bid", 2.0, 0.05), ad("clicked", 0.5, 0.4), ad("mid", 1.0, 0.15)]
    assert [c.campaign_id for c in rank_ads(ads, 1.0)] == ["clicked", "mid", "high-bid"]  # pCTR x bid
    assert [c.campaign_id for c in rank_ads(ads, 0.0)] == ["high-bid", "mid", "clicked"]  # bid alone
    # a = 0.5: sqrt(0.05) x 2 = 0.447 > sqrt(0.15) x 1 = 0.387 > sqrt(0.4) x 0.5 = 0.316
    assert [c.campaign_id for c in rank_ads(ads, 0.5)] == ["high-bid", "mid", "clicked"]
    assert [c.campaign_id for c in rank_ads(ads, 0.75)] == ["clicked", "mid", "high-bid"]  # 0.252, 0.241, 0.211


def test_squashed_second_price_keeps_the_rank_under_the_squashed_score():
    config = AuctionConfig(slots=(0, 4), max_ads=2, reserve=0.05, relevance_floor=0.0, min_expected_revenue=0.0,
                           pctr_exponent=0.5)
    first, second = run_auction([ad("a", 1.0, 0.4), ad("b", 1.0, 0.1), ad("c", 0.6, 0.1)], config)
    assert (first.campaign_id, second.campaign_id) == ("a", "b")
    assert first.price == pytest.approx(0.1 ** 0.5 * 1.0 / 0.4 ** 0.5)  # 0.5: b's sqrt(pCTR) x bid over a's
    assert second.price == pytest.approx(0.6)  # c has b's pCTR: b pays c's bid
    # at its price the winner ties its runner-up's squashed score: the least bid that keeps the rank
    assert 0.4 ** 0.5 * first.price == pytest.approx(0.1 ** 0.5 * 1.0)
    assert first.price > 0.1 * 1.0 / 0.4  # dearer than the unsquashed second price (0.25) for a likelier click


def test_squashing_leaves_the_reserves_in_true_expected_revenue():
    config = AuctionConfig(relevance_floor=0.0, reserve=0.05, min_expected_revenue=0.1, pctr_exponent=0.0)
    winners = run_auction([ad("rich", 5.0, 0.01), ad("good", 0.5, 0.4)], config)  # rich: 0.05 < 0.1
    assert [w.campaign_id for w in winners] == ["good"]
    assert winners[0].price == pytest.approx(0.1 / 0.4)  # the floor is still min_expected_revenue / pCTR


def test_one_campaign_per_item_and_at_most_max_ads():
    same_item = [ad("a", 1.0, 0.3, item="x"), ad("b", 0.9, 0.3, item="x"), ad("c", 0.5, 0.3)]
    assert [w.item_id for w in run_auction(same_item, OPEN)] == ["x", "i-c"]
    one = AuctionConfig(slots=(0, 4), max_ads=1, relevance_floor=0.0, min_expected_revenue=0.0)
    assert len(run_auction([ad("a", 1.0, 0.3), ad("c", 0.5, 0.3)], one)) == 1
    assert run_auction([], OPEN) == []


def test_bad_configs_are_refused():
    for bad in ({"slots": ()}, {"slots": (0, 0)}, {"slots": (-1,)}, {"reserve": -1.0}, {"relevance_floor": 1.5},
                {"max_ads": -1}, {"min_expected_revenue": -0.1}, {"pctr_exponent": -0.5},
                {"pctr_exponent": float("inf")}):
        with pytest.raises(ValueError):
            AuctionConfig(**bad)


def winner(item: str, position: int) -> AdWinner:
    return AdWinner(f"c-{item}", item, position, 1.0, 0.2, 0.5)


def test_merge_puts_ads_in_their_slots_and_organic_around_them():
    page = merge_page([f"o{i}" for i in range(10)], [winner("x", 0), winner("y", 4)], k=10)
    assert [e.item_id for e in page] == ["x", "o0", "o1", "o2", "y", "o3", "o4", "o5", "o6", "o7"]
    assert page[0] == PageEntry("x", True, "c-x", 0.5) and not page[1].sponsored


def test_an_advertised_organic_result_is_shown_once_as_the_ad():
    page = merge_page(["o0", "x", "o2", "o3"], [winner("x", 0)], k=4)
    assert [e.item_id for e in page] == ["x", "o0", "o2", "o3"]
    assert [e.sponsored for e in page] == [True, False, False, False]


def test_ads_close_up_behind_a_short_organic_list():
    page = merge_page(["o0", "o1"], [winner("x", 0), winner("y", 4)], k=10)
    assert [e.item_id for e in page] == ["x", "o0", "o1", "y"]
    assert [e.item_id for e in merge_page([], [winner("y", 4)], k=3)] == ["y"]


def test_ads_past_the_page_or_in_any_order_and_repeated_organic_results():
    organic = ["o0", "o1", "o0", "o2", "o3"]  # a result listed twice is shown once
    page = merge_page(organic, [winner("y", 2), winner("x", 0), winner("z", 9)], k=5)
    assert [e.item_id for e in page] == ["x", "o0", "y", "o1", "o2"]  # z's slot is past k=5
    assert [e.item_id for e in merge_page(organic, [winner("x", 0)], k=0)] == []
