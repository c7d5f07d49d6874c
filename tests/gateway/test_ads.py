"""Sponsored products at the gateway: the campaign routes, sponsored slots in search and
recommendations (floor, targeting, budget, GSP price, tokens), and the cache keeping tokens per page."""
from __future__ import annotations

import gc
import math
import random
import time

import pytest
import torch

from app.gateway.ads import SponsoredSlots, page_relevance, score_cutoff
from app.gateway.app import init_app
from app.gateway.keys import ADS, METRICS, SERVING
from app.gateway.read_model import ReadModel
from app.settings import Settings
from models.ads.auction import AdWinner, page_order
from models.ads.campaigns import Campaign
from models.ads.ctr import AdClickCounts, page_context
from models.ads.pacing import DAY_S, day_start
from models.errors import ValidationError
from models.online.click_serving import ServingClickModel
from tables import ad_spend, campaigns, item_stats
from tables.wire.ad_tokens import verify_token
from tables.wire.updates import signing_key
from tests.gateway.conftest import put

KEY = "k" * 40


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings().replace(max_event_bytes=1024, max_request_bytes=16 * 1024, max_batch_events=50, state_dir=tmp_path,
                    model_poll_s=0.05, search_dense=False, model_signing_key=KEY)


def shop(read_model: ReadModel) -> None:
    put(read_model, "d1", "cordless drill", "tools")
    put(read_model, "d2", "cordless drill", "tools")
    put(read_model, "d3", "cordless drill", "tools")
    put(read_model, "d4", "cordless drill", "tools")
    put(read_model, "x1", "drill bit case", "tools")  # a drill candidate, far less relevant to "cordless drill"
    put(read_model, "h1", "garden hose", "garden")


def campaign(read_model: ReadModel, cid: str, item: str, bid: float, budget: float = 100.0, **extra) -> Campaign:
    c = Campaign(cid, item, bid, budget, **extra)
    read_model.apply(campaigns.NAME, cid, c.to_dict())
    return c


def spend(read_model: ReadModel, cid: str, amount: float, day: float | None = None) -> None:
    day = day_start(time.time()) if day is None else day
    read_model.apply(ad_spend.NAME, cid, {"day": day, "spend": amount, "clicks": 3, "refused": 0, "src": {"0": 7}})


async def page(client, path: str) -> list[dict]:
    r = await client.get(path)
    assert r.status == 200, await r.text()
    return (await r.json())["items"]


def ads_of(items: list[dict]) -> list[tuple[int, str, str]]:
    return [(n, i["item_id"], i["campaign_id"]) for n, i in enumerate(items) if i.get("sponsored")]


# ---- campaign routes -----------------------------------------------------------------------

async def test_post_campaigns_takes_one_or_a_list_and_refuses_bad_ones(client, sink):
    one = {"campaign_id": "c1", "item_id": "d1", "bid_per_click": 1.5, "daily_budget": 20, "keywords": ["drill"]}
    r = await client.post("/v1/campaigns", json=one)
    assert r.status == 202 and (await r.json())["accepted"] == 1
    r = await client.post("/v1/campaigns", json=[one, {**one, "campaign_id": "c2"}])
    assert r.status == 202
    assert [c.campaign_id for c in sink.campaigns] == ["c1", "c1", "c2"] and sink.campaigns[0].keywords == ("drill",)

    r = await client.post("/v1/campaigns", json=[one, {**one, "bid_per_click": 0}, {**one, "colour": "red"}])
    assert r.status == 400
    invalid = (await r.json())["invalid"]
    assert [i["index"] for i in invalid] == [1, 2] and "bid_per_click" in invalid[0]["reason"]
    assert len(sink.campaigns) == 3  # all or nothing
    r = await client.post("/v1/campaigns", data=b"{}", headers={"Content-Type": "text/plain"})
    assert r.status == 415
    r = await client.post("/v1/campaigns", json=[one] * 51)
    assert r.status == 413


