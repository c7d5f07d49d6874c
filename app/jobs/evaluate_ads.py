"""`streamrank evaluate ads`: sponsored slots offline on held-out Home Depot sessions, beside two baselines.

    streamrank evaluate ads [--data CSV] [--queries N] [--days D] [--warmup-days W] [--sessions-per-day S]
                            [--reserve R] [--min-ecpm E] [--pctr-exponent A] [--split train] [--json]

Simulated shoppers search the dev-split queries (never in the search model's training nor in
`replay`'s sessions) over D days; BM25 over the titles gives the organic results and the
candidates an ad must be among (the relevance floor). Synthetic campaigns (`CampaignPlan`)
bid for two slots of each page. Three auctions run on the same sessions, each learning only
from the pages it showed, each page auctioned before its clicks are learned:
- model: pCTR x bid, pCTR from the position-debiased click model, learned online from every
  impression, corrected by the item's clicks over examinations per query and overall, which
  the click model counts as it learns (`models/ads/ctr.py`): what a gateway serves;
- highest_bid: bid alone;
- counts_ctr: pCTR from ad clicks over ad impressions, no model, no position correction.
Clicks follow the relevance labels through the sessions' position click model. The first
`--warmup-days` (a week) only warm up what the auctions learn; the others are reported: revenue
per 1,000 searches, ad CTR, spend past the daily budgets (a share of spend) and the page's
nDCG@10 against the organic results alone. A shop's ads run on: its click model has long seen
its queries, which is what the reported days measure; every day's figures are printed too, the
first ones the cold start. The last line printed is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from app.search_sessions import (AdTally, CampaignPlan, PositionClickModel, SearchResults, SessionPlan, SessionSimulator,
                                 page_clicks, synthetic_campaigns)
from app.settings import Settings
from models.ads.auction import AuctionConfig, PageEntry, merge_page
from models.ads.campaigns import Campaign
from models.ads.ctr import AdCtr, Key, CountsCtr, CtrPrior, FlatCtr, click_model_ctr, page_context
from models.ads.market import AdMarket, ModelCtr
from models.ads.pacing import DAY_S, PacingConfig
from models.data.homedepot import SearchData, load_homedepot, split_queries
from models.errors import DataError
from models.lexical import BM25Index
from models.metrics import ndcg_at_k

if TYPE_CHECKING:
    from models.online.click_model import OnlineClickModel

POLICIES = ("model", "highest_bid", "counts_ctr")
START_TS = 1_767_225_600.0  # 2026-01-01 00:00 UTC: simulated days are whole UTC days
Organic = Mapping[str, list[tuple[str, float]]]  # query -> (item, BM25 score), best first


@dataclass(frozen=True)
class AdsEvalPlan:
    # A week learned before three reported days: the model's pair counts need a query seen a
    # few times, and every query comes back about twice a day (1,926 dev queries, 4,000 searches).
    days: int = 10
    warmup_days: int = 7
    sessions_per_day: int = 4000
    k: int = 10
    candidates: int = 100  # BM25 results an ad's item must be among
    users: int = 500
    seed: int = 7
    learn_every: int = 32  # sessions per click-model step
    campaigns: CampaignPlan = CampaignPlan()
    auction: AuctionConfig = AuctionConfig()
    pacing: PacingConfig = PacingConfig()
    prior: CtrPrior = CtrPrior()

    def session_ts(self, number: int) -> float:
        """Sessions spread evenly over their day."""
        day, n = divmod(number, self.sessions_per_day)
        return START_TS + day * DAY_S + (n + 0.5) / self.sessions_per_day * DAY_S

    @property
    def reported_from(self) -> float:
        return START_TS + self.warmup_days * DAY_S


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("ads", help="sponsored products: revenue, ad CTR, budgets, page nDCG@10 vs baselines")
    parser.add_argument("--data", type=Path, default=None, help="judgments CSV(.gz) (default: data_dir/homedepot/train.csv.gz)")
    parser.add_argument("--queries", type=int, default=0, help="use N held-out queries (0: all of the dev split)")
    parser.add_argument("--split", choices=("dev", "train"), default="dev",
                        help="queries to simulate on: dev (held out, reported) or train (for tuning knobs)")
    parser.add_argument("--days", type=int, default=AdsEvalPlan.days, help="simulated days")
    parser.add_argument("--warmup-days", type=int, default=AdsEvalPlan.warmup_days, help="days learned from, not reported")
    parser.add_argument("--sessions-per-day", type=int, default=AdsEvalPlan.sessions_per_day)
    parser.add_argument("--share", type=float, default=CampaignPlan.share, help="share of the catalog advertised")
    parser.add_argument("--floor", type=float, default=AuctionConfig.relevance_floor,
                        help="relevance floor: an ad's BM25 score over the page's best")
    parser.add_argument("--min-ecpm", type=float, default=AuctionConfig.min_expected_revenue,
                        help="least pCTR x bid an ad needs (its per-click price floor is this over its pCTR)")
    parser.add_argument("--reserve", type=float, default=AuctionConfig.reserve,
                        help="least price per click, in every auction (highest_bid's only reserve)")
    parser.add_argument("--pctr-exponent", type=float, default=AuctionConfig.pctr_exponent,
                        help="rank ads by pCTR^a x bid (squashing; GSP prices follow); choose it on --split train")
    parser.add_argument("--oracle", action="store_true",
                        help="also run the auction with the simulator's true click probabilities (a ceiling)")
    parser.add_argument("--seed", type=int, default=AdsEvalPlan.seed)
    parser.add_argument("--json", action="store_true", help="end with one JSON line (always printed; kept for scripts)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.warmup_days < args.days or args.sessions_per_day < 1:
        raise DataError(f"need 0 <= --warmup-days < --days (got {args.warmup_days} and {args.days}) "
                        f"and --sessions-per-day >= 1")
    settings = Settings.from_env()
    started = time.monotonic()
    data = load_homedepot((args.data or settings.runtime.data_dir / "homedepot" / "train.csv.gz").resolve())
    queries = held_out_queries(data, settings, args.queries, args.split, args.seed)
    plan = AdsEvalPlan(days=args.days, warmup_days=args.warmup_days, sessions_per_day=args.sessions_per_day,
                       seed=args.seed, campaigns=CampaignPlan(share=args.share),
                       auction=AuctionConfig(relevance_floor=args.floor, min_expected_revenue=args.min_ecpm,
                                           reserve=args.reserve, pctr_exponent=args.pctr_exponent))
    result, details = evaluate_ads(data, queries, plan, oracle=args.oracle)
    print(f"{len(queries)} {args.split} queries, {plan.days - plan.warmup_days} reported days of "
          f"{plan.sessions_per_day} sessions, {len(details['campaigns'])} campaigns; {time.monotonic() - started:.0f}s")
    print(f"every auction: GSP, reserve {plan.auction.reserve}/click, relevance floor {plan.auction.relevance_floor}, "
          f"pacing; model and counts_ctr also need pCTR x bid >= {plan.auction.min_expected_revenue}; "
          f"rank by pCTR^{plan.auction.pctr_exponent} x bid")
    print_table(result, details)
    print_days(details, plan)
    print(json.dumps(result))
    return 0


def held_out_queries(data: SearchData, settings: Settings, limit: int, split: str = "dev", seed: int = 7) -> list[str]:
    """The split's queries, `limit` of them (0: all) drawn at random with `seed`."""
    queries = split_queries(data, (), settings.search.dev_fraction, settings.search.calib_fraction)[split]
    if not queries:
        raise DataError(f"no {split} queries in the data")
    if 0 < limit < len(queries):
        picked = np.random.default_rng([seed, 5]).choice(len(queries), size=limit, replace=False)
        queries = [queries[i] for i in sorted(picked)]
    return queries


