"""Counters kept beside an EmbeddingStore's rows (same shard, same row), reset when a row is reused.

Keeping them per row (not per id in a dict) bounds their memory by the store's capacity and
lets a full ranking read a shard's counters as one tensor.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch

from models.embedding_store import EmbeddingStore

Id = Hashable


class RowStats:
    """[capacity, columns] float tensor per shard, on the shard's device."""

    def __init__(self, store: EmbeddingStore, columns: int) -> None:
        self.store = store
        self.values = [torch.zeros(store.config.capacity, columns, device=d) for d in store.devices]

    def admit(self, ids: Sequence[Id]) -> None:
        """Count one sighting of each id in the store; a row given to a new id starts at zero."""
        for key in ids:
            had_row = key in self.store
            row = self.store.observe(key)
            if row is not None and not had_row:
                self.values[self.store.shard_index(key)][row] = 0.0

    def add(self, ids: Sequence[Id], deltas: torch.Tensor) -> None:
        """values[id] += deltas [n, columns] for ids that have a row (duplicates summed)."""
        for s, positions, rows in self.store.locate(ids):
            v = self.values[s]
            v.index_add_(0, rows.to(v.device), deltas[positions].to(v.device, v.dtype))

    def get(self, ids: Sequence[Id]) -> torch.Tensor:
        """[n, columns] on the store's output device; zeros for ids without a row."""
        out = torch.zeros(len(ids), self.values[0].shape[1], device=self.store.output_device)
        for s, positions, rows in self.store.locate(ids):
            v = self.values[s]
            out[positions.to(out.device)] = v[rows.to(v.device)].to(out.device)
        return out

    def shard_table(self, shard: int) -> torch.Tensor:
        """[used rows, columns] of one shard (a view)."""
        return self.values[shard][: self.store.used_rows(shard)]