async def test_get_campaign_shows_todays_spend_and_budget_left(client, read_model):
    campaign(read_model, "c1", "d1", 2.0, budget=10.0)
    r = await client.get("/v1/campaigns/c1")
    body = await r.json()
    assert body["campaign"]["item_id"] == "d1" and body["today"]["spend"] == 0 and body["today"]["budget_left"] == 10
    spend(read_model, "c1", 4.0)
    today = (await (await client.get("/v1/campaigns/c1")).json())["today"]
    assert today["spend"] == 4.0 and today["clicks"] == 3 and today["budget_left"] == 6.0
    spend(read_model, "c1", 9.0, day=day_start(time.time()) - DAY_S)  # yesterday's record: a new day starts at 0
    assert (await (await client.get("/v1/campaigns/c1")).json())["today"]["spend"] == 0
    assert (await client.get("/v1/campaigns/nope")).status == 404


# ---- sponsored slots -----------------------------------------------------------------------

async def test_sponsored_results_carry_a_verifiable_token_priced_by_second_price(client, read_model, settings):
    shop(read_model)
    campaign(read_model, "cA", "d3", 5.0)
    campaign(read_model, "cB", "d2", 3.0)
    items = await page(client, "/v1/search?q=cordless+drill&k=5")
    # Same pCTR (the prior: no click model yet), so the higher bid takes the first slot.
    assert ads_of(items) == [(0, "d3", "cA"), (4, "d2", "cB")]
    assert len(items) == 5 and len({i["item_id"] for i in items}) == 5  # each item once
    key = signing_key(settings)
    first = verify_token(key, items[0]["ad_token"], "d3", time.time())
    assert first.campaign_id == "cA" and first.daily_budget == 100.0
    assert first.price == pytest.approx(3.0)  # the runner-up's pCTR x bid over its own pCTR, <= its bid 5
    last = verify_token(key, items[4]["ad_token"], "d2", time.time())
    assert last.price == pytest.approx(2.0)  # <= its bid 3; no runner-up: min_expected_revenue / pCTR = 0.1 / 0.05
    with pytest.raises(ValidationError):
        verify_token(key, items[0]["ad_token"], "d2", time.time())  # not for another item
    organic = [i for i in items if not i.get("sponsored")]
    assert all("ad_token" not in i and "campaign_id" not in i for i in organic)
    metrics = await (await client.get("/metrics")).text()
    assert 'streamrank_ad_impressions_total{campaign="cA"} 1.0' in metrics


async def test_the_relevance_floor_and_targeting_keep_unfitting_ads_off(client, read_model):
    shop(read_model)
    campaign(read_model, "hose", "h1", 50.0)  # not a candidate for the query at all
    campaign(read_model, "bits", "x1", 50.0)  # a candidate, but far below the best match
    campaign(read_model, "garden", "d1", 50.0, categories=("garden",))  # targets another category
    campaign(read_model, "words", "d2", 50.0, keywords=("hammer drill",))  # targets another query
    campaign(read_model, "later", "d3", 50.0, start_ts=time.time() + 3600)  # not started
    items = await page(client, "/v1/search?q=cordless+drill&k=5")
    assert "x1" in [i["item_id"] for i in items] and ads_of(items) == []
    campaign(read_model, "fits", "d1", 3.0, categories=("tools",), keywords=("drill",))
    assert ads_of(await page(client, "/v1/search?q=cordless+drill&k=5")) == [(0, "d1", "fits")]


async def test_an_exhausted_budget_shows_no_ad(client, read_model):
    shop(read_model)
    campaign(read_model, "c1", "d1", 5.0, budget=10.0)
    spend(read_model, "c1", 10.0)
    assert ads_of(await page(client, "/v1/search?q=cordless+drill")) == []
    spend(read_model, "c1", 10.0, day=day_start(time.time()) - DAY_S)  # that was yesterday's
    assert ads_of(await page(client, "/v1/search?q=cordless+drill")) == [(0, "d1", "c1")]


def trending(read_model: ReadModel) -> None:
    for item, n in (("t1", 5), ("t2", 4), ("t3", 1)):
        s = item_stats.empty()
        for k in range(n):
            s = item_stats.apply_event(s, "purchase", 10.0, 0, k, 86400.0, 3600.0)
        read_model.apply(item_stats.NAME, item, s)


