"""A servable recommender version: item vectors, a user vector pooled from recent items.

The exchange format between whatever trains item representations (the offline model, the
online learner) and the serving processes: a checkpoint with tensor `item_vectors` [N, D]
and the card's `item_ids` (N strings, row order). Immutable once built, so a serving
process swaps whole versions by replacing one reference.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from models.dense_index import candidate_depth, int8_supported, pack_rows

NAME = "rec-embeddings"
RECENCY_WEIGHTS = (1.0, 0.7, 0.5, 0.35, 0.25)
PACK_FROM_ROWS = 1024  # smaller tables stay float32 only: their pass costs nothing
# (history, k, exclude, allow) of one user, as `rank` takes them
RankRequest = tuple[Sequence[str], int, Iterable[str], Callable[[str], bool] | None]


@dataclass(frozen=True)
class EmbeddingRecVersion:
    version: str
    item_ids: tuple[str, ...]
    vectors: torch.Tensor  # [N, D] float32, rows L2-normalised
    index: dict[str, int] = field(default_factory=dict, compare=False)
    # int8 rows for the candidate pass (models.dense_index.pack_rows); None: float32
    packed: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.vectors.shape[0] != len(self.item_ids):
            raise ValueError(f"{len(self.item_ids)} ids for {self.vectors.shape[0]} vectors")
        self.index.update({item: row for row, item in enumerate(self.item_ids)})
        if self.packed is None and len(self.item_ids) >= PACK_FROM_ROWS and int8_supported():
            object.__setattr__(self, "packed", pack_rows(self.vectors))  # once: a version never changes

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

        Each user gets what `rank` alone would give: the same top scores, the same filters (a
        user whose filters leave too few items is searched deeper on their own row). The
        pass over all items reads int8 rows where this torch can (`packed`, 4x fewer bytes:
        the pass is bound by memory); it only picks candidates, with room to spare, and
        the candidates are scored again in float32.
        """
        if not requests:
            return []
        width = len(RECENCY_WEIGHTS)
        found = [self._recent_rows(history) for history, *_ in requests]
        known = [b for b, rows in enumerate(found) if rows]
        out: list[list[tuple[str, float]]] = [[] for _ in requests]
        if not known:
            return out
        vectors = self.vectors.numpy()
        index = np.array([found[b] + [0] * (width - len(found[b])) for b in known])
        weights = np.array([list(RECENCY_WEIGHTS[: len(found[b])]) + [0.0] * (width - len(found[b])) for b in known],
                           dtype=np.float32)
        # each user: the recency-weighted mean of the vectors of their last known items
        users = torch.from_numpy((vectors[index] * weights[:, :, None]).sum(1) / weights.sum(1, keepdims=True))
        packed = self.packed
        approx = (torch.ops.quantized.linear_dynamic(users, packed, True) if packed is not None
                  else users @ self.vectors.T).numpy()  # [B, N]
        # Excluded items (a user's history: up to 50) are masked before the top-k, so it
        # needs no room for them.
        for j, b in enumerate(known):
            rows = [row for item in set(requests[b][2]) if (row := self.index.get(item)) is not None]
            approx[j, rows] = -np.inf
        wanted = [requests[b][1] * (1 if requests[b][3] is None else 4) for b in known]
        first = self._exact_top(approx, users, max(wanted))  # one pass for the whole batch
        for j, b in enumerate(known):
            _, k, _, allow = requests[b]
            ranked, n = first[j], max(wanted)
            while True:
                if allow is not None:
                    ranked = [(item, score) for item, score in ranked if allow(item)]
                if len(ranked) >= k or n >= len(self.item_ids):
                    break
                n *= 4  # the filter removed too many: look deeper on this row
                ranked = self._exact_top(approx[j : j + 1], users[j : j + 1], n)[0]
            out[b] = ranked[:k]
        return out

    def _exact_top(self, approx: np.ndarray, users: torch.Tensor, n: int) -> list[list[tuple[str, float]]]:
        """Per user, the n best unmasked items by float32 cosine, among the best n + margin by
        `approx` [B, N] (the int8 pass: its errors, about 0.003, only reorder near-ties)."""
        total = approx.shape[1]
        depth = min(total, candidate_depth(n) if self.packed is not None else n)
        rows = (np.argpartition(approx, total - depth, axis=1)[:, total - depth:] if depth < total
                else np.tile(np.arange(total), (approx.shape[0], 1)))
        exact = torch.bmm(self.vectors[torch.from_numpy(np.ascontiguousarray(rows))], users.unsqueeze(2))[:, :, 0].numpy()
        exact[np.take_along_axis(approx, rows, axis=1) == -np.inf] = -np.inf
        order = np.argsort(-exact, axis=1, kind="stable")[:, :n]
        best_rows, best = np.take_along_axis(rows, order, 1).tolist(), np.take_along_axis(exact, order, 1).tolist()
        return [[(self.item_ids[r], s) for r, s in zip(rs, ss) if s != -np.inf] for rs, ss in zip(best_rows, best)]
        index = torch.tensor([found[b] + [0] * (width - len(found[b])) for b in known])
        weights = torch.tensor([list(RECENCY_WEIGHTS[: len(found[b])]) + [0.0] * (width - len(found[b]))
                                for b in known])
        # each user: the recency-weighted mean of the vectors of their last known items
        users = (self.vectors[index] * weights.unsqueeze(-1)).sum(1) / weights.sum(1, keepdim=True)
        scores = users @ self.vectors.T  # [B, N]
        # Excluded items (a user's history: up to 50) are masked before the top-k, so the
        # top-k needs no room for them: the first pass asks for k rows, or 4k with a filter.
        masked = [(j, row) for j, b in enumerate(known) for item in set(requests[b][2])
                  if (row := self.index.get(item)) is not None]
        if masked:
            at = torch.tensor(masked)
            scores[at[:, 0], at[:, 1]] = float("-inf")
        total = len(self.item_ids)
        depth = min(total, max(requests[b][1] * (1 if requests[b][3] is None else 4) for b in known))
        top = torch.topk(scores, depth, dim=1)
        values, rows = top.values.tolist(), top.indices.tolist()
        for j, b in enumerate(known):
            _, k, _, allow = requests[b]
            n = depth
            while True:
                ranked = [(self.item_ids[r], s) for s, r in zip(values[j], rows[j])
                          if s != float("-inf") and (allow is None or allow(self.item_ids[r]))]
                if len(ranked) >= k or n == total:
                    break
                n = min(total, n * 4)  # filters removed too many: look deeper on this row
                deeper = torch.topk(scores[j], n)
                values[j], rows[j] = deeper.values.tolist(), deeper.indices.tolist()
            out[b] = ranked[:k]
        return out
