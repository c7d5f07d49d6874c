"""Simulated shoppers: training queries, a position-based click model, carts, purchases, the events a shop sends.

A session is one shopper searching one Home Depot training query, seeing the ranked results,
clicking some of them, putting some clicked products in the cart and buying some of those.
Which results get clicked follows the position-based model: P(click at position p) =
examine(p) * attract(relevance label), each decision flipped with probability `noise`. A cart
follows a click only (more often the more relevant the product), a purchase a cart only.
Shoppers are drawn from a fixed pool, so they come back and build histories. Only products of
the catalog are shown: every event names a product the shop sells. Everything here is pure:
the ranked results are passed in.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from tables.wire.records import UserEvent
from models.ads.auction import AuctionConfig, PageEntry, merge_page
from models.ads.campaigns import Campaign
from models.ads.ctr import CtrPrior, DebiasedCtr
from models.ads.market import AdMarket
from models.data.homedepot import SearchData, split_queries
from models.lexical import BM25Index

# Seconds between the search and each following click: a click comes after what it clicks on.
CLICK_DELAY_S = 2.0
# Seconds from the last click to each add-to-cart, and from the last cart to checkout.
CART_DELAY_S = 3.0
CHECKOUT_DELAY_S = 10.0


def training_queries(data: SearchData, dev_fraction: float, calib_fraction: float,
                     exclude: Iterable[str] = ()) -> list[str]:
    """Normalised queries the search model may train on (train + calib splits), sorted.

    Dev queries and `exclude` (test queries) never appear: sessions on them would leak their
    clicks into the online model that is later evaluated on them.
    """
    splits = split_queries(data, exclude, dev_fraction, calib_fraction)
    return sorted(set(splits["train"]) | set(splits["calib"]))


@dataclass(frozen=True)
class PositionClickModel:
    """Position-based click model over graded labels (1..3; None: unjudged)."""

    eta: float = 1.0
    noise: float = 0.1
    unjudged: float = 0.05

    def examine(self, position: int) -> float:
        """Probability a user looks at the result at `position` (0-based)."""
        return float(1.0 / (1.0 + position) ** self.eta)

    def attract(self, relevance: float | None) -> float:
        """Probability a user who looks at a result clicks it: 0.1 at label 1 up to 0.9 at label 3."""
        if relevance is None:
            return self.unjudged
        return ((min(max(relevance, 1.0), 3.0) - 1.0) / 2.0) * 0.8 + 0.1

    def click_probability(self, position: int, relevance: float | None) -> float:
        """examine * attract, before noise."""
        return self.examine(position) * self.attract(relevance)

    def clicks(self, relevances: Sequence[float | None], rng: np.random.Generator) -> list[bool]:
        """One click decision per shown result, in position order."""
        # Two draws per position whatever the outcome, so a flip never shifts later draws.
        draws = rng.random((len(relevances), 2))
        out = []
        for position, relevance in enumerate(relevances):
            clicked = bool(draws[position, 0] < self.click_probability(position, relevance))
            out.append(clicked != bool(draws[position, 1] < self.noise))
        return out


@dataclass(frozen=True)
class CartModel:
    """Carts and purchases after clicks: P(cart | click) by label, P(purchase | cart)."""

    cart_unjudged: float = 0.08
    cart_low: float = 0.1  # at label 1, rising linearly to `cart_high` at label 3
    cart_high: float = 0.4
    purchase: float = 0.5

    def cart_probability(self, relevance: float | None) -> float:
        if relevance is None:
            return self.cart_unjudged
        return self.cart_low + (min(max(relevance, 1.0), 3.0) - 1.0) / 2.0 * (self.cart_high - self.cart_low)

    def carts(self, clicked: Sequence[float | None], rng: np.random.Generator) -> list[tuple[bool, bool]]:
        """(added to cart, bought) per clicked result, in click order; bought implies added."""
        # Two draws per click whatever the outcome: one decision never shifts the others.
        draws = rng.random((len(clicked), 2))
        out = []
        for n, relevance in enumerate(clicked):
            added = bool(draws[n, 0] < self.cart_probability(relevance))
            out.append((added, added and bool(draws[n, 1] < self.purchase)))
        return out


@dataclass(frozen=True)
class SearchResults:
    """What one search returned: item ids best first, and the response's request id."""

    item_ids: list[str]
    request_id: str
    model_version: str | None = None


@dataclass(frozen=True)
class Session:
    """Who searches what in session `number`."""

    number: int
    user_id: str
    query: str  # normalised; the key into the judgments
    text: str  # as the user typed it (the query's first raw spelling)


