"""Sponsored slots for /v1/search and /v1/recommend, from the campaigns and ad_spend tables.

The rules are models/ads' (targeting, pacing, relevance floor, pCTR x bid, generalised
second price, set positions); this module only feeds them what the gateway holds: the
campaigns and today's spend from the changelogs (read model), the click model's estimate and
its click counts per (item, query) from the learner's current version. Ads are added to a page
after the ranking and its cache: a token is per page (it carries the time it was served), so
it must never be cached and handed to another shopper.
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from app.gateway.read_model import ReadModel
from app.settings import Settings
from models.ads.auction import AdCandidate, AdWinner, AuctionConfig, page_order, run_auction
from models.ads.campaigns import Campaign
from models.ads.ctr import CtrPrior
from models.ads.pacing import DAY_S, day_start, enters_auction, pacing_probability
from tables import ad_spend, campaigns
from tables.wire.ad_tokens import TokenHead, TokenMac, token_head
from tables.wire.updates import signing_key


@dataclass(frozen=True, slots=True)
class Today:
    spend: float = 0.0
    clicks: int = 0
    refused: int = 0


def today(read_model: ReadModel, campaign_id: str, now: float) -> Today:
    """The campaign's spend record for the UTC day holding `now` (a record of an earlier day is 0)."""
    row = read_model.tables[ad_spend.NAME].get(campaign_id)
    if row is None or row["day"] != day_start(now):
        return Today()
    return Today(ad_spend.spent_on(row, now), row["clicks"], row["refused"])


def page_relevance(items: Sequence[tuple[str, float]],
                   only: Sequence[tuple[str, float]] | None = None) -> dict[str, float]:
    """Relative relevance (0..1) of a page's candidates (of `only`, some of them: an auction
    needs the advertised ones'), over the whole page's scores. Scores >= 0 (BM25, recommenders)
    are taken over the best, as `relative_relevance` does; a ranker's logits can be negative,
    so they are spread over the page's range instead (the best 1, the worst 0)."""
    if not items:
        return {}
    scores = [s for _, s in items]
    low, high = min(scores), max(scores)
    chosen = items if only is None else only
    if low >= 0:
        return {i: s / high for i, s in chosen} if high > 0 else {}
    span = high - low
    return {i: (s - low) / span if span > 0 else 1.0 for i, s in chosen}


def score_cutoff(items: Sequence[tuple[str, float]], floor: float) -> float:
    """A score under which no candidate reaches relevance `floor` (`page_relevance`), a little
    low so rounding drops none: the auction weighs only those above it, most pages none."""
    if not items:
        return math.inf
    scores = [s for _, s in items]
    low, high = min(scores), max(scores)
    at = floor * high if low >= 0 else low + floor * (high - low)
    return at - 1e-9 * (abs(at) + 1.0)


Worth = tuple[str, str, float, float, float]  # campaign id, item id, bid, relevance, pCTR
# A page's result: item id, score, and for an ad its campaign id and price per click (None, None
# for an organic result). Plain tuples: kept in plans, which the cyclic GC must not walk.
Result = tuple[str, "float | None", "str | None", "float | None"]
# A cached list's plan: the list, its payable ads, and once every ad entered an answer the k
# and page it made (-1, () before). A plain tuple, like what it holds: the GC stops tracking it.
Plan = tuple[tuple[Any, ...], tuple[Worth, ...], int, tuple[Result, ...]]
# Cached lists whose ads a gateway keeps (`SponsoredSlots._planned`), then forgotten at once. They
# hold their lists: 27 MB at most for 20,000 lists of 12 the recommendation cache has dropped
# (tracemalloc; lists it still holds cost nothing more), and a kept page of 10 adds 840 bytes
# (sys.getsizeof of its tuples; the strings in them are shared).
PLANS = 20_000


def layout(items: Sequence[tuple[str, float]], winners: Sequence[AdWinner], k: int) -> tuple[Result, ...]:
    """The page's k results (`page_order`), each with its score from `items`."""
    scores = dict(items)
    return tuple((x.item_id, scores.get(x.item_id), x.campaign_id, x.price) if isinstance(x, AdWinner)
                 else (x, scores.get(x), None, None) for x in page_order([i for i, _ in items], winners, k))