async def test_the_cache_keeps_the_organic_list_but_never_a_token(client, read_model, monkeypatch):
    trending(read_model)
    campaign(read_model, "c1", "t1", 5.0)
    clock = iter(range(10))
    monkeypatch.setattr("app.gateway.handlers.ranking.time.time", lambda: 1.7e9 + next(clock))
    cache = client.app[SERVING].cache
    first = await page(client, "/v1/recommend?k=3")  # two anonymous shoppers: one cache key
    second = await page(client, "/v1/recommend?k=3")
    assert cache.hits >= 1
    assert ads_of(first) == ads_of(second) == [(0, "t1", "c1")]
    assert first[0]["ad_token"] != second[0]["ad_token"]  # each page's own, signed when served


async def test_ads_off_means_no_sponsored_results(aiohttp_client, settings, sink):
    read_model = ReadModel(settings)
    client = await aiohttp_client(init_app(settings.replace(ads_enabled=False), sink=sink,
                                           read_model=read_model, follow_changelogs=False))
    shop(read_model)
    trending(read_model)
    campaign(read_model, "c1", "d1", 5.0)
    campaign(read_model, "c2", "t1", 5.0)
    assert ads_of(await page(client, "/v1/search?q=cordless+drill")) == []
    assert ads_of(await page(client, "/v1/recommend?k=3")) == []
    assert ads_seconds(client) == 0.0  # no time is counted on ads that are off


def ads_seconds(client) -> float:
    return client.app[METRICS].registry.get_sample_value("streamrank_gateway_ads_seconds_total")


async def test_the_time_answers_spend_on_ads_is_counted(client, read_model):
    shop(read_model)
    assert ads_seconds(client) == 0.0
    await page(client, "/v1/search?q=cordless+drill")  # no campaign yet: no auction
    assert ads_seconds(client) == 0.0
    campaign(read_model, "c1", "d1", 5.0)
    assert ads_of(await page(client, "/v1/search?q=cordless+drill")) == [(0, "d1", "c1")]
    with_ad = ads_seconds(client)
    assert with_ad > 0.0
    await page(client, "/v1/search?q=hammer")  # an auction that no ad wins counts too
    assert ads_seconds(client) > with_ad


# ---- the auction's inputs --------------------------------------------------------------------

def click_model(ad_counts: AdClickCounts | None = None) -> ServingClickModel:
    """A serving click model that knows d2 is clicked far more than d3 at the top slot."""
    logit = {"d2": 0.0, "d3": math.log(0.02 / 0.98)}
    return ServingClickModel(logit, {"d2": (10.0, 5.0), "d3": (10.0, 0.0)}, torch.zeros(2), 0.0, [0.0, -1.0],
                             ad_counts)


def test_pctr_from_the_click_model_outranks_a_higher_bid(settings):
    read_model = ReadModel(settings)
    slots = SponsoredSlots(settings, read_model, click_model)
    campaign(read_model, "high-bid", "d3", 6.0)
    campaign(read_model, "clicked", "d2", 1.0)
    winners = slots.auction([("d2", 1.0), ("d3", 1.0)], "drill", None, tuple, time.time())
    assert [w.campaign_id for w in winners] == ["clicked", "high-bid"]
    assert winners[0].price <= winners[0].bid and winners[0].pctr == pytest.approx(0.5)
    # Without the model both have the prior's pCTR (0.05): the low bid no longer earns its slot.
    assert [w.campaign_id for w in SponsoredSlots(settings, read_model, lambda: None).auction(
        [("d2", 1.0), ("d3", 1.0)], "drill", None, tuple, time.time())] == ["high-bid"]


