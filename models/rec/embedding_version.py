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

    def user_vector(self, history: Sequence[str]) -> torch.Tensor | None:
        """[D]: recency-weighted mean of the vectors of the user's last known items."""
        rows, weights = [], []
        for item in reversed(history):
            row = self.index.get(item)
            if row is not None:
                rows.append(row)
                weights.append(RECENCY_WEIGHTS[len(rows) - 1])
                if len(rows) == len(RECENCY_WEIGHTS):
                    break
        if not rows:
            return None
        w = torch.tensor(weights).unsqueeze(1)
        return (self.vectors[rows] * w).sum(0) / w.sum()

    def rank(
        self, history: Sequence[str], k: int, exclude: Iterable[str] = (),
        allow: Callable[[str], bool] | None = None,
    ) -> list[tuple[str, float]]:
        """Top `k` (item, cosine) for the user; [] when no item of the history is known."""
        user = self.user_vector(history)
        if user is None:
            return []
        scores = self.vectors @ user  # [N]
        excluded = set(exclude)
        out: list[tuple[str, float]] = []
        n = min(len(self.item_ids), max(4 * k, 50))
        while True:
            top = torch.topk(scores, n)
            out = [(self.item_ids[r], float(s)) for s, r in zip(top.values.tolist(), top.indices.tolist())
                   if self.item_ids[r] not in excluded and (allow is None or allow(self.item_ids[r]))]
            if len(out) >= k or n == len(self.item_ids):
                return out[:k]
            n = min(len(self.item_ids), n * 4)  # filters removed too many: look deeper