def organic_results(data: SearchData, queries: Sequence[str], depth: int) -> dict[str, list[tuple[str, float]]]:
    """BM25 over the titles: each query's `depth` best (item, score), best first."""
    index = BM25Index.build(data.items, data.titles)
    return {q: index.search(data.query_text.get(q, q), depth) for q in queries}


def evaluate_ads(data: SearchData, queries: Sequence[str], plan: AdsEvalPlan = AdsEvalPlan(), oracle: bool = False
                 ) -> tuple[dict[str, dict[str, float]], dict[str, object]]:
    """(the JSON summary, details) of the three auctions on the same simulated sessions; details
    also hold the oracle's figures when asked for (they stay out of the summary)."""
    organic = organic_results(data, queries, plan.candidates)
    campaigns = synthetic_campaigns(data.items, plan.campaigns)
    runs = {name: simulate(data, queries, organic, campaigns, name, plan)
            for name in POLICIES + (("oracle",) if oracle else ())}
    result: dict[str, dict[str, float]] = {name: runs[name].summary() for name in POLICIES}
    result["organic"] = {"ndcg@10": runs["model"].organic_ndcg()}
    details: dict[str, object] = {"campaigns": campaigns, **{name: r.details() for name, r in runs.items()}}
    if oracle:
        details["oracle_summary"] = runs["oracle"].summary()
    return result, details