def test_pctr_follows_the_items_clicks_on_pages_about_the_query(settings):
    """d3 is clicked on 'saw' pages and not on 'drill' ones (the learner's counts, shipped with
    its version): on 'saw' it outranks d2, on 'drill' its pCTR x bid is under the floor."""
    read_model = ReadModel(settings)
    counts = AdClickCounts()
    for n in range(40):
        counts.add("d3", page_context("Saw"), 1.0, float(n % 10 < 9))
        counts.add("d3", page_context("drill"), 1.0, 0.0)
    slots = SponsoredSlots(settings, read_model, lambda: click_model(counts))
    campaign(read_model, "high-bid", "d3", 1.2)
    campaign(read_model, "clicked", "d2", 1.0)
    page = [("d2", 1.0), ("d3", 1.0)]
    assert [w.campaign_id for w in slots.auction(page, "saw", "saw", tuple, time.time())] == ["high-bid", "clicked"]
    assert [w.campaign_id for w in slots.auction(page, "drill", "drill", tuple, time.time())] == ["clicked"]


def test_page_relevance_holds_for_logits():
    assert page_relevance([("a", 2.0), ("b", 1.0)]) == {"a": 1.0, "b": 0.5}
    assert page_relevance([("a", 1.0), ("b", -1.0), ("c", -3.0)]) == {"a": 1.0, "b": 0.5, "c": 0.0}


def test_page_relevance_of_some_candidates_is_still_over_the_whole_page():
    page = [("a", 1.0), ("b", -1.0), ("c", -3.0)]
    assert page_relevance(page, [("b", -1.0)]) == {"b": 0.5}  # the page's range, not b's alone
    assert page_relevance([("a", 4.0), ("b", 1.0)], [("b", 1.0)]) == {"b": 0.25}
    assert page_relevance([("a", 0.0), ("b", 0.0)], [("b", 0.0)]) == {}  # no score above 0: nothing fits


async def test_a_deleted_campaign_leaves_the_page(client, read_model):
    shop(read_model)
    campaign(read_model, "c1", "d1", 5.0)
    assert ads_of(await page(client, "/v1/search?q=cordless+drill")) == [(0, "d1", "c1")]
    read_model.apply(campaigns.NAME, "c1", None)  # a tombstone on the changelog
    assert ads_of(await page(client, "/v1/search?q=cordless+drill")) == []
    assert (await client.get("/v1/campaigns/c1")).status == 404
    assert "d1" not in client.server.app[ADS].by_item  # campaigns come and go: nothing is left per item


async def test_the_storefront_sends_the_token_with_the_click(client):
    script = await (await client.get("/pages/shop.js")).text()
    assert "ad_token: item.ad_token" in script


def test_the_reserve_and_least_expected_revenue_are_the_gateways_settings(settings):
    """The auction runs with the shop's reserve and least pCTR x bid: a bid under the reserve
    never runs, nor one under the least expected revenue, and a lone winner pays the higher of
    the two floors."""
    read_model = ReadModel(settings)
    campaign(read_model, "c1", "d1", 3.0)
    campaign(read_model, "c2", "d2", 2.5)  # at the prior's pCTR (0.05): 0.125 expected per impression

    def winners(**knobs):  # type: ignore[no-untyped-def]
        slots = SponsoredSlots(settings.replace(**knobs), read_model, lambda: None)
        return {w.campaign_id: w.price for w in slots.auction([("d1", 1.0), ("d2", 1.0)], "drill", None, tuple,
                                                                time.time())}

    assert set(winners()) == {"c1", "c2"}
    assert winners(ads_reserve=2.8) == {"c1": pytest.approx(2.8)}  # over 0.1 / 0.05 = 2.0
    assert winners(ads_min_expected_revenue=0.13) == {"c1": pytest.approx(2.6)}  # 0.13 / 0.05


