"""Sponsored slots for one page and what follows its clicks: campaigns, today's spend, a pCTR estimator.

What the online half keeps in tables (campaigns, spend per campaign and day) this holds in
dicts, so the offline evaluation and the replay run the very rules the gateway will: the
relevance floor, targeting, pacing, the auction, charging at most one click past a budget.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from models.ads.auction import AdCandidate, AdWinner, AuctionConfig, PageEntry, relative_relevance, run_auction
from models.ads.campaigns import Campaign
from models.ads.ctr import AdCtr
from models.ads.pacing import PacingConfig, charge_for_click, day_fraction, day_start, enters_auction, pacing_probability

# The click model's top-slot click probability of each item (None: unknown), asked once a page.
ModelCtr = Callable[[Sequence[str]], Sequence[float | None]]


class SpendLedger:
    """Spend per (campaign, UTC day); charging follows `charge_for_click`."""

    def __init__(self) -> None:
        self._spend: dict[tuple[str, float], float] = {}

    def spent(self, campaign_id: str, ts: float) -> float:
        return self._spend.get((campaign_id, day_start(ts)), 0.0)

    def charge(self, campaign: Campaign, price: float, ts: float) -> float:
        """Charge one click at `ts`; returns the amount charged (0 once the day's budget is spent)."""
        key = (campaign.campaign_id, day_start(ts))
        spent = self._spend.get(key, 0.0)
        amount = charge_for_click(spent, campaign.daily_budget, price)
        self._spend[key] = spent + amount
        return amount

    def items(self) -> Iterator[tuple[str, float, float]]:
        """(campaign id, day start, spend) for every campaign-day charged so far."""
        return ((cid, day, spend) for (cid, day), spend in self._spend.items())


class AdMarket:
    def __init__(self, campaigns: Iterable[Campaign], ctr: AdCtr, config: AuctionConfig | None = None,
                 pacing: PacingConfig | None = None) -> None:
        self.campaigns = {c.campaign_id: c for c in campaigns}
        self.by_item: dict[str, list[Campaign]] = defaultdict(list)
        for c in self.campaigns.values():
            self.by_item[c.item_id].append(c)
        self.ctr = ctr
        self.config = config or AuctionConfig()
        self.pacing = pacing or PacingConfig()
        self.ledger = SpendLedger()

    def _running(self, campaign: Campaign, ts: float, query: str | None, categories: Sequence[str],
                 draw: Callable[[], float]) -> bool:
        if not campaign.is_running(ts) or not campaign.targets(query, categories):
            return False
        spent = self.ledger.spent(campaign.campaign_id, ts)
        return enters_auction(pacing_probability(spent, campaign.daily_budget, day_fraction(ts), self.pacing), draw())

    def candidates(self, scores: Mapping[str, float], context: str, ts: float, draw: Callable[[], float],
                   query: str | None = None, categories: Sequence[str] = (),
                   model_ctr: ModelCtr | None = None) -> list[AdCandidate]:
        """Campaigns of the page's candidates (`scores`: the searcher's or recommender's) that pass
        the relevance floor, target the page, run now and pass pacing; each with its pCTR."""
        relevance = relative_relevance(scores)
        entered = [(c, r) for item, r in relevance.items() if r >= self.config.relevance_floor
                   for c in self.by_item.get(item, ()) if self._running(c, ts, query, categories, draw)]
        known: Sequence[float | None] = model_ctr([c.item_id for c, _ in entered]) if model_ctr and entered else ()
        return [AdCandidate(c.campaign_id, c.item_id, c.bid_per_click,
                            self.ctr.predict(c.item_id, context, known[i] if known else None), r)
                for i, (c, r) in enumerate(entered)]

    def auction(self, scores: Mapping[str, float], context: str, ts: float, draw: Callable[[], float],
                query: str | None = None, categories: Sequence[str] = (),
                model_ctr: ModelCtr | None = None) -> list[AdWinner]:
        return run_auction(self.candidates(scores, context, ts, draw, query, categories, model_ctr), self.config)

    def feedback(self, page: Sequence[PageEntry], clicked: Sequence[bool], context: str, ts: float) -> float:
        """Learn from every entry shown and charge the sponsored ones' clicks; returns what was charged.

        Organic entries teach the pCTR too: how often shoppers click an item for a query, once
        its slot is accounted for, is what an ad for it will get before it ever runs."""
        charged = 0.0
        for position, (entry, hit) in enumerate(zip(page, clicked)):
            self.ctr.observe(entry.item_id, context, position, hit)
            if hit and entry.sponsored and entry.campaign_id is not None and entry.price is not None:
                charged += self.ledger.charge(self.campaigns[entry.campaign_id], entry.price, ts)
        return charged

    def overspend(self, since: float = float("-inf")) -> float:
        """Spend past the daily budgets, summed over campaign-days starting at or after `since`."""
        return sum(max(0.0, spend - self.campaigns[cid].daily_budget)
                   for cid, day, spend in self.ledger.items() if day >= since)

    def spend(self, since: float = float("-inf")) -> float:
        return sum(spend for _, day, spend in self.ledger.items() if day >= since)
