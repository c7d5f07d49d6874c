"""Count-based recommenders: popularity and item-to-item transitions (one pass, streamable).

Both fit on training sequences of item indices and score ALL items for a batch of users:
`score(histories) -> Tensor[B, n_items]` (float32, higher is better, history not masked).
The transition counts are the online learner's `TransitionCounts`, unbounded here; this
module only lays them out as one sparse matrix to score a batch against every item.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from models.online.counts import TransitionCounts

UNBOUNDED = 1 << 62  # max_neighbours that never prunes: a batch fit keeps every count


def item_counts(sequences: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    """[n_items] float64: how often each item occurs in `sequences`."""
    flat = np.concatenate([s for s in sequences if len(s)] or [np.zeros(0, np.int64)])
    return np.bincount(flat, minlength=n_items).astype(np.float64)


class Popularity:
    """Scores every item by its count in the training sequences (same row for every user)."""

    def __init__(self, n_items: int) -> None:
        self.n_items = n_items
        self.counts = np.zeros(n_items)

    def fit(self, sequences: Sequence[np.ndarray]) -> "Popularity":
        self.counts = item_counts(sequences, self.n_items)
        return self

    def score(self, histories: Sequence[np.ndarray]) -> torch.Tensor:
        row = torch.from_numpy(self.counts.astype(np.float32))
        return row.expand(len(histories), -1).clone()


def count_transitions(sequences: Sequence[np.ndarray], gaps: int = 1, reverse: bool = False) -> TransitionCounts:
    """Every transition of `sequences` (item indices) in the channels of `TransitionCounts`."""
    counts = TransitionCounts(UNBOUNDED, gaps, reverse)
    add = counts.add
    for sequence in sequences:
        items = sequence.tolist()
        # `add_sample` per position, without building each history slice (a tenth of the time)
        for g in range(1, gaps + 1):
            for a, b in zip(items, items[g:]):
                add(a, b, g - 1)
        if reverse:
            for a, b in zip(items, items[1:]):
                add(b, a, gaps)
    return counts


def channel_matrix(counts: TransitionCounts, channel: int, n_items: int) -> sp.csr_matrix:
    """[n_items, n_items] sparse count(a -> b) of one channel."""
    rows: list[int] = []
    cols: list[int] = []
    vals: list[int] = []
    for a, successors in counts.neighbours[channel].items():
        rows.extend([a] * len(successors))  # type: ignore[list-item]
        cols.extend(successors.keys())  # type: ignore[arg-type]
        vals.extend(successors.values())
    return sp.csr_matrix((np.array(vals, np.float64), (np.array(rows, np.int64), np.array(cols, np.int64))),
                         shape=(n_items, n_items))


def history_weights(histories: Sequence[np.ndarray], n_items: int, weights: Sequence[float]) -> sp.csr_matrix:
    """[B, n_items] sparse: weights[0] on each user's last item, weights[1] on the one before..."""
    rows, cols, vals = [], [], []
    for b, h in enumerate(histories):
        for j, w in enumerate(weights[: len(h)]):
            rows.append(b)
            cols.append(int(h[len(h) - 1 - j]))
            vals.append(w)
    return sp.csr_matrix((vals, (rows, cols)), shape=(len(histories), n_items))


@dataclass(frozen=True)
class TransitionConfig:
    """Defaults are the data README's baseline: last 3 items, weights 1, 0.5, 0.25,
    count(a->b) / sqrt(1 + count(a->.)), plus popularity (count / max count) * 1e-3,
    which only breaks ties (the smallest transition score is far above 1e-3 on real data).

    Extensions (off by default): `gaps` adds skip transitions (a -> item `g` steps later)
    with weight gap_decay**(g-1); `reverse` adds b -> a counts (what preceded) with that weight.
    """

    weights: tuple[float, ...] = (1.0, 0.5, 0.25)
    gaps: int = 1
    gap_decay: float = 0.5
    reverse: float = 0.0
    norm_power: float = 0.5
    popularity_weight: float = 1e-3


class Transition:
    """Item-to-item transition recommender (README baseline, optionally extended)."""

    def __init__(self, n_items: int, config: TransitionConfig | None = None) -> None:
        self.n_items = n_items
        self.config = config or TransitionConfig()
        self.matrix = sp.csr_matrix((n_items, n_items))
        self.popularity = np.zeros(n_items)

    def fit(self, sequences: Sequence[np.ndarray]) -> "Transition":
        c = self.config
        found = count_transitions(sequences, c.gaps, bool(c.reverse))
        counts = channel_matrix(found, 0, self.n_items)
        # the normaliser is the plain next-item out-degree count(a -> .), as in the README
        out_degree = np.asarray(counts.sum(axis=1)).ravel()
        for g in range(2, c.gaps + 1):
            counts = counts + c.gap_decay ** (g - 1) * channel_matrix(found, g - 1, self.n_items)
        if c.reverse:
            # the reverse channel holds count(b -> a) under b: the transpose of channel 0
            counts = counts + c.reverse * channel_matrix(found, c.gaps, self.n_items)
        norm = 1.0 / np.power(1.0 + out_degree, c.norm_power)
        self.matrix = sp.csr_matrix(sp.diags(norm) @ counts)
        counts = item_counts(sequences, self.n_items)
        # popularity scaled to [0, 1] so that `popularity_weight` only breaks ties
        self.popularity = counts / max(counts.max(initial=0.0), 1.0)
        return self

    def popularity_tensor(self) -> torch.Tensor:
        """[n_items] float32 popularity in [0, 1]."""
        return torch.from_numpy(self.popularity.astype(np.float32))

    def score(self, histories: Sequence[np.ndarray]) -> torch.Tensor:
        """[B, n_items] float32 transition scores plus the popularity tie-break."""
        w = history_weights(histories, self.n_items, self.config.weights)
        dense = np.asarray((w @ self.matrix).todense(), dtype=np.float64)
        dense += self.config.popularity_weight * self.popularity[None, :]
        return torch.from_numpy(dense.astype(np.float32))