@pytest.mark.parametrize("floor", [0.0, 0.5, 0.8, 0.95, 1.0])
def test_the_score_cutoff_drops_no_candidate_the_relevance_floor_keeps(floor):
    """The auction weighs only candidates scored at or above `score_cutoff`: every one that
    `page_relevance` puts at or over the floor must be among them, on pages of BM25-like scores,
    of logits below zero, of ties and of one result; and most others are left out."""
    rng = random.Random(int(floor * 100))
    pages = [[(f"i{n}", rng.uniform(0.0, 30.0)) for n in range(12)] for _ in range(300)]
    pages += [[(f"i{n}", rng.uniform(-8.0, 3.0)) for n in range(12)] for _ in range(300)]
    pages += [[("a", 0.1 + 0.2), ("b", 0.3), ("c", 0.1)], [("a", -1.5), ("b", -1.5)], [("a", 2.0)], [("a", 0.0), ("b", 0.0)]]
    left_out = 0
    for page in pages:
        cutoff = score_cutoff(page, floor)
        kept = {item for item, r in page_relevance(page).items() if r >= floor}
        assert kept <= {item for item, s in page if s >= cutoff}, (page, floor, cutoff)
        left_out += sum(s < cutoff for _, s in page)
    assert floor == 0.0 or left_out > len(pages) * 12 * floor / 2  # it does cut: half the share under the floor at least
    assert score_cutoff([], floor) == math.inf


async def test_a_cached_lists_kept_ads_follow_campaigns_and_click_model_versions(client, read_model):
    """The ads a gateway keeps for a cached recommendation list are worked out again when a
    campaign changes or a new click model serves: a kept plan must never hide a new bid or
    keep an ad the new model says cannot pay its way."""
    trending(read_model)
    campaign(read_model, "c1", "t1", 5.0)
    for _ in range(3):  # a miss, then the cache's list twice: its ads kept after the first
        assert ads_of(await page(client, "/v1/recommend?k=3")) == [(0, "t1", "c1")]
    assert len(client.app[ADS]._plans) == 1
    campaign(read_model, "c2", "t1", 50.0)  # a higher bid for the same item
    assert ads_of(await page(client, "/v1/recommend?k=3")) == [(0, "t1", "c2")]
    assert ads_of(await page(client, "/v1/recommend?k=3")) == [(0, "t1", "c2")]
    # A version that has seen t1 shown a thousand times and never clicked: pCTR x bid under the least.
    client.app[SERVING].online_click = ServingClickModel({"t1": -20.0}, {"t1": (1000.0, 0.0)}, torch.zeros(2), -10.0, [0.0])
    assert ads_of(await page(client, "/v1/recommend?k=3")) == []


def test_kept_plans_and_pctrs_are_plain_data_the_cyclic_gc_stops_tracking(settings):
    """What sponsored slots keep per cached list and per (context, item) must not add objects a
    full collection walks (app/gateway/gc_freeze.py): tuples and dicts of strings and numbers."""
    read_model = ReadModel(settings)
    model = click_model()
    slots = SponsoredSlots(settings, read_model, lambda: model)
    campaign(read_model, "clicked", "d2", 1.0)
    source = (("d2", 1.0), ("d3", 0.9))
    assert [(item, campaign_id) for item, _, campaign_id, _ in slots.page(list(source), 2, "rec", None, tuple,
                                                                          time.time(), source)] == [("d2", "clicked"),
                                                                                                    ("d3", None)]
    for _ in range(4):  # a collection untracks a tuple whose items were untracked when it looked: inner ones first
        gc.collect()
    assert slots._plans and not any(map(gc.is_tracked, slots._plans.values()))
    # One dict per version holds a dict per context, of floats: those the GC never tracks.
    assert model._ad_ctr_memo and not any(map(gc.is_tracked, model._ad_ctr_memo.values()))


