"""A sponsored-products campaign: which item it advertises, what a click is worth to it, where it runs.

Wire validation lives with the other records (`tables/wire/records.py`: `decode_campaign`);
this module holds the value and the pure questions asked of it (is it running, does it target
this query or category).
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True, slots=True)
class Campaign:
    campaign_id: str
    item_id: str  # the advertised product
    bid_per_click: float  # the most the advertiser pays for one click (currency units)
    daily_budget: float  # spend per UTC day the campaign must not pass by more than one click
    keywords: tuple[str, ...] = ()  # empty: every query
    categories: tuple[str, ...] = ()  # empty: every category
    start_ts: float = 0.0  # seconds since the epoch; runs in [start_ts, stop_ts)
    stop_ts: float = math.inf

    def is_running(self, ts: float) -> bool:
        return self.start_ts <= ts < self.stop_ts

    def targets(self, query: str | None = None, categories: Iterable[str] = ()) -> bool:
        """True when the keywords match `query` (a keyword's words appear in the query, in order)
        and the categories meet `categories`; an empty list targets everything."""
        if self.keywords and not (query and any(_phrase_in(k, query) for k in self.keywords)):
            return False
        if self.categories and not set(c.lower() for c in categories) & {c.lower() for c in self.categories}:
            return False
        return True

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"campaign_id": self.campaign_id, "item_id": self.item_id,
                               "bid_per_click": self.bid_per_click, "daily_budget": self.daily_budget}
        if self.keywords:
            out["keywords"] = list(self.keywords)
        if self.categories:
            out["categories"] = list(self.categories)
        if self.start_ts:
            out["start_ts"] = self.start_ts
        if math.isfinite(self.stop_ts):  # JSON has no infinity: an open end is left out
            out["stop_ts"] = self.stop_ts
        return out

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _phrase_in(keyword: str, query: str) -> bool:
    """Phrase match on whole words: 'drill bit' matches 'cordless drill bit set', not 'drills'."""
    needle, hay = _words(keyword), _words(query)
    n = len(needle)
    return n > 0 and any(hay[i : i + n] == needle for i in range(len(hay) - n + 1))
