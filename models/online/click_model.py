"""Position-debiased click model learned online from impressions.

logit = pos_bias[min(position, P - 1)] + sum(item row) + v . [log1p(impressions), smoothed CTR]
The item row (a small sparse store row, summed) and the item's counters capture how
attractive an item is; the position bias absorbs how much a slot is looked at, so
`relevance` (the logit without it) can be used by a ranker. It also counts clicks over
examinations per (item, page context) (`ad_counts`, models/ads/ctr.py): an ad's pCTR for one
query, which no per-item logit can give.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from models.ads.ctr import AdClickCounts, examination_from_position_bias, page_context
from models.embedding_store import EmbeddingStore, StoreConfig, gradient_of
from models.online.row_stats import RowStats

Id = Hashable


class ClickSample(NamedTuple):
    user_id: Id
    item_id: Id
    position: int  # 0 = top slot
    label: int  # 1 clicked, 0 shown and not clicked
    query: str | None = None


@dataclass(frozen=True)
class OnlineClickConfig:
    positions: int = 20  # P: positions at or beyond P - 1 share one bias
    dim: int = 1
    num_shards: int = 0
    capacity: int = 100_000
    min_count: int = 1
    row_lr: float = 0.05
    dense_lr: float = 0.01
    seed: int = 0
    ad_pair_capacity: int = 100_000  # (item, page context) click counts kept (`AdClickCounts`)


class ClickDense(nn.Module):
    """Position biases [P] and logistic weights over the item's counter features [2]."""

    def __init__(self, positions: int) -> None:
        super().__init__()
        self.position_bias = nn.Parameter(torch.zeros(positions))
        self.feature_weight = nn.Parameter(torch.zeros(2))
        self.bias = nn.Parameter(torch.tensor(-1.0))


class OnlineClickModel:
    """Score (progressive: before learning) and learn micro-batches of ClickSamples."""

    def __init__(self, config: OnlineClickConfig | None = None, devices: list[torch.device] | None = None) -> None:
        self.config = config or OnlineClickConfig()
        c = self.config
        self.store = EmbeddingStore(StoreConfig(dim=c.dim, num_shards=c.num_shards, capacity=c.capacity,
                                                min_count=c.min_count, init_std=0.0, seed=c.seed), devices)
        self.stats = RowStats(self.store, 2)  # impressions, clicks
        self.dense = ClickDense(c.positions).to(self.store.output_device)
        self.optimizer = torch.optim.AdamW(self.dense.parameters(), lr=c.dense_lr, weight_decay=0.0)
        self.changed_items: set[Id] = set()
        self.ad_counts = AdClickCounts(c.ad_pair_capacity)
        self.samples_learned = 0

    def _features(self, items: Sequence[Id]) -> torch.Tensor:
        """[n, 2]: log1p(impressions) and (clicks + 1) / (impressions + 2), as seen so far."""
        counts = self.stats.get(items)
        return torch.stack([torch.log1p(counts[:, 0]), (counts[:, 1] + 1) / (counts[:, 0] + 2)], dim=1)

    def _relevance_logits(self, items: Sequence[Id], rows: torch.Tensor) -> torch.Tensor:
        return rows.sum(dim=1) + self._features(items) @ self.dense.feature_weight + self.dense.bias

    def _logits(self, samples: Sequence[ClickSample], rows: torch.Tensor) -> torch.Tensor:
        last = self.config.positions - 1
        slots = torch.tensor([min(max(s.position, 0), last) for s in samples], device=rows.device)
        return self.dense.position_bias[slots] + self._relevance_logits([s.item_id for s in samples], rows)

    def score_batch(self, samples: Sequence[ClickSample]) -> torch.Tensor:
        """[n] click probabilities, without learning."""
        with torch.no_grad():
            rows = self.store.lookup([s.item_id for s in samples], admit=False)
            return torch.sigmoid(self._logits(samples, rows))

    def relevance(self, item_ids: Sequence[Id]) -> torch.Tensor:
        """[n] position-free attractiveness: click probability at a slot with zero position bias."""
        with torch.no_grad():
            rows = self.store.lookup(list(item_ids), admit=False)
            return torch.sigmoid(self._relevance_logits(list(item_ids), rows))

    def learn(self, samples: Sequence[ClickSample]) -> float:
        """One log-loss step (AdamW dense, Adagrad rows), then count the impressions (and each
        one's examination per page context, by the position biases after the step)."""
        samples = list(samples)
        if not samples:
            return 0.0
        items = [s.item_id for s in samples]
        self.stats.admit(items)
        rows = self.store.lookup(items, admit=False).requires_grad_()
        labels = torch.tensor([float(s.label) for s in samples], device=rows.device)
        loss = F.binary_cross_entropy_with_logits(self._logits(samples, rows), labels)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.store.apply_gradients(items, gradient_of(rows), self.config.row_lr)
        self.stats.add(items, torch.stack([torch.ones(len(samples)), labels.cpu()], dim=1))
        self.changed_items.update(items)
        examination = examination_from_position_bias(self.dense.position_bias.detach().cpu().tolist())
        last = len(examination) - 1
        contexts: dict[str | None, str] = {}  # a page's samples share its query: normalised once
        self.ad_counts.add_all(
            (s.item_id, contexts.get(s.query) or contexts.setdefault(s.query, page_context(s.query)),
             examination[min(max(s.position, 0), last)], float(s.label)) for s in samples)
        self.samples_learned += len(samples)
        return float(loss.detach())
