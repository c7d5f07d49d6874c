"""The sponsored-slot auction: eligibility, ranking by expected revenue, generalised second price, the page.

An ad's expected revenue per impression is pCTR x bid, pCTR being its position-free click
probability (at the top slot). Click probability is taken as separable (the ad's pCTR times
the slot's examination), so ranking by pCTR x bid fills every slot best, and the generalised
second price (each winner pays the least bid that keeps its rank: the next ad's pCTR x bid over
its own pCTR) makes bidding one's true value per click safe enough. A baseline that ranks by
bid alone is the same auction with every pCTR set to 1.

`pctr_exponent` (a) squashes the pCTR in the ranking and the second price: ads rank by
pCTR^a x bid and the winner pays the next ad's pCTR^a x bid over its own pCTR^a (a = 1: expected
revenue; a = 0: bid alone). The reserves stay in true pCTR x bid: squashing moves no ad past them.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple


class AdCandidate(NamedTuple):  # tuples: a gateway makes some an answer, at a third of a frozen dataclass's cost
    campaign_id: str
    item_id: str
    bid: float  # bid per click
    pctr: float  # position-free click probability, 0..1
    relevance: float  # fit of the item to the page, 0..1 (`relative_relevance`)


@dataclass(frozen=True)
class AuctionConfig:
    slots: tuple[int, ...] = (0, 4)  # 0-based page positions sponsored items may take
    max_ads: int = 2
    reserve: float = 0.05  # least price per click; lower bids never run
    relevance_floor: float = 0.8  # least relevance an ad's item needs to be shown on a page
    # Least expected revenue per impression (pCTR x bid) an ad needs; it pays at least this over
    # its pCTR per click. Keeps ads few shoppers click off the page, and prices them by it.
    min_expected_revenue: float = 0.1
    pctr_exponent: float = 1.0  # ranking score pCTR^a x bid (squashing); 1: expected revenue
    # The slots a page's ads take, in order: the first max_ads of `slots`, sorted (set by __post_init__).
    page_slots: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "page_slots", tuple(sorted(self.slots)[: max(self.max_ads, 0)]))
        if not self.slots or any(s < 0 for s in self.slots) or len(set(self.slots)) != len(self.slots):
            raise ValueError(f"slots must be distinct non-negative positions, got {self.slots}")
        if self.max_ads < 0 or not self.reserve >= 0 or not self.min_expected_revenue >= 0:
            raise ValueError("max_ads, reserve and min_expected_revenue must be >= 0")
        if not 0 <= self.relevance_floor <= 1:
            raise ValueError(f"relevance_floor must be in [0, 1], got {self.relevance_floor}")
        if not (0 <= self.pctr_exponent and math.isfinite(self.pctr_exponent)):
            raise ValueError(f"pctr_exponent must be finite and >= 0, got {self.pctr_exponent}")


class AdWinner(NamedTuple):
    campaign_id: str
    item_id: str
    position: int  # 0-based page position
    bid: float
    pctr: float
    price: float  # charged per click: reserve <= price <= bid


class PageEntry(NamedTuple):  # a tuple: a page makes ten per answer, at half a frozen dataclass's cost
    item_id: str
    sponsored: bool = False
    campaign_id: str | None = None
    price: float | None = None  # per click, sponsored entries only


def relative_relevance(scores: Mapping[str, float]) -> dict[str, float]:
    """Each candidate's score over the best one (0..1): a floor that holds whatever scale the
    searcher's scores have. Items the searcher did not return have no relevance at all."""
    best = max(scores.values(), default=0.0)
    if not best > 0:
        return {}
    return {item: max(score, 0.0) / best for item, score in scores.items()}


def eligible(candidates: Iterable[AdCandidate], config: AuctionConfig) -> list[AdCandidate]:
    """Candidates above the relevance floor that can pay the reserve and might be clicked."""
    return [c for c in candidates
            if c.relevance >= config.relevance_floor and c.bid >= config.reserve
            and math.isfinite(c.bid) and 0 < c.pctr <= 1 and c.pctr * c.bid >= config.min_expected_revenue]


def rank_score(candidate: AdCandidate, exponent: float = 1.0) -> float:
    """What the auction ranks by: pCTR^exponent x bid (exponent 1: expected revenue per impression)."""
    return candidate.pctr ** exponent * candidate.bid


def rank_ads(candidates: Iterable[AdCandidate], exponent: float = 1.0) -> list[AdCandidate]:
    """Best score (`rank_score`) first; ties go to the higher bid, then the campaign id (so every
    replica ranks alike). Only an item's best campaign stays: an item is shown once a page."""
    ordered = sorted(candidates, key=lambda c: (-rank_score(c, exponent), -c.bid, c.campaign_id))
    if len(ordered) < 2:
        return ordered
    seen: set[str] = set()
    out = []
    for c in ordered:
        if c.item_id not in seen:
            seen.add(c.item_id)
            out.append(c)
    return out


def gsp_price(winner: AdCandidate, runner_up: AdCandidate | None, config: AuctionConfig) -> float:
    """The least bid that keeps `winner` above `runner_up` and both reserves, at most its own bid."""
    floor = max(config.reserve, config.min_expected_revenue / winner.pctr)
    a = config.pctr_exponent
    needed = rank_score(runner_up, a) / winner.pctr ** a if runner_up is not None else 0.0
    return min(max(needed, floor), winner.bid)


def run_auction(candidates: Iterable[AdCandidate], config: AuctionConfig) -> list[AdWinner]:
    """Winners in slot order (best ad in the first slot), each with its second price."""
    ranked = rank_ads(eligible(candidates, config), config.pctr_exponent)
    slots = config.page_slots
    winners = []
    for i, (ad, position) in enumerate(zip(ranked, slots)):
        runner_up = ranked[i + 1] if i + 1 < len(ranked) else None
        winners.append(AdWinner(ad.campaign_id, ad.item_id, position, ad.bid, ad.pctr,
                                gsp_price(ad, runner_up, config)))
    return winners


def page_order(organic: Sequence[str], winners: Sequence[AdWinner], k: int) -> list[str | AdWinner]:
    """Up to k results: each ad (the winner itself) at its slot, organic items around them in order.

    An advertised item is shown once, as the ad: its organic copy is dropped and the results
    below move up. When the organic list runs short, later ads close up behind it.
    """
    advertised = {w.item_id for w in winners}
    rest = [item for item in dict.fromkeys(organic) if item not in advertised]
    page: list[str | AdWinner] = []
    taken = 0  # organic results placed so far
    for ad in sorted(winners, key=lambda w: w.position) if len(winners) > 1 else winners:
        if len(page) >= k:
            break
        above = rest[taken : taken + max(0, min(ad.position, k) - len(page))]  # short: the ad closes up
        page += above
        taken += len(above)
        if len(page) < k:
            page.append(ad)
    page += rest[taken : taken + k - len(page)]
    return page


def merge_page(organic: Sequence[str], winners: Sequence[AdWinner], k: int) -> list[PageEntry]:
    """`page_order` as page entries (the gateway reads `page_order` itself: no entry per result)."""
    return [PageEntry(x.item_id, True, x.campaign_id, x.price) if isinstance(x, AdWinner) else PageEntry(x)
            for x in page_order(organic, winners, k)]
