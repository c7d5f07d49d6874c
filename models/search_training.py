"""Training loops for search: the query adapter (contrastive, full catalog) and the ranker.

Both use the graded listwise loss: the softmax over candidates is pulled towards the judged
products in proportion to `2^gain - 1`, the nDCG gain, so a product graded 3 counts three
times one graded 2 and unjudged products act as negatives.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from models.query_adapter import QueryAdapter, graded_softmax_loss
from models.search_ranker import Candidates, SearchRanker


@dataclass(frozen=True)
class Judged:
    """Judged catalog rows of one query: rows [J] int64 and gains [J] float (relevance - 1)."""

    rows: np.ndarray
    gains: np.ndarray


def gain_weights(gains: np.ndarray | torch.Tensor) -> torch.Tensor:
    """nDCG gain weights 2^g - 1, [J]."""
    return torch.pow(2.0, torch.as_tensor(gains, dtype=torch.float32)) - 1.0


def hard_negatives(queries: torch.Tensor, item_vecs: torch.Tensor, k: int, chunk: int = 512) -> list[np.ndarray]:
    """Top-k catalog rows of each query by cosine ([Q, D] x [N, D]): the negatives hardest to separate."""
    out: list[np.ndarray] = []
    for start in range(0, queries.shape[0], chunk):
        top = torch.topk(queries[start : start + chunk] @ item_vecs.T, min(k, item_vecs.shape[0]), dim=1).indices
        out.extend(row.numpy() for row in top)
    return out


def _columns(batch_rows: list[np.ndarray], n_items: int, negatives: int, gen: torch.Generator) -> torch.Tensor:
    """Catalog rows scored in one step: the batch's judged and hard rows plus `negatives` random rows."""
    if negatives <= 0 or negatives >= n_items:
        return torch.arange(n_items)
    random_rows = torch.randint(0, n_items, (negatives,), generator=gen)
    return torch.unique(torch.cat([torch.from_numpy(np.concatenate(batch_rows)), random_rows]))


def train_query_side(
    module: nn.Module,
    embed: Callable[[list[int]], torch.Tensor],
    judged: Sequence[Judged],
    item_vecs: torch.Tensor,
    epochs: int,
    batch_size: int = 256,
    lr: float = 5e-4,
    temperature: float = 0.05,
    max_steps: int | None = None,
    negatives: int = 8192,
    hard: Sequence[np.ndarray] | None = None,
    seed: int = 0,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Fit the trainable parameters of `module` with a graded softmax over sampled catalog rows.

    embed(query positions) -> [B, D] normalised query embeddings, differentiable through
    `module`; judged: one entry per query with catalog rows and gains; item_vecs: [N, D] frozen
    item embeddings. Each step scores the batch's judged rows, its `hard` negative rows (per
    query) and `negatives` random rows (0: the full catalog), shared by the batch; every scored
    row not judged for a query is a negative of that query. Queries without a positive gain
    are skipped. Returns the loss of each step.
    """
    keep = [i for i, j in enumerate(judged) if (j.gains > 0).any()]
    params = [p for p in module.parameters() if p.requires_grad]
    device = params[0].device
    items = item_vecs.to(device)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2)
    total = epochs * ((len(keep) + batch_size - 1) // batch_size)
    if max_steps is not None:
        total = min(total, max_steps)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(total, 1), pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    module.train()
    while len(losses) < total:
        order = torch.randperm(len(keep), generator=gen).tolist()
        for start in range(0, len(order), batch_size):
            if len(losses) >= total:
                break
            batch = [keep[i] for i in order[start : start + batch_size]]
            rows = [judged[q].rows for q in batch] + ([hard[q] for q in batch] if hard is not None else [])
            cols = _columns(rows, items.shape[0], negatives, gen)
            position = torch.full((items.shape[0],), -1, dtype=torch.long)
            position[cols] = torch.arange(len(cols))
            weights = torch.zeros(len(batch), len(cols))
            for b, q in enumerate(batch):
                weights[b, position[torch.from_numpy(judged[q].rows)]] = gain_weights(judged[q].gains)
            logits = embed(batch) @ items[cols.to(device)].T / temperature  # [B, C]
            loss = graded_softmax_loss(logits, weights.to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            if on_step is not None:
                on_step(len(losses), losses[-1])
    module.eval()
    return losses


def train_adapter(adapter: QueryAdapter, queries: torch.Tensor, judged: Sequence[Judged], item_vecs: torch.Tensor, epochs: int,
                  **kwargs: Any) -> list[float]:
    """`train_query_side` for the adapter over fixed pretrained query embeddings [Q, D]."""
    device = next(adapter.parameters()).device
    return train_query_side(adapter, lambda batch: adapter(queries[batch].to(device)), judged, item_vecs, epochs, **kwargs)


def candidate_targets(cands: Candidates, judged: Judged) -> torch.Tensor:
    """Gain weights 2^g - 1 of each candidate, [C] (0 for unjudged)."""
    weights = torch.zeros(len(cands.idx))
    pos = {int(r): float(w) for r, w in zip(judged.rows, gain_weights(judged.gains))}
    for c, row in enumerate(cands.idx):
        weights[c] = pos.get(int(row), 0.0)
    return weights


def train_ranker(
    ranker: SearchRanker,
    examples: Sequence[tuple[Candidates, torch.Tensor]],
    epochs: int = 300,
    lr: float = 1e-2,
    seed: int = 0,
) -> list[float]:
    """Fit the ranker on (candidates, gain weights [C]) per query, full batch; returns epoch losses.

    Queries whose candidates hold no positive weight carry no signal and are dropped.
    """
    examples = [(c, w) for c, w in examples if float(w.sum()) > 0]
    if not examples:
        return []
    torch.manual_seed(seed)
    width = max(len(c.idx) for c, _ in examples)
    n_feat = examples[0][0].features.shape[1]
    feats = torch.zeros(len(examples), width, n_feat)
    weights = torch.zeros(len(examples), width)
    valid = torch.zeros(len(examples), width, dtype=torch.bool)
    for i, (c, w) in enumerate(examples):
        feats[i, : len(c.idx)] = c.features
        weights[i, : len(c.idx)] = w
        valid[i, : len(c.idx)] = True
    ranker.fit_scaling(feats[valid])
    opt = torch.optim.Adam(ranker.parameters(), lr=lr, weight_decay=1e-4)
    losses = []
    ranker.train()
    for _ in range(epochs):
        logits = ranker(feats).masked_fill(~valid, float("-inf"))
        loss = graded_softmax_loss(logits, weights)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    ranker.eval()
    return losses
