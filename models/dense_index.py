"""Exact dense retrieval over a changing catalog: one row per live item, cosine by dot product.

Exact top-k with one matrix product is fast enough at shop scale on CPU (50k x 384 floats
is a few milliseconds) and never misses an item; an ANN index only pays off far beyond.
Rows are reused after deletes; `ids[row] is None` marks a free row.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch


class DenseIndex:
    def __init__(self, dim: int, capacity: int = 1024) -> None:
        self.dim = dim
        self.vectors = torch.zeros(capacity, dim)
        self.live = torch.zeros(capacity, dtype=torch.bool)
        self.ids: list[str | None] = []
        self.slot: dict[str, int] = {}
        self._free: list[int] = []

    def __len__(self) -> int:
        return len(self.slot)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.slot

    def upsert(self, item_ids: Sequence[str], vectors: torch.Tensor) -> None:
        """Set the vectors [n, dim] (L2-normalised) of `item_ids`, adding rows as needed."""
        for item_id, vec in zip(item_ids, vectors):
            row = self.slot.get(item_id)
            if row is None:
                row = self._free.pop() if self._free else self._append_row()
                self.slot[item_id] = row
                self.ids[row] = item_id
            self.vectors[row] = vec
            self.live[row] = True

    def remove(self, item_id: str) -> bool:
        row = self.slot.pop(item_id, None)
        if row is None:
            return False
        self.live[row] = False
        self.ids[row] = None
        self._free.append(row)
        return True

    def _append_row(self) -> int:
        row = len(self.ids)
        if row >= self.vectors.shape[0]:  # grow by doubling: amortised O(1) appends
            self.vectors = torch.cat([self.vectors, torch.zeros_like(self.vectors)])
            self.live = torch.cat([self.live, torch.zeros_like(self.live)])
        self.ids.append(None)
        return row

    def search(self, query: torch.Tensor, k: int) -> list[tuple[str, float]]:
        """Top `k` (item_id, cosine) for a normalised query [dim]."""
        n = len(self.ids)
        if n == 0 or k <= 0:
            return []
        scores = self.vectors[:n] @ query
        scores = scores.masked_fill(~self.live[:n], float("-inf"))
        top = torch.topk(scores, min(k, len(self.slot)))
        return [(self.ids[r], float(s)) for s, r in zip(top.values.tolist(), top.indices.tolist())]  # type: ignore[misc]

    def memory_bytes(self) -> int:
        return self.vectors.element_size() * self.vectors.nelement() + self.live.nelement()
