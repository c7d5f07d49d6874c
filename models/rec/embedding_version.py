"""A servable recommender version: item vectors, a user vector pooled from recent items.

The exchange format between whatever trains item representations (the offline model, the
online learner) and the serving processes: a checkpoint with tensor `item_vectors` [N, D]
and the card's `item_ids` (N strings, row order). Immutable once built, so a serving
process swaps whole versions by replacing one reference.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import torch

from models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

NAME = "rec-embeddings"
RECENCY_WEIGHTS = (1.0, 0.7, 0.5, 0.35, 0.25)
# (history, k, exclude, allow) of one user, as `rank` takes them
RankRequest = tuple[Sequence[str], int, Iterable[str], Callable[[str], bool] | None]


@dataclass(frozen=True)
class EmbeddingRecVersion:
    version: str
    item_ids: tuple[str, ...]
    vectors: torch.Tensor  # [N, D] float32, rows L2-normalised
    index: dict[str, int] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.vectors.shape[0] != len(self.item_ids):
            raise ValueError(f"{len(self.item_ids)} ids for {self.vectors.shape[0]} vectors")
        self.index.update({item: row for row, item in enumerate(self.item_ids)})

    @classmethod
    def build(cls, version: str, item_ids: Sequence[str], vectors: torch.Tensor) -> "EmbeddingRecVersion":
        v = torch.nn.functional.normalize(vectors.detach().float().cpu(), dim=1)
        return cls(version=version, item_ids=tuple(item_ids), vectors=v)

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint | str) -> "EmbeddingRecVersion":
        ck = load_checkpoint(checkpoint) if not isinstance(checkpoint, Checkpoint) else checkpoint
        name = ck.card.get("name", NAME)
        return cls.build(f"{name}-v{ck.version}", ck.card["item_ids"], ck.tensors["item_vectors"])

    def save(self, model_dir, card: dict) -> str:  # type: ignore[no-untyped-def]
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

        Exact: each user gets what `rank` alone would give (the same top scores, the same
        filters; a user whose filters leave too few items is searched deeper on their own row).
        """
        if not requests:
            return []
        width = len(RECENCY_WEIGHTS)
        found = [self._recent_rows(history) for history, *_ in requests]
        known = [b for b, rows in enumerate(found) if rows]
        out: list[list[tuple[str, float]]] = [[] for _ in requests]
        if not known:
            return out
        index = torch.tensor([found[b] + [0] * (width - len(found[b])) for b in known])
        weights = torch.tensor([list(RECENCY_WEIGHTS[: len(found[b])]) + [0.0] * (width - len(found[b]))
                                for b in known])
        # each user: the recency-weighted mean of the vectors of their last known items
        users = (self.vectors[index] * weights.unsqueeze(-1)).sum(1) / weights.sum(1, keepdim=True)
        scores = users @ self.vectors.T  # [B, N]
        total = len(self.item_ids)
        depth = min(total, max(max(4 * requests[b][1], 50) for b in known))
        top = torch.topk(scores, depth, dim=1)
        values, rows = top.values.tolist(), top.indices.tolist()
        for j, b in enumerate(known):
            _, k, exclude, allow = requests[b]
            excluded = set(exclude)
            n = depth
            while True:
                ranked = [(self.item_ids[r], s) for s, r in zip(values[j], rows[j])
                          if self.item_ids[r] not in excluded and (allow is None or allow(self.item_ids[r]))]
                if len(ranked) >= k or n == total:
                    break
                n = min(total, n * 4)  # filters removed too many: look deeper on this row
                deeper = torch.topk(scores[j], n)
                values[j], rows[j] = deeper.values.tolist(), deeper.indices.tolist()
            out[b] = ranked[:k]
        return out
