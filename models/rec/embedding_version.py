"""A servable recommender version: item vectors, a user vector pooled from recent items.

The exchange format between whatever trains item representations (the offline model, the
online learner) and the serving processes: a checkpoint with tensor `item_vectors` [N, D]
and the card's `item_ids` (N strings, row order). Immutable once built, so a serving
process swaps whole versions by replacing one reference.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from models.ranker import RankRequest

NAME = "rec-embeddings"
RECENCY_WEIGHTS = (1.0, 0.7, 0.5, 0.35, 0.25)
# weights of the last 1..5 known items, normalised: a user vector is one small product
_POOLING = [np.zeros(0, np.float32)] + [np.array(RECENCY_WEIGHTS[:n], np.float32) / sum(RECENCY_WEIGHTS[:n])
                                        for n in range(1, len(RECENCY_WEIGHTS) + 1)]


@dataclass(frozen=True)
class EmbeddingRecVersion:
    version: str
    item_ids: tuple[str, ...]
    vectors: torch.Tensor  # [N, D] float32, rows L2-normalised
    index: dict[str, int] = field(default_factory=dict, compare=False)
    _matrix: np.ndarray = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.vectors.shape[0] != len(self.item_ids):
            raise ValueError(f"{len(self.item_ids)} ids for {self.vectors.shape[0]} vectors")
        self.index.update({item: row for row, item in enumerate(self.item_ids)})
        object.__setattr__(self, "_matrix", self.vectors.detach().numpy())  # the same memory, for numpy's BLAS

    @classmethod
    def build(cls, version: str, item_ids: Sequence[str], vectors: torch.Tensor) -> "EmbeddingRecVersion":
        v = torch.nn.functional.normalize(vectors.detach().float().cpu(), dim=1)
        return cls(version=version, item_ids=tuple(item_ids), vectors=v)

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint | str) -> "EmbeddingRecVersion":
        ck = load_checkpoint(checkpoint) if not isinstance(checkpoint, Checkpoint) else checkpoint
        name = ck.card.get("name", NAME)
        return cls.build(f"{name}-v{ck.version}", ck.card["item_ids"], ck.tensors["item_vectors"])

    def save(self, model_dir: Path | str, card: dict[str, Any]) -> str:
        return str(save_checkpoint(model_dir, NAME, {"item_vectors": self.vectors},
                                   {**card, "item_ids": list(self.item_ids)}))

    def _recent_rows(self, history: Sequence[str]) -> list[int]:
        """Rows of the user's last known items, newest first (at most len(RECENCY_WEIGHTS))."""
        rows: list[int] = []
        for item in reversed(history):
            row = self.index.get(item)
            if row is not None:
                rows.append(row)
                if len(rows) == len(RECENCY_WEIGHTS):
                    break
        return rows

    def rank(
        self, history: Sequence[str], k: int, exclude: Iterable[str] = (),
        allow: Callable[[str], bool] | None = None,
    ) -> list[tuple[str, float]]:
        """Top `k` (item, cosine) for the user; [] when no item of the history is known."""
        return self.rank_many([(history, k, exclude, allow)])[0]

    def rank_many(self, requests: Sequence[RankRequest]) -> list[list[tuple[str, float]]]:
        """`rank` for several users at once: one matrix product over the items instead of one
        per user (what a serving process gains from batching requests that arrive together).

        Each user gets what `rank` alone would give: the same top scores, the same filters (a
        user whose filters leave too few items is searched deeper on their own row). Exact:
        one float32 pass in numpy. For the shapes served here (1-8 users against ~10^4 x 64)
        it beats torch and the int8 pass of search (`models.dense_index`), whose quantising
        costs more than the bytes it saves; see bench/retrieval.py. (numpy runs one BLAS
        thread: see app/__init__.py.)
        """
        if not requests:
            return []
        found = [self._recent_rows(history) for history, *_ in requests]
        known = [b for b, rows in enumerate(found) if rows]
        if not known:
            return [[] for _ in requests]
        vectors = self._matrix
        # each user: the recency-weighted mean of the vectors of their last known items
        users = np.stack([_POOLING[len(found[b])] @ vectors[found[b]] for b in known])
        return rank_by_users(self.item_ids, self.index, vectors, requests, known, users)


def rank_by_users(item_ids: Sequence[str], index: dict[str, int], vectors: np.ndarray,
                  requests: Sequence[RankRequest], known: list[int], users: np.ndarray,
                  log_softmax: bool = False) -> list[list[tuple[str, float]]]:
    """Each request's ranking by its user vector (`users[j]` for request `known[j]`; the
    others get []): scores `vectors @ user` (with `log_softmax`, log-probabilities over every
    item), its excluded items masked, its filter applied (a row whose filter leaves too few
    items is searched deeper on its own)."""
    out: list[list[tuple[str, float]]] = [[] for _ in requests]
    if not known:
        return out
    scores = np.ascontiguousarray((vectors @ np.ascontiguousarray(users.T)).T)  # [B, N]
    if log_softmax:
        top = scores.max(axis=1, keepdims=True)
        scores -= top + np.log(np.exp(scores - top).sum(axis=1, keepdims=True))
    # Excluded items (a user's history: up to 50) are masked before the top-k, so it
    # needs no room for them: k rows, or 4k with a filter.
    for j, b in enumerate(known):
        rows = [row for item in set(requests[b][2]) if (row := index.get(item)) is not None]
        scores[j, rows] = -np.inf
    total = len(item_ids)
    n = min(total, max(requests[b][1] * (1 if requests[b][3] is None else 4) for b in known))
    first = _best_per_row(scores, n)
    for j, b in enumerate(known):
        _, k, _, allow = requests[b]
        ranked, depth = first[j], n
        while True:
            top = [(item_ids[r], s) for r, s in ranked if s != -np.inf]
            if allow is not None:
                top = [(item, s) for item, s in top if allow(item)]
            if len(top) >= k or depth >= total:
                break
            depth = min(total, depth * 4)  # the filter removed too many: look deeper on this row
            ranked = _best_per_row(scores[j : j + 1], depth)[0]
        out[b] = top[:k]
    return out


def _best_per_row(scores: np.ndarray, n: int) -> list[list[tuple[int, float]]]:
    """Per row of `scores` [B, N], the n best (row, score), best first.

    torch's top-k on the same memory (no copy) instead of numpy's argpartition, which was
    the largest part of a recommendation miss: the embedding pass of a miss took 190-196 us
    against 243-279 us (bench/rec_miss.py, both in one session).
    """
    if n >= scores.shape[1]:
        order = np.argsort(-scores, axis=1, kind="stable")
        return [list(zip(o.tolist(), row[o].tolist())) for o, row in zip(order, scores)]
    values, rows = torch.topk(torch.from_numpy(scores), n, dim=1)
    return [list(zip(r, v)) for r, v in zip(rows.tolist(), values.tolist())]
