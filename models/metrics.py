"""Ranking metrics: leave-one-out HR/NDCG for recommendation, graded nDCG and recall for search.

Recommendation (one held-out target per user): the target's rank is the number of candidate
items whose score is >= the target's, the target itself excluded, so ties count AGAINST the
target (it ranks after every item with an equal score). Masked items (the user's history)
get -inf and never outrank anything; the target itself is never masked, even when it also
occurs earlier in the history (repeat consumption), so it always stays rankable.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Hashable

import numpy as np
import torch

DEFAULT_KS: tuple[int, ...] = (5, 10, 20)


def mask_scores(scores: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Set scores[rows[j], cols[j]] to -inf in place and return `scores`.

    scores: [B, N] float; rows, cols: [M] long (row index in the batch, item index).
    """
    if rows.numel():
        scores[rows, cols] = float("-inf")
    return scores


def target_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """0-based rank of each target among all columns, ties counted against the target.

    scores: [B, N] float (masked entries are -inf); targets: [B] long item indices.
    Returns [B] long (see `ranks_among`).
    """
    if scores.dim() != 2 or targets.dim() != 1 or scores.shape[0] != targets.shape[0]:
        raise ValueError(f"need scores [B, N] and targets [B], got {tuple(scores.shape)} and {tuple(targets.shape)}")
    return ranks_among(scores.gather(1, targets.view(-1, 1)).squeeze(1), [scores])


def ranks_among(target_scores: torch.Tensor, shards: Sequence[torch.Tensor]) -> torch.Tensor:
    """0-based ranks of targets whose scores are among the columns of `shards`: the rank rule, once.

    target_scores: [B]; shards: column blocks [B, n_s] of one score matrix, on any devices.
    Returns [B] long on target_scores' device: the number of OTHER columns with a score >= the
    target's (ties count against the target); a target scored -inf or NaN ranks last.
    """
    at_least = torch.full(target_scores.shape, -1, dtype=torch.long, device=target_scores.device)  # not itself
    for shard in shards:
        at_least += (shard >= target_scores.to(shard.device).unsqueeze(1)).sum(dim=1).to(at_least.device)
    last = sum(shard.shape[1] for shard in shards) - 1
    bad = torch.isnan(target_scores) | (target_scores == float("-inf"))
    return torch.where(bad, torch.full_like(at_least, last), at_least)


def hr_at_k(ranks: torch.Tensor | np.ndarray, k: int) -> float:
    """Hit rate: share of users whose target has 0-based rank < k. ranks: [U]."""
    r = torch.as_tensor(ranks)
    return float((r < k).double().mean()) if r.numel() else 0.0


def ndcg_at_k_ranks(ranks: torch.Tensor | np.ndarray, k: int) -> float:
    """NDCG@k with one relevant item: mean of 1/log2(rank + 2) for ranks < k, else 0. ranks: [U]."""
    r = torch.as_tensor(ranks).double()
    if not r.numel():
        return 0.0
    gain = torch.where(r < k, 1.0 / torch.log2(r + 2.0), torch.zeros_like(r))
    return float(gain.mean())


def rank_metrics(ranks: torch.Tensor | np.ndarray | Sequence[int | None], ks: Sequence[int] = DEFAULT_KS
                 ) -> dict[str, float]:
    """{"HR@k": ..., "NDCG@k": ...} for every k (HR keys first). ranks: [U] 0-based; None (a
    target the model does not know) is a miss."""
    if not isinstance(ranks, (torch.Tensor, np.ndarray)):
        ranks = torch.tensor([float("inf") if r is None else float(r) for r in ranks], dtype=torch.float64)
    out = {f"HR@{k}": hr_at_k(ranks, k) for k in ks}
    out.update({f"NDCG@{k}": ndcg_at_k_ranks(ranks, k) for k in ks})
    return out


def batch_ranks(
    scores: torch.Tensor, targets: torch.Tensor, history: Sequence[Iterable[int]]
) -> torch.Tensor:
    """Mask each row's history (the target excepted) and return target ranks.

    scores: [B, N] float, modified in place; targets: [B] long; history: B iterables of
    item indices. Returns [B] long 0-based ranks, ties against the target.
    """
    rows: list[int] = []
    cols: list[int] = []
    for b, items in enumerate(history):
        t = int(targets[b])
        for i in items:
            if i != t:
                rows.append(b)
                cols.append(int(i))
    mask_scores(scores, torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long))
    return target_ranks(scores, targets)


# ---- graded relevance (search) ----------------------------------------------------------

def dcg(gains: Sequence[float]) -> float:
    """Sum over positions i (0-based) of (2^g - 1) / log2(i + 2)."""
    return sum((2.0 ** g - 1.0) / math.log2(i + 2) for i, g in enumerate(gains))


def ndcg_at_k(ranked_ids: Sequence[Hashable], gains: Mapping[Any, float], k: int) -> float:
    """nDCG@k with gain 2^g - 1 and log2 discount; unjudged ids have gain 0.

    The ideal DCG uses the k best of ALL judged gains, retrieved or not. Returns 0.0 when no
    judged gain is positive. Duplicate ids in `ranked_ids` count once (first position).
    """
    if k <= 0:
        raise ValueError("k must be positive")
    seen: set[Hashable] = set()
    got: list[float] = []
    for item in ranked_ids:
        if len(got) == k:
            break
        if item in seen:
            continue
        seen.add(item)
        got.append(float(gains.get(item, 0.0)))
    ideal = dcg(sorted((float(g) for g in gains.values()), reverse=True)[:k])
    return dcg(got) / ideal if ideal > 0 else 0.0


def recall_at_k(ranked_ids: Sequence[Hashable], relevant: set[Any] | frozenset[Any], k: int) -> float:
    """Share of `relevant` found in the first k ranked ids; 0.0 when `relevant` is empty."""
    if k <= 0:
        raise ValueError("k must be positive")
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked_ids[:k])) / len(relevant)