@dataclass(frozen=True)
class SessionPlan:
    """How sessions are drawn; the same plan and session number give the same session and clicks."""

    run: str = "seq"
    users: int = 500
    k: int = 10
    seed: int = 7


def shopper(rng: np.random.Generator, plan: SessionPlan) -> str:
    """`hd-u<N>`, N drawn from the plan's pool of shoppers: the same few come back again and again."""
    return f"hd-u{int(rng.integers(plan.users))}"


def session_shopper(plan: SessionPlan, number: int) -> str:
    """Who shops in session `number`, without the data (what `SessionSimulator.session` draws)."""
    return shopper(np.random.default_rng([plan.seed, number, 0]), plan)


class SessionSimulator:
    """Draws sessions over training queries and turns a session's results into user events."""

    def __init__(self, data: SearchData, queries: Sequence[str], plan: SessionPlan = SessionPlan(),
                 click_model: PositionClickModel = PositionClickModel(),
                 cart_model: CartModel = CartModel()) -> None:
        if not queries:
            raise ValueError("no queries to simulate sessions with")
        self.data = data
        self.queries = list(queries)
        self.plan = plan
        self.click_model = click_model
        self.cart_model = cart_model
        self.catalog = frozenset(data.items)

    def _rng(self, number: int, stream: int) -> np.random.Generator:
        # One generator per (session, purpose): a session is the same whatever ran before it.
        return np.random.default_rng([self.plan.seed, number, stream])

    def session(self, number: int) -> Session:
        rng = self._rng(number, 0)
        user = shopper(rng, self.plan)  # first draw: who shops does not depend on the queries
        query = self.queries[int(rng.integers(len(self.queries)))]
        return Session(number, user, query, self.data.query_text.get(query, query))

    def event_id(self, number: int, kind: str, position: int | None = None) -> str:
        """`<run>:hd:<session>:<kind>[:<position>]`: a replayed run is all duplicates, a new run new events."""
        base = f"{self.plan.run}:hd:{number}:{kind}"
        return base if position is None else f"{base}:{position}"

    def events(self, session: Session, results: SearchResults, ts: float) -> list[UserEvent]:
        """The search, one impression per shown result, the clicks, the carts, the purchases (time order)."""
        # A result the catalog does not hold (another shop's id, a stale index) is never shown.
        shown = [item for item in results.item_ids if item in self.catalog][: self.plan.k]
        n, user, rid, text = session.number, session.user_id, results.request_id, session.text

        def event(kind: str, etype: str, at: float, p: int | None = None) -> UserEvent:
            return UserEvent(self.event_id(n, kind, p), user, etype, at, item_id=None if p is None else shown[p],
                             query=text, position=p, request_id=rid)

        events = [event("search", "search", ts)]
        events += [event("impression", "impression", ts, p) for p in range(len(shown))]
        judged = self.data.judgments.get(session.query, {})
        clicked = self.click_model.clicks([judged.get(item) for item in shown], self._rng(n, 1))
        positions = [p for p, hit in enumerate(clicked) if hit]
        at = ts
        for p in positions:
            at += CLICK_DELAY_S
            events.append(event("click", "click", at, p))
        decisions = self.cart_model.carts([judged.get(shown[p]) for p in positions], self._rng(n, 2))
        carted = [p for p, (added, _) in zip(positions, decisions) if added]
        bought = [p for p, (_, buy) in zip(positions, decisions) if buy]
        for p in carted:
            at += CART_DELAY_S
            events.append(event("cart", "add_to_cart", at, p))
        at += CHECKOUT_DELAY_S
        events += [event("purchase", "purchase", at, p) for p in bought]  # one checkout for the lot
        return events


@dataclass
class SessionSummary:
    """Counts over the sessions sent; CTR by position over the first `positions` positions."""

    positions: int = 5
    sessions: int = 0
    impressions: Counter[int] = field(default_factory=Counter)  # position -> count
    clicks: Counter[int] = field(default_factory=Counter)
    carts: int = 0
    purchases: int = 0
    users: set[str] = field(default_factory=set)

    def add(self, events: Iterable[UserEvent]) -> None:
        self.sessions += 1
        for e in events:
            self.users.add(e.user_id)
            if e.type == "impression" and e.position is not None:
                self.impressions[e.position] += 1
            elif e.type == "click" and e.position is not None:
                self.clicks[e.position] += 1
            elif e.type == "add_to_cart":
                self.carts += 1
            elif e.type == "purchase":
                self.purchases += 1

    def ctr(self, position: int) -> float | None:
        """Clicks per impression at `position`; None before any impression there."""
        shown = self.impressions[position]
        return round(self.clicks[position] / shown, 4) if shown else None

    def as_dict(self) -> dict[str, object]:
        return {"sessions": self.sessions, "shoppers": len(self.users), "impressions": sum(self.impressions.values()),
                "clicks": sum(self.clicks.values()), "carts": self.carts, "purchases": self.purchases,
                "ctr_by_position": [self.ctr(p) for p in range(self.positions)]}