@dataclass
class PolicyRun:
    market: AdMarket
    since: float
    first_reported_day: int  # the days before it are warm-up
    tally: AdTally = field(default_factory=AdTally)
    day_sums: list[list[float]] = field(default_factory=list)  # per day, warm-up too: revenue, searches, nDCG@10s

    def add_day(self, day: int, charged: float, page_ndcg: float, organic_ndcg: float) -> None:
        while len(self.day_sums) <= day:
            self.day_sums.append([0.0, 0.0, 0.0, 0.0])
        sums = self.day_sums[day]
        sums[0] += charged
        sums[1] += 1
        sums[2] += page_ndcg
        sums[3] += organic_ndcg

    def by_day(self) -> list[dict[str, float]]:
        """Each simulated day's revenue per 1,000 searches and page nDCG@10 over organic: how
        the auction does as what it learns grows."""
        return [{"revenue_per_1k": round(1000 * revenue / n, 2), "ndcg_ratio": round(page / organic, 4) if organic else 1.0}
                for revenue, n, page, organic in self.day_sums if n]

    def summary(self) -> dict[str, float]:
        spend = self.market.spend(self.since)
        n = max(self.tally.searches, 1)
        return {"revenue_per_1k": round(1000 * self.tally.revenue / n, 2),
                "ad_ctr": round(self.tally.clicks / self.tally.impressions, 4) if self.tally.impressions else 0.0,
                "ndcg@10": round(self._reported_sum(2) / n, 4),
                "budget_overspend": round(self.market.overspend(self.since) / spend, 4) if spend else 0.0}

    def organic_ndcg(self) -> float:
        return round(self._reported_sum(3) / max(self.tally.searches, 1), 4)

    def _reported_sum(self, column: int) -> float:
        return sum(day[column] for day in self.day_sums[self.first_reported_day:])

    def details(self) -> dict[str, object]:
        worst = max((max(0.0, spend - self.market.campaigns[cid].daily_budget) / self.market.campaigns[cid].bid_per_click
                     for cid, day, spend in self.market.ledger.items() if day >= self.since), default=0.0)
        return {**self.tally.as_dict(), "searches": self.tally.searches,
                "spend": round(self.market.spend(self.since), 2), "max_overspend_clicks": round(worst, 3),
                "by_day": self.by_day()}


class OracleCtr:
    """The simulator's own top-slot click probability of each (item, query): what no model can beat."""

    def __init__(self, data: SearchData, clicks: PositionClickModel) -> None:
        self.data = data
        self.clicks = clicks

    def observe(self, item_id: Key, context: Key, position: int, clicked: bool) -> None:
        return None

    def predict(self, item_id: Key, context: Key, model_ctr: float | None = None) -> float:
        p = self.clicks.click_probability(0, self.data.judgments.get(str(context), {}).get(str(item_id)))
        return p * (1 - self.clicks.noise) + (1 - p) * self.clicks.noise


def _ctr(name: str, data: SearchData, plan: AdsEvalPlan) -> AdCtr:
    if name == "oracle":
        return OracleCtr(data, PositionClickModel())
    return CountsCtr(plan.prior) if name == "counts_ctr" else FlatCtr()


def simulate(data: SearchData, queries: Sequence[str], organic: Organic, campaigns: Sequence[Campaign],
             policy: str, plan: AdsEvalPlan) -> PolicyRun:
    """One auction over every session, in time order; the warm-up days learn but are not tallied."""
    sim = SessionSimulator(data, queries, SessionPlan(run=f"ads-{policy}", users=plan.users, k=plan.k, seed=plan.seed))
    learner = ClickLearner(policy == "model", plan.learn_every)
    ctr = learner.ad_ctr(plan.prior) if policy == "model" else _ctr(policy, data, plan)
    # Bid alone knows no expected revenue per impression: its reserve is per click only.
    config = replace(plan.auction, min_expected_revenue=0.0) if policy == "highest_bid" else plan.auction
    market = AdMarket(campaigns, ctr, config, plan.pacing)
    out = PolicyRun(market, plan.reported_from, plan.warmup_days)
    for number in range(plan.days * plan.sessions_per_day):
        ts = plan.session_ts(number)
        session = sim.session(number)
        ranked = organic[session.query]
        draws = np.random.default_rng([plan.seed, number, 9])
        winners = market.auction(dict(ranked), session.query, ts, draws.random, query=session.text,
                                 model_ctr=learner.model_ctr)
        page = merge_page([item for item, _ in ranked], winners, plan.k)
        events = sim.events(session, SearchResults([e.item_id for e in page], f"ads-{number}"), ts)
        clicked = page_clicks(page, events)
        charged = market.feedback(page, clicked, session.query, ts)
        learner.add(session.user_id, session.query, page, clicked)
        gains = data.gains(session.query)
        out.add_day(number // plan.sessions_per_day, charged, ndcg_at_k([e.item_id for e in page], gains, 10),
                    ndcg_at_k([item for item, _ in ranked[: plan.k]], gains, 10))
        if ts >= plan.reported_from:
            out.tally.add(page, clicked, charged)
    return out