class SponsoredSlots:
    """Campaigns by advertised item, kept from the read model; `page` lays out one page's ads."""

    def __init__(self, settings: Settings, read_model: ReadModel, click_model: Callable[[], Any],
                 draw: Callable[[], float] = random.random) -> None:
        self.settings = settings
        self.read_model = read_model
        self.click_model = click_model  # the serving click model now (None before a version)
        self.draw = draw
        self.config = AuctionConfig(slots=settings.ads.positions, max_ads=len(settings.ads.positions),
                                    relevance_floor=settings.ads.relevance_floor, reserve=settings.ads.reserve,
                                    min_expected_revenue=settings.ads.min_expected_revenue)
        self.prior = CtrPrior()
        self.enabled = settings.ads.enabled and self.config.max_ads > 0
        self.campaigns: dict[str, Campaign] = {}
        self.by_item: dict[str, dict[str, Campaign]] = {}
        self._mac: TokenMac | None = None
        self._heads: dict[str, TokenHead] = {}  # each shown campaign's token head, by id
        self.seconds = 0.0  # spent on ads by the answers (streamrank_gateway_ads_seconds_total reads it)
        self.impressions: dict[str, int] = {}  # ads shown, by campaign id (streamrank_ad_impressions_total reads it)
        # A cached recommendation list's ads that can pay their way (`worth`), by the list's id:
        # a shopper asks for the same list on page after page, and what it holds changes only
        # with the campaigns or the click model, which empty this. With them, once asked, the
        # page they make when all of them enter (k, results): the auction and the layout are
        # pure functions of who enters, and on most pages all do (running, targeted, unpaced).
        # Entries are tuples of strings and numbers, which the cyclic GC stops tracking
        # (app/gateway/gc_freeze.py).
        self._plans: dict[int, Plan] = {}
        self._plans_click: Any = None
        read_model.subscribe(self.on_change)

    def on_change(self, table: str, key: str, old: Any, new: Any) -> None:
        if table != campaigns.NAME:
            return
        self._plans.clear()
        self._heads.pop(key, None)
        previous = self.campaigns.pop(key, None)
        if previous is not None:
            of_item = self.by_item.get(previous.item_id, {})
            of_item.pop(key, None)
            if not of_item:  # `auction` takes an item in by_item for an advertised one
                self.by_item.pop(previous.item_id, None)
        if new is not None:
            campaign = campaigns.from_value(new)  # validated by the follower already: this cannot fail
            self.campaigns[key] = campaign
            self.by_item.setdefault(campaign.item_id, {})[key] = campaign

    def token_mac(self) -> TokenMac:
        if self._mac is None:  # the key read (or made) once, on the first ad served
            self._mac = TokenMac(signing_key(self.settings))
        return self._mac

    def holds_no_ad(self, source: tuple[Any, ...] | None) -> bool:
        """True when `source` is a cached list whose kept plan has no ad that can pay its way (for
        the click model serving now): its page is the organic one, with no auction to run. Most
        recommendation pages are such, and this is all the ads cost them."""
        plan = self._kept(source) if source is not None else None
        return plan is not None and not plan[1] and self._plans_click is self.click_model()

    def page(self, items: Sequence[tuple[str, float]], k: int, context: str, query: str | None,
             categories: Callable[[], Sequence[str]], now: float,
             source: tuple[Any, ...] | None = None) -> tuple[Result, ...]:
        """The page's k results with the auction's ads in their slots; () when no ad wins (the
        organic page stands). `source`: the cached list `items` came from, whose plan is kept."""
        if source is None:  # search, a recommendation just ranked
            winners = self.auction(items, context, query, categories, now)
            return layout(items, winners, k) if winners else ()
        _, worth, kept_k, kept_page = self._planned(source, items, context)
        if not worth:
            return ()
        entered = self._entered(worth, query, categories, now)
        if len(entered) < len(worth):  # some sit out (pacing, a stop time): the auction of those that enter
            winners = self._run(entered) if entered else []
            return layout(items, winners, k) if winners else ()
        if kept_k != k:  # the first answer every ad enters: its page, kept
            kept_page = layout(items, self._run(entered), k)
            self._plans[id(source)] = (source, worth, k, kept_page)
        return kept_page

    def auction(self, items: Sequence[tuple[str, float]], context: str, query: str | None,
                categories: Callable[[], Sequence[str]], now: float) -> list[AdWinner]:
        """The page's winners: campaigns of candidates above the relevance floor that can pay
        the reserves, run now, target the page and pass pacing, ranked by pCTR x bid, each priced
        at its second price."""
        worth = self._worth(items, context)
        entered = self._entered(worth, query, categories, now) if worth else []
        return self._run(entered) if entered else []

    def _entered(self, worth: tuple[Worth, ...], query: str | None, categories: Callable[[], Sequence[str]],
                 now: float) -> list[Worth]:
        """The ads of `worth` that run now, target the page and pass pacing."""
        held, spend = self.campaigns, self.read_model.tables[ad_spend.NAME]
        day = day_start(now)
        elapsed = (now - day) / DAY_S
        page_categories: Sequence[str] | None = None  # asked for the first campaign that targets some
        entered = []
        for ad in worth:
            c = held[ad[0]]
            if not c.is_running(now):
                continue
            if c.categories and page_categories is None:
                page_categories = categories()
            if c.targets(query, page_categories or ()) and self._paced(c, ad_spend.spent_on_day(spend.get(ad[0]), day),
                                                                       elapsed):
                entered.append(ad)
        return entered

    def _run(self, entered: Sequence[Worth]) -> list[AdWinner]:
        return run_auction([AdCandidate(campaign_id, item_id, bid, pctr, relevance)
                            for campaign_id, item_id, bid, relevance, pctr in entered], self.config)

    def _planned(self, source: tuple[Any, ...], items: Sequence[tuple[str, float]],
                 context: str) -> Plan:
        click = self.click_model()
        if click is not self._plans_click:  # a new version: new pCTRs
            self._plans.clear()
            self._plans_click = click
        plan = self._kept(source)
        if plan is not None:
            return plan
        if len(self._plans) >= PLANS:
            self._plans.clear()
        plan = self._plans[id(source)] = (source, self._worth(items, context), -1, ())
        return plan

    def _kept(self, source: tuple[Any, ...]) -> Plan | None:
        plan = self._plans.get(id(source))
        return plan if plan is not None and plan[0] is source else None  # held, so its id names no other list

    def _worth(self, items: Sequence[tuple[str, float]], context: str) -> tuple[Worth, ...]:
        """(campaign, item, bid, relevance, pCTR) of the page's ads that neither the clock nor
        spend can change: above the relevance floor, bidding the reserve and pCTR x bid at least
        the least expected revenue (`eligible` would drop the others anyway)."""
        by_item, floor = self.by_item, self.config.relevance_floor
        cutoff = score_cutoff(items, floor)  # most pages: no advertised candidate is near it
        near = [(item, score) for item, score in items if score >= cutoff and item in by_item]
        if not near:
            return ()
        entered = [(c, r) for item, r in page_relevance(items, near).items() if r >= floor
                   for c in by_item[item].values()]
        if not entered:
            return ()
        reserve, least = self.config.reserve, self.config.min_expected_revenue
        pctr = self._pctr([c.item_id for c, _ in entered], context)
        return tuple((c.campaign_id, c.item_id, c.bid_per_click, r, p) for (c, r), p in zip(entered, pctr)
                     if c.bid_per_click >= reserve and p * c.bid_per_click >= least)

    def _paced(self, campaign: Campaign, spent: float, elapsed: float) -> bool:
        probability = pacing_probability(spent, campaign.daily_budget, elapsed)
        # Certain entry takes no draw: most campaigns are on or behind their spread most of the day.
        return probability >= 1.0 or enters_auction(probability, self.draw())

    def _pctr(self, item_ids: list[str], context: str) -> list[float]:
        """Each item's top-slot pCTR on this page: the click model's estimate, moved by the
        item's clicks and its clicks on pages about `context` (counted by the learner from
        every impression, ads' included, and shipped with its versions); the prior's mean
        before any version."""
        click = self.click_model()
        if click is None or not len(click):
            return [self.prior.mean] * len(item_ids)
        return click.ad_ctr(item_ids, context, self.prior)

    def token(self, campaign_id: str, item_id: str, price: float, now: float) -> str:
        """The signed token of one ad shown now at `price` per click."""
        head = self._heads.get(campaign_id)
        if head is None:
            head = self._heads[campaign_id] = token_head(campaign_id, item_id, self.campaigns[campaign_id].daily_budget)
        return self.token_mac().sign_with(head, price, now)