# ---- sponsored products (`replay --ads`, `evaluate ads`) --------------------------------


@dataclass(frozen=True)
class CampaignPlan:
    """Synthetic campaigns: a share of the catalog advertised, skewed (log-normal) bids and budgets."""

    share: float = 0.1
    bid_median: float = 0.5  # per click; a few advertisers bid ten times that
    bid_sigma: float = 1.0
    budget_clicks: float = 4.0  # median daily budget, in clicks at the campaign's own bid
    budget_sigma: float = 0.8
    min_bid: float = 0.05
    seed: int = 11


def synthetic_campaigns(items: Sequence[str], plan: CampaignPlan = CampaignPlan()) -> list[Campaign]:
    """Campaigns `hd-c<N>` for a random `share` of `items`, open-ended, targeting every query."""
    rng = np.random.default_rng([plan.seed, 1])
    chosen = np.flatnonzero(rng.random(len(items)) < plan.share)
    bids = np.maximum(plan.min_bid, np.round(plan.bid_median * rng.lognormal(0.0, plan.bid_sigma, len(chosen)), 2))
    clicks = np.maximum(1.0, plan.budget_clicks * rng.lognormal(0.0, plan.budget_sigma, len(chosen)))
    return [Campaign(f"hd-c{n}", items[i], float(bid), float(round(bid * c, 2)))
            for n, (i, bid, c) in enumerate(zip(chosen, bids, clicks))]


def page_clicks(page: Sequence[PageEntry], events: Iterable[UserEvent]) -> list[bool]:
    """Whether each page entry was clicked in a session's events (clicks name their position)."""
    hits = {e.position for e in events if e.type == "click"}
    return [p in hits for p in range(len(page))]


@dataclass
class AdTally:
    """Sponsored entries shown and clicked, and what the clicks were charged."""

    searches: int = 0
    impressions: int = 0
    clicks: int = 0
    revenue: float = 0.0

    def add(self, page: Sequence[PageEntry], clicked: Sequence[bool], charged: float) -> None:
        self.searches += 1
        self.impressions += sum(e.sponsored for e in page)
        self.clicks += sum(e.sponsored and hit for e, hit in zip(page, clicked))
        self.revenue += charged

    def as_dict(self) -> dict[str, float]:
        return {"ad_impressions": self.impressions, "ad_clicks": self.clicks, "revenue": round(self.revenue, 2),
                "revenue_per_1k": round(1000 * self.revenue / max(self.searches, 1), 2),
                "ad_ctr": round(self.clicks / self.impressions, 4) if self.impressions else 0.0}


class SponsoredSlots:
    """Sponsored slots on simulated sessions where no gateway serves them yet (`replay --ads
    --ranker local`): BM25 candidates, the ad market's auction, ads merged into the results.

    Its pCTR learns from its own ads' clicks only (no click model runs in the replay), so it
    stands in for the gateway's auction; `evaluate ads` measures the real one.
    """

    def __init__(self, campaigns: Sequence[Campaign], index: BM25Index, plan: SessionPlan,
                 config: AuctionConfig | None = None, candidates: int = 100) -> None:
        examination = [PositionClickModel().examine(p) for p in range(plan.k)]
        self.market = AdMarket(campaigns, DebiasedCtr(examination, CtrPrior()), config)
        self.index = index
        self.plan = plan
        self.candidates = candidates
        self.tally = AdTally()

    def page(self, session: Session, organic: Sequence[str], ts: float) -> list[PageEntry]:
        scores = dict(self.index.search(session.text, self.candidates))
        draws = np.random.default_rng([self.plan.seed, session.number, 9])  # the throttle's, per session
        winners = self.market.auction(scores, session.query, ts, draws.random, query=session.text)
        return merge_page(organic, winners, self.plan.k)

    def feedback(self, session: Session, page: Sequence[PageEntry], events: Sequence[UserEvent], ts: float) -> None:
        clicked = page_clicks(page, events)
        self.tally.add(page, clicked, self.market.feedback(page, clicked, session.query, ts))