def test_a_cached_lists_kept_page_is_the_page_its_auction_lays_out(settings):
    """`page` keeps a cached list's page for answers all of whose ads enter: on every page,
    asked again and again, it must be the page laid out from `auction`'s winners, and when some
    ads sit out (paced, stopped), the page of those that enter; pacing draws for the one campaign
    ahead of its spread alone."""
    rng = random.Random(5)
    read_model = ReadModel(settings)
    items = [f"i{n}" for n in range(60)]
    now = time.time()
    for n, item in enumerate(rng.sample(items, 30)):
        campaign(read_model, f"c{n}", item, round(rng.uniform(0.5, 6.0), 2), budget=100.0,
                 **({"stop_ts": now - 1.0} if n % 9 == 8 else {}))
    spend(read_model, "c3", 99.0)  # far ahead of an even spread: paced by the draw
    draws = []

    def draw() -> float:
        draws.append(0.0 if len(draws) % 2 else 0.999)  # in, then out, in turn
        return draws[-1]

    slots = SponsoredSlots(settings, read_model, lambda: None, draw=draw)
    c3 = read_model.tables[campaigns.NAME]["c3"]  # can pay its way (at the prior's pCTR) wherever its item is
    assert c3["bid_per_click"] * slots.prior.mean >= slots.config.min_expected_revenue
    lists = [tuple((item, rng.uniform(0.85, 1.0)) for item in rng.sample(items, 12)) for _ in range(200)]
    laid_out = sponsored = 0
    for answer in range(3):
        for source in lists:
            before = len(draws)
            got = slots.page(list(source), 10, "rec", None, tuple, now, source)
            drew = len(draws) - before
            assert drew == sum(item == c3["item_id"] for item, _ in source)
            del draws[before:]  # the same draws again, for the auction this page must equal
            winners = slots.auction(list(source), "rec", None, tuple, now)
            want = tuple((w.item_id, dict(source)[w.item_id], w.campaign_id, w.price) if isinstance(w, AdWinner)
                         else (w, dict(source)[w], None, None) for w in page_order([i for i, _ in source], winners, 10))
            assert got == (want if winners else ()), (answer, source)
            laid_out += bool(got)
            sponsored += sum(c is not None for _, _, c, _ in got)
    assert laid_out > 100 and sponsored > laid_out  # most lists carry an ad, many two
    assert sum(bool(plan[3]) for plan in slots._plans.values()) > 50  # and most kept their page


async def test_a_token_carries_the_campaigns_budget_now(client, read_model, settings):
    """A gateway keeps each campaign's token head (ids and budget): a new budget must reach the
    next page's token, which the worker caps spend with."""
    shop(read_model)
    campaign(read_model, "c1", "d1", 5.0, budget=100.0)
    first = (await page(client, "/v1/search?q=cordless+drill"))[0]
    campaign(read_model, "c1", "d1", 5.0, budget=40.0)
    second = (await page(client, "/v1/search?q=cordless+drill"))[0]
    assert first["campaign_id"] == second["campaign_id"] == "c1"
    key = signing_key(settings)
    assert [verify_token(key, i["ad_token"], "d1", time.time()).daily_budget for i in (first, second)] == [100.0, 40.0]


async def test_a_cached_list_known_to_hold_no_ad_is_asked_again_when_bids_or_the_click_model_change(client, read_model):
    """A cached list whose kept plan has no payable ad skips the auction (`holds_no_ad`), but only
    while the campaigns and the click model that made the plan serve: a new bid or a model that
    finds the item clicked must bring the ad back on the very next answer."""
    trending(read_model)
    campaign(read_model, "low", "t1", 1.0)  # the prior's pCTR 0.05 x 1.0: under the least expected revenue
    slots = client.app[ADS]
    for _ in range(3):
        assert ads_of(await page(client, "/v1/recommend?k=3")) == []
    assert len(slots._plans) == 1 and slots.holds_no_ad(next(iter(slots._plans.values()))[0])
    # A version that has seen t1 clicked half the time: 0.5 x 1.0 pays its way.
    client.app[SERVING].online_click = ServingClickModel({"t1": 0.0}, {"t1": (10.0, 5.0)}, torch.zeros(2), 0.0,
                                                         [0.0, -1.0])
    assert ads_of(await page(client, "/v1/recommend?k=3")) == [(0, "t1", "low")]
    client.app[SERVING].online_click = None  # back to the prior: no ad, known again after one answer
    assert ads_of(await page(client, "/v1/recommend?k=3")) == []
    assert slots.holds_no_ad(next(iter(slots._plans.values()))[0])
    assert ads_of(await page(client, "/v1/recommend?k=3")) == []
    campaign(read_model, "high", "t1", 5.0)
    assert ads_of(await page(client, "/v1/recommend?k=3")) == [(0, "t1", "high")]
