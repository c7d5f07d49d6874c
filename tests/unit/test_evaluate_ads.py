"""`streamrank evaluate ads` on a tiny catalog: the JSON line's keys, and figures that make sense."""
import csv
import gzip
import json
from dataclasses import replace

import pytest

from app.cli import main
from app.jobs.evaluate_ads import AdsEvalPlan, evaluate_ads, organic_results
from app.search_sessions import CampaignPlan, SessionPlan, SessionSimulator
from models.ads.auction import AuctionConfig
from models.metrics import ndcg_at_k
from tests.unit.test_search_sessions import catalog

KEYS = {"revenue_per_1k", "ad_ctr", "ndcg@10", "budget_overspend"}
PLAN = AdsEvalPlan(days=2, warmup_days=1, sessions_per_day=150, users=20, learn_every=8,
                   campaigns=CampaignPlan(share=0.6, budget_clicks=2.0),
                   auction=AuctionConfig(relevance_floor=0.3, min_expected_revenue=0.0))


@pytest.fixture(scope="module")
def outcome():
    data = catalog(n_queries=20)
    queries = sorted(data.judgments)
    return data, queries, evaluate_ads(data, queries, PLAN)


def test_summary_has_the_issue_keys_for_every_auction(outcome):
    _, _, (result, _) = outcome
    assert set(result) == {"model", "highest_bid", "counts_ctr", "organic"}
    assert all(set(result[name]) == KEYS for name in ("model", "highest_bid", "counts_ctr"))
    assert set(result["organic"]) == {"ndcg@10"}
    json.dumps(result)  # one JSON object


def test_figures_are_sane(outcome):
    _, _, (result, details) = outcome
    for name in ("model", "highest_bid", "counts_ctr"):
        r, d = result[name], details[name]
        assert r["revenue_per_1k"] >= 0 and 0 <= r["ad_ctr"] <= 1 and 0 <= r["ndcg@10"] <= 1
        assert 0 <= r["budget_overspend"] < 1 and d["max_overspend_clicks"] <= 1.0  # at most one click past
        assert d["searches"] == PLAN.sessions_per_day and d["ad_impressions"] > 0
    assert result["highest_bid"]["revenue_per_1k"] > 0


def test_organic_ndcg_is_the_organic_results_alone_on_the_reported_sessions(outcome):
    data, queries, (result, _) = outcome
    organic = organic_results(data, queries, PLAN.candidates)
    sim = SessionSimulator(data, queries, SessionPlan(users=PLAN.users, k=PLAN.k, seed=PLAN.seed))
    reported = range(PLAN.warmup_days * PLAN.sessions_per_day, PLAN.days * PLAN.sessions_per_day)
    scores = [ndcg_at_k([item for item, _ in organic[q][: PLAN.k]], data.gains(q), 10)
              for q in (sim.session(n).query for n in reported)]
    assert result["organic"]["ndcg@10"] == pytest.approx(sum(scores) / len(scores), abs=1e-4)


def test_no_ads_leaves_the_page_organic():
    data = catalog(n_queries=10)
    queries = sorted(data.judgments)
    plan = replace(PLAN, sessions_per_day=40, campaigns=CampaignPlan(share=0.0))
    result, _ = evaluate_ads(data, queries, plan)
    for name in ("model", "highest_bid", "counts_ctr"):
        assert result[name]["revenue_per_1k"] == 0 == result[name]["ad_ctr"]
        assert result[name]["ndcg@10"] == result["organic"]["ndcg@10"]


def test_the_command_ends_with_the_json_line(tmp_path, capsys):
    data = catalog(n_queries=40)
    path = tmp_path / "train.csv.gz"
    with gzip.open(path, "wt", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("id", "product_uid", "product_title", "search_term", "relevance"))
        for n, (query, judged) in enumerate(data.judgments.items()):
            for item, rel in judged.items():
                writer.writerow((n, item, data.titles[data.items.index(item)], data.query_text[query], rel))
    code = main(["evaluate", "ads", "--data", str(path), "--queries", "5", "--days", "2", "--warmup-days", "1",
                 "--sessions-per-day", "30", "--share", "0.5", "--json"])
    assert code == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(last) == {"model", "highest_bid", "counts_ctr", "organic"} and set(last["model"]) == KEYS


def test_exponent_zero_without_the_expected_revenue_floor_is_the_highest_bid_auction():
    """pCTR^0 x bid is the bid: with no pCTR x bid floor, the model's auction is highest_bid's,
    page for page, whatever its pCTR learned."""
    data = catalog(n_queries=20)
    queries = sorted(data.judgments)
    plan = replace(PLAN, auction=replace(PLAN.auction, pctr_exponent=0.0))
    result, details = evaluate_ads(data, queries, plan)
    assert result["model"] == result["highest_bid"] and result["model"]["revenue_per_1k"] > 0
    assert details["model"] == details["highest_bid"]


def test_the_per_click_reserve_holds_in_every_auction():
    data = catalog(n_queries=10)
    queries = sorted(data.judgments)
    plan = replace(PLAN, sessions_per_day=60, auction=replace(PLAN.auction, reserve=1e6))  # above every bid
    result, _ = evaluate_ads(data, queries, plan)
    for name in ("model", "highest_bid", "counts_ctr"):
        assert result[name]["ad_ctr"] == 0 == result[name]["revenue_per_1k"]


def test_each_day_is_reported_and_the_reported_ones_make_the_summary(outcome):
    """The learning curve: one entry per simulated day, warm-up included; the reported day's
    figures are the summary's."""
    _, _, (result, details) = outcome
    for name in ("model", "highest_bid", "counts_ctr"):
        days = details[name]["by_day"]
        assert len(days) == PLAN.days
        reported = days[PLAN.warmup_days]  # PLAN reports one day
        assert reported["revenue_per_1k"] == result[name]["revenue_per_1k"]
        assert reported["ndcg_ratio"] == pytest.approx(result[name]["ndcg@10"] / result["organic"]["ndcg@10"], abs=1e-3)
