"""Read-only click model for serving: each item's position-free attractiveness, learned online.

Built from the click part of the learner's versions (rows, impression/click counts, dense
weights, ad counts) and moved forward copy-on-write like ServingRecModel. Search adds it to
its ranking, so results people click more than their position explains move up; sponsored
slots price by `ad_ctr`.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING

import math

import torch

from models.ads.ctr import AdClickCounts, CtrPrior, click_model_ctr

if TYPE_CHECKING:
    from models.online.versions import Version

Id = Hashable
AD_CTR_MEMO = 50_000  # (context, item) pCTRs a version remembers: ~3 MB (tracemalloc, 1 or 5,000 contexts)


class ServingClickModel:
    def __init__(self, logit: dict[Id, float], stats: dict[Id, tuple[float, float]],
                 weights: torch.Tensor, bias: float, position_bias: Sequence[float] = (),
                 ad_counts: AdClickCounts | None = None) -> None:
        self.logit = logit  # per item: the sum of its row (its learned attractiveness)
        self.stats = stats  # per item: (impressions, clicks)
        self.weights = weights  # [2] over log1p(impressions), smoothed CTR
        self.bias = bias
        # Per slot (logits, top first): how much less a lower slot is looked at. Sponsored
        # slots price by it (models/ads/ctr.py: the top slot's probability, examination per slot).
        self.position_bias = list(position_bias)
        self.ad_counts = ad_counts if ad_counts is not None else AdClickCounts()
        w0, w1 = (float(w) for w in weights)
        self._feature_weights = (w0, w1)  # read once: a tensor's elements are slow to read per call
        # `ad_ctr`'s answers, per context then item: this version's estimate of a pair never
        # changes, and a gateway prices the same advertised items on page after page. A dict per
        # context of floats, which the cyclic GC does not track; bounded by AD_CTR_MEMO entries.
        self._ad_ctr_memo: dict[str, dict[Id, float]] = {}
        self._ad_ctr_memo_size = 0
        self._ad_ctr_prior: CtrPrior | None = None

    @classmethod
    def empty(cls) -> "ServingClickModel":
        return cls({}, {}, torch.zeros(2), -1.0)

    def apply(self, version: "Version") -> "ServingClickModel":
        """This model with the version's click delta applied (this object is left unchanged);
        a full version replaces everything."""
        logit = {} if version.full else dict(self.logit)
        stats = {} if version.full else dict(self.stats)
        if version.click_row_ids:
            sums = version.click_rows.float().sum(dim=1).tolist()
            counts = version.click_stats.float().tolist()
            for key, s, (impressions, clicks) in zip(version.click_row_ids, sums, counts):
                logit[key] = s
                stats[key] = (impressions, clicks)
        dense = version.click_dense
        weights = dense["feature_weight"].float().clone() if "feature_weight" in dense else self.weights
        bias = float(dense["bias"]) if "bias" in dense else self.bias
        position_bias = dense["position_bias"].float().tolist() if "position_bias" in dense else self.position_bias
        ads = self.ad_counts.replaced(version.ad_keys, version.ad_counts.tolist(), version.ad_evicted, version.full)
        return ServingClickModel(logit, stats, weights, bias, position_bias, ads)

    def probabilities(self, item_ids: Sequence[Id]) -> list[float]:
        """Each item's click probability at a slot without position bias; 0 for items never shown.

        Plain floats: a search nudges its tens of hits and an ad page prices a few, and setting
        a tensor's elements one by one cost 60 us for 50 items where this costs 1."""
        w0, w1 = self._feature_weights
        stats, logit, bias = self.stats, self.logit, self.bias
        out = [0.0] * len(item_ids)
        for i, key in enumerate(item_ids):
            seen = stats.get(key)
            if seen is not None:
                impressions, clicks = seen
                z = logit.get(key, 0.0) + w0 * math.log1p(impressions) + w1 * (clicks + 1) / (impressions + 2) + bias
                out[i] = 1.0 / (1.0 + math.exp(-z))
        return out

    def ad_ctr(self, item_ids: Sequence[Id], context: str, prior: CtrPrior) -> list[float]:
        """Each item's top-slot pCTR on a page about `context` (`page_context`): the model's
        estimate moved by the item's clicks over examinations, then by the pair's. Remembered
        (up to AD_CTR_MEMO pairs, then forgotten all at once) for the same `prior`."""
        if prior is not self._ad_ctr_prior or self._ad_ctr_memo_size >= AD_CTR_MEMO:
            self._ad_ctr_memo, self._ad_ctr_memo_size, self._ad_ctr_prior = {}, 0, prior
        memo = self._ad_ctr_memo.get(context)
        if memo is None:
            memo = self._ad_ctr_memo[context] = {}
        missing = [item for item in dict.fromkeys(item_ids) if item not in memo]  # once each: the size counts pairs
        if missing:
            memo.update(zip(missing, self._ad_ctr(missing, context, prior)))
            self._ad_ctr_memo_size += len(missing)
        return [memo[item] for item in item_ids]

    def _ad_ctr(self, item_ids: Sequence[Id], context: str, prior: CtrPrior) -> list[float]:
        top = self.position_bias[0] if self.position_bias else 0.0
        predict = self.ad_counts.predict
        return [predict(item, context, click_model_ctr(r, top), prior)
                for item, r in zip(item_ids, self.probabilities(item_ids))]

    def relevance(self, item_ids: Sequence[Id]) -> torch.Tensor:
        """[n] `probabilities` as a tensor, as the learner's click model answers."""
        return torch.tensor(self.probabilities(item_ids), dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.stats)