class ClickLearner:
    """The online click model, learning every page's impressions in micro-batches as the learner
    does; its ad counts (per item and query) are what the model's auction prices by, as a
    gateway's are. Off (`on` False): learns nothing, for the auctions without the model."""

    def __init__(self, on: bool, every: int) -> None:
        from models.online.click_model import OnlineClickModel

        self.every = every
        self.model = OnlineClickModel() if on else None
        self.pending: list = []
        self.pages = 0
        self.model_ctr: ModelCtr | None = self._predict if self.model is not None else None

    def _predict(self, items: Sequence[str]) -> list[float | None]:
        assert self.model is not None
        top = float(self.model.dense.position_bias.detach()[0])
        return [click_model_ctr(r, top) for r in self.model.relevance(items).tolist()]

    def ad_ctr(self, prior: CtrPrior) -> "ClickModelCtr":
        assert self.model is not None
        return ClickModelCtr(self.model, prior)

    def add(self, user: str, query: str, page: Sequence[PageEntry], clicked: Sequence[bool]) -> None:
        if self.model is None:
            return
        from models.online.click_model import ClickSample

        self.pending += [ClickSample(user, e.item_id, p, int(hit), query) for p, (e, hit) in enumerate(zip(page, clicked))]
        self.pages += 1
        if self.pages % self.every == 0:
            self.model.learn(self.pending)
            self.pending = []


class ClickModelCtr:
    """The click model's ad pCTR (`AdClickCounts.predict` over its estimate). It learns only
    through the click model's steps: `observe` is the learner's, not the market's, to do."""

    def __init__(self, model: "OnlineClickModel", prior: CtrPrior) -> None:
        self.model = model
        self.prior = prior

    def observe(self, item_id: Key, context: Key, position: int, clicked: bool) -> None:
        return None

    def predict(self, item_id: Key, context: Key, model_ctr: float | None = None) -> float:
        return self.model.ad_counts.predict(item_id, page_context(str(context)), model_ctr, self.prior)


def print_table(result: Mapping[str, Mapping[str, float]], details: Mapping[str, object]) -> None:
    keys = ("revenue_per_1k", "ad_ctr", "ndcg@10", "budget_overspend")
    print(f"{'auction':<12}" + "".join(f"{k:>18}" for k in keys) + f"{'ad clicks':>11}{'max over (clicks)':>19}")
    for name in POLICIES:
        extra = details[name]
        assert isinstance(extra, dict)
        print(f"{name:<12}" + "".join(f"{result[name][k]:>18}" for k in keys)
              + f"{extra['ad_clicks']:>11}{extra['max_overspend_clicks']:>19}")
    oracle = details.get("oracle_summary")
    if isinstance(oracle, dict):
        print(f"{'(oracle)':<12}" + "".join(f"{oracle[k]:>18}" for k in keys))
    print(f"{'organic':<12}{'':>18}{'':>18}{result['organic']['ndcg@10']:>18}")
    base = result["highest_bid"]["revenue_per_1k"]
    print(f"model revenue / highest bid: {_ratio(result['model']['revenue_per_1k'], base)} (target 1.3x); "
          f"model page nDCG@10 / organic: {_ratio(result['model']['ndcg@10'], result['organic']['ndcg@10'])} (target 0.98x)")


def print_days(details: Mapping[str, object], plan: AdsEvalPlan) -> None:
    """Every simulated day, warm-up ones marked: revenue per 1k searches (and over highest bid's)
    and page nDCG@10 over organic, per auction."""
    days = {name: details[name]["by_day"] for name in POLICIES}  # type: ignore[index]
    print("by day (* warm-up): revenue / 1k searches (model over highest bid), page nDCG@10 x organic")
    for d, base in enumerate(days["highest_bid"]):
        cells = []
        for name in POLICIES:
            day = days[name][d]
            extra = f" ({_ratio(day['revenue_per_1k'], base['revenue_per_1k'])})" if name == "model" else ""
            cells.append(f"{name} {day['revenue_per_1k']}{extra} {day['ndcg_ratio']}x")
        print(f"  day {d + 1:>2}{'*' if d < plan.warmup_days else ' '}  " + "   ".join(cells))


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"
