"""BM25 over product text, with live `add` / `remove` of items.

Postings are per-term dicts {slot: term frequency}; a term's postings are compiled to numpy
arrays on first use after a change, so a query costs a few vector operations per term
whatever the catalog size. Removed items free their slot for the next added item.
"""
from __future__ import annotations

import math
import re
import time
from collections import Counter
from typing import Any
from collections.abc import Callable, Iterable, Sequence

import numpy as np

_NO_SLOTS = np.zeros(0, dtype=np.int64)  # a term no item holds (shared: read-only)
_NO_WEIGHTS = np.zeros(0, dtype=np.float32)
_NO_SLOTS.flags.writeable = _NO_WEIGHTS.flags.writeable = False
_TOKEN = re.compile(r"[a-z]+|\d+(?:\.\d+)?")
# Units and common spellings folded to one form ("in." / "inch" / "inches" -> "in").
_UNITS = {
    "inch": "in", "inches": "in", "in": "in",
    "foot": "ft", "feet": "ft", "ft": "ft",
    "gallon": "gal", "gallons": "gal", "gal": "gal",
    "pound": "lb", "pounds": "lb", "lbs": "lb", "lb": "lb",
    "ounce": "oz", "ounces": "oz", "oz": "oz",
    "volt": "v", "volts": "v", "watt": "w", "watts": "w",
    "sq": "sq", "square": "sq", "cu": "cu", "cubic": "cu",
    "amp": "a", "amps": "a", "mm": "mm", "cm": "cm",
}


def stem(word: str) -> str:
    """Light plural stemming: 'batteries' -> 'battery', 'boxes' -> 'box', 'doors' -> 'door'."""
    if word in _UNITS:
        return _UNITS[word]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "sses", "xes", "zes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Lowercase, split letters from digits and punctuation, fold units, stem plurals."""
    return [stem(t) for t in _TOKEN.findall(text.lower())]


def char_ngrams(text: str, n: int = 3) -> list[str]:
    """Character n-grams of each token padded with '#' ('drill' -> '#dr', 'dri', ..., 'll#').

    Misspelled queries ('drils', 'cieling') still share most n-grams with the title.
    """
    grams: list[str] = []
    for token in tokenize(text):
        padded = f"#{token}#"
        grams.extend(padded[i : i + n] for i in range(max(1, len(padded) - n + 1)))
    return grams


class BM25Index:
    """Okapi BM25 (k1, b) over items identified by string ids; `analyzer` maps text to terms."""

    def __init__(self, k1: float = 1.2, b: float = 0.75, analyzer: Callable[[str], list[str]] = tokenize):
        self.analyzer = analyzer
        self.k1 = k1
        self.b = b
        self._slot: dict[str, int] = {}
        self._ids: list[str | None] = []
        self._free: list[int] = []
        self._lengths = np.zeros(0, dtype=np.float32)
        self._terms: list[Counter[str]] = []
        self._postings: dict[str, dict[int, int]] = {}
        self._compiled: dict[str, tuple[np.ndarray, np.ndarray, float, np.ndarray]] = {}
        self._total_length = 0
        self._to_warm: list[str] = []  # terms `warm` has still to compile
        self._warm_at = -1  # `_edits` when `_to_warm` was listed
        self._edits = 0  # adds and removes so far

    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._slot

    @classmethod
    def build(cls, item_ids: Sequence[str], texts: Sequence[str], **kwargs: Any) -> "BM25Index":
        """An index holding every (id, text) pair."""
        index = cls(**kwargs)
        for item_id, text in zip(item_ids, texts):
            index.add(item_id, text)
        return index

    def add(self, item_id: str, text: str) -> None:
        """Index an item; an id already present is replaced (an upsert)."""
        if item_id in self._slot:
            self.remove(item_id)
        terms = Counter(self.analyzer(text))
        if self._free:
            slot = self._free.pop()
            self._ids[slot] = item_id
            self._terms[slot] = terms
        else:
            slot = len(self._ids)
            self._ids.append(item_id)
            self._terms.append(terms)
            if slot >= len(self._lengths):
                grown = np.zeros(max(1024, 2 * len(self._lengths)), dtype=np.float32)
                grown[: len(self._lengths)] = self._lengths
                self._lengths = grown
        self._slot[item_id] = slot
        self._edits += 1
        length = sum(terms.values())
        self._lengths[slot] = length
        self._total_length += length
        for term, tf in terms.items():
            self._postings.setdefault(term, {})[slot] = tf
            self._compiled.pop(term, None)

    def remove(self, item_id: str) -> bool:
        """Drop an item; returns False when it was not indexed."""
        slot = self._slot.pop(item_id, None)
        if slot is None:
            return False
        for term in self._terms[slot]:
            postings = self._postings[term]
            del postings[slot]
            if not postings:
                del self._postings[term]
            self._compiled.pop(term, None)
        self._edits += 1
        self._total_length -= int(self._lengths[slot])
        self._lengths[slot] = 0
        self._terms[slot] = Counter()
        self._ids[slot] = None
        self._free.append(slot)
        return True

    def _posting_arrays(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """Slots holding `term` and their BM25 term-frequency part at the current mean length.

        Cached per term until the term's postings or the mean length change: a query then
        costs one scatter-add per term (char 3-grams of common words have tens of
        thousands of postings). Only terms some item holds are cached, so the cache never
        holds more terms than the index does, whatever queries come.
        """
        postings = self._postings.get(term)
        if postings is None:
            return _NO_SLOTS, _NO_WEIGHTS
        avg = (self._total_length / len(self._slot) if self._slot else 0.0) or 1.0
        compiled = self._compiled.get(term)
        if compiled is None:
            slots = np.fromiter(postings.keys(), np.int64, len(postings))
            compiled = (slots, np.fromiter(postings.values(), np.float32, len(postings)), np.nan, slots)
        slots, tf, weighted_at, weights = compiled
        if weighted_at != avg:
            norm = self.k1 * (1.0 - self.b + self.b * self._lengths[slots] / avg)
            weights = tf * (self.k1 + 1.0) / (tf + norm)
            compiled = (slots, tf, avg, weights)
        self._compiled[term] = compiled
        return slots, weights

    def warm(self, budget_s: float) -> bool:
        """Compile posting arrays of terms no query has needed yet (or weighted at an older
        mean length), for up to `budget_s` seconds; True once every term is current.

        Building a term's arrays from its postings costs up to milliseconds (char 3-grams of
        common words), which the first query using it would otherwise pay: idle time pays it.
        """
        deadline = time.perf_counter() + budget_s
        if not self._to_warm:
            if self._warm_at == self._edits:
                return True
            self._warm_at = self._edits
            avg = (self._total_length / len(self._slot) if self._slot else 0.0) or 1.0
            self._to_warm = [t for t in self._postings if (c := self._compiled.get(t)) is None or c[2] != avg]
        while self._to_warm and time.perf_counter() < deadline:
            term = self._to_warm.pop()
            if term in self._postings:
                self._posting_arrays(term)
        return not self._to_warm and self._warm_at == self._edits

    def _idf(self, df: int) -> float:
        n = len(self._slot)
        return math.log(1.0 + (n - df + 0.5) / (df + 0.5))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every slot, [n_slots] float32 (free slots score 0)."""
        out = np.zeros(len(self._ids), dtype=np.float32)
        if not self._slot:
            return out
        for term, qtf in Counter(self.analyzer(query)).items():
            slots, weights = self._posting_arrays(term)
            if len(slots):
                out[slots] += np.float32(qtf * self._idf(len(slots))) * weights
        return out

    def coverage(self, query: str) -> np.ndarray:
        """Share of the query's distinct terms in each slot's text, [n_slots] float32 (0..1)."""
        out = np.zeros(len(self._ids), dtype=np.float32)
        terms = set(self.analyzer(query))
        for term in terms:
            if term in self._postings:
                out[self._posting_arrays(term)[0]] += 1.0
        return out / len(terms) if terms else out

    def search(self, query: str, k: int = 10) -> list[tuple[str, float]]:
        """The k best (item_id, score) pairs with a positive score, best first."""
        scores = self.scores(query)
        k = min(k, int((scores > 0).sum()))
        if k <= 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self._ids[s], float(scores[s])) for s in top]

    def lengths(self, slots: np.ndarray) -> np.ndarray:
        """Number of terms of the items in `slots` ([m] float32; 0 for -1)."""
        return np.where(slots >= 0, self._lengths[np.maximum(slots, 0)], 0.0).astype(np.float32)

    def slots(self, item_ids: Iterable[str]) -> np.ndarray:
        """Slot of each id ([m] int64), -1 for ids not indexed; indexes the array of `scores`."""
        return np.array([self._slot.get(i, -1) for i in item_ids], dtype=np.int64)

    def score_items(
        self, query: str, item_ids: Iterable[str], scores: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """BM25 score and query-term coverage (0..1) of given items, [m] float32 each.

        Unknown ids get 0. `scores` may pass `self.scores(query)` when the caller has it.
        """
        slots = self.slots(item_ids)
        bm25 = np.zeros(len(slots), dtype=np.float32)
        covered = np.zeros(len(slots), dtype=np.float32)
        if not self._slot:
            return bm25, covered
        scores = self.scores(query) if scores is None else scores
        known = slots >= 0
        bm25[known] = scores[slots[known]]
        covered[known] = self.coverage(query)[slots[known]]
        return bm25, covered
