"""Sharded embedding store for arbitrary ids (str or int), for online learning and serving.

Rows are split over shards; a stable hash of the id picks the shard, and each shard keeps
its own id -> row dict, so two ids never share a row. Each shard's tensors live on one
device (`models.sharding.shard_devices`: one `cuda:i` per GPU present, else the CPU).

- Admission: an id gets a row only after it was seen `min_count` times; counts live in a
  bounded LRU counter. Until then it maps to the shared default row (zeros), or `get()`
  returns None.
- Eviction: a full shard frees its least-recently-seen row and reuses it.
- Learning: `apply_gradients` is row-wise Adagrad (one accumulator per row).
- Shipping: every change bumps a version; `changed_rows_since(v)` lists ids changed after
  v, and `export_rows` / `import_rows` move those rows between processes.
- Serving: `serving_copy("fp16" | "int8")` is a read-only compressed copy (int8 with one
  scale per row).
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from models.sharding import available_devices, shard_devices, shard_of

Id = Hashable
SHARD_MEMO_MAX = 1 << 20  # ids whose shard is remembered (about 100 MB at most)


@dataclass(frozen=True)
class StoreConfig:
    """Shape and policies of an EmbeddingStore.

    num_shards=0 means one shard per device present. capacity is rows per shard.
    """

    dim: int
    num_shards: int = 0
    capacity: int = 100_000
    min_count: int = 1
    counter_capacity: int = 1_000_000
    init_std: float = 0.01
    eps: float = 1e-8
    seed: int = 0

    def check(self) -> None:
        if self.dim < 1 or self.capacity < 1 or self.min_count < 1 or self.counter_capacity < 1:
            raise ValueError("dim, capacity, min_count and counter_capacity must be positive")


class _Shard:
    """Rows of one shard on one device, with an LRU id -> row map."""

    def __init__(self, config: StoreConfig, device: torch.device, generator: torch.Generator) -> None:
        self.device = device
        self.weights = torch.zeros(config.capacity, config.dim, device=device)
        self.accum = torch.zeros(config.capacity, device=device)  # Adagrad sum of mean squared grads
        self.row_version = torch.zeros(config.capacity, dtype=torch.long)  # host side: read by changed_rows_since
        self.rows: OrderedDict[Id, int] = OrderedDict()  # least recently seen first
        self.free = list(range(config.capacity - 1, -1, -1))
        self.ids: list[Id | None] = [None] * config.capacity
        self.init_std = config.init_std
        self.generator = generator

    def touch(self, key: Id) -> int | None:
        row = self.rows.get(key)
        if row is not None:
            self.rows.move_to_end(key)
        return row

    def allocate(self, key: Id) -> tuple[int, Id | None]:
        """Give `key` a fresh row (evicting the least recently seen id when full)."""
        evicted: Id | None = None
        if self.free:
            row = self.free.pop()
        else:
            evicted, row = self.rows.popitem(last=False)
        self.rows[key] = row
        self.ids[row] = key
        init = torch.randn(self.weights.shape[1], generator=self.generator) * self.init_std
        self.weights[row] = init.to(self.device)
        self.accum[row] = 0.0
        return row, evicted

    def memory_bytes(self) -> int:
        tensors = (self.weights, self.accum, self.row_version)
        return sum(t.element_size() * t.nelement() for t in tensors)


class EmbeddingStore:
    """Embedding rows for arbitrary ids, sharded by a stable hash. See the module docstring."""

    def __init__(self, config: StoreConfig, devices: list[torch.device] | None = None) -> None:
        config.check()
        self.config = config
        devices = devices or available_devices()
        placement = shard_devices(config.num_shards or len(devices), devices)
        generator = torch.Generator().manual_seed(config.seed)
        self.shards = [_Shard(config, d, generator) for d in placement]
        self.output_device = placement[0]
        self.default = torch.zeros(config.dim, device=self.output_device)
        self.counts: OrderedDict[Id, int] = OrderedDict()
        self.version = 0
        self.admissions = 0  # ids given a row since this store was made (a counter for metrics)
        self.evictions = 0  # rows evicted since this store was made (the list below is pruned)
        self.evicted: list[tuple[int, Id]] = []  # (version, id), so replicas can drop rows too
        self._shard_memo: dict[Id, int] = {}

    # ---- id handling ------------------------------------------------------------------
    @property
    def devices(self) -> list[torch.device]:
        return [s.device for s in self.shards]

    def shard_index(self, key: Id) -> int:
        # Hashing an id (blake2b of its text) was a fifth of the learner's time: one shard
        # needs no hash, and with several the answer is remembered (bounded by clearing).
        n = len(self.shards)
        if n == 1:
            return 0
        shard = self._shard_memo.get(key)
        if shard is None:
            if len(self._shard_memo) >= SHARD_MEMO_MAX:
                self._shard_memo.clear()
            shard = self._shard_memo[key] = shard_of(key, n)
        return shard

    def __len__(self) -> int:
        return sum(len(s.rows) for s in self.shards)

    def __contains__(self, key: Id) -> bool:
        return key in self.shards[self.shard_index(key)].rows

    def observe(self, key: Id) -> int | None:
        """Count one sighting of `key`; admit it once seen min_count times. Returns its row or None."""
        shard = self.shards[self.shard_index(key)]
        row = shard.touch(key)
        if row is not None:
            return row
        seen = self.counts.pop(key, 0) + 1
        if seen < self.config.min_count:
            self.counts[key] = seen  # re-inserted last: the counter forgets the stalest ids first
            if len(self.counts) > self.config.counter_capacity:
                self.counts.popitem(last=False)
            return None
        self.version += 1
        self.admissions += 1
        row, evicted = shard.allocate(key)
        shard.row_version[row] = self.version
        if evicted is not None:
            self.evicted.append((self.version, evicted))
            self.evictions += 1
        return row

    def rows_for(self, ids: Sequence[Id]) -> list[tuple[int, int] | None]:
        """(shard, row) of each id that has a row, else None. Read-only: no counting, no recency."""
        out: list[tuple[int, int] | None] = []
        for key in ids:
            s = self.shard_index(key)
            row = self.shards[s].rows.get(key)
            out.append(None if row is None else (s, row))
        return out

    # ---- reading ----------------------------------------------------------------------
    def lookup(self, ids: Sequence[Id], admit: bool = True) -> torch.Tensor:
        """[n, dim] vectors on `output_device`; unadmitted ids get the default row.

        admit=True counts each id as seen (admitting it at min_count) and refreshes recency;
        admit=False is a pure read for serving.
        """
        if admit:
            for key in ids:
                self.observe(key)
        out = self.default.expand(len(ids), -1).clone()
        for s, positions, rows in self._group(ids):
            shard = self.shards[s]
            out[positions.to(out.device)] = shard.weights[rows.to(shard.device)].to(out.device)
        return out

    def get(self, key: Id) -> torch.Tensor | None:
        """The vector of one admitted id ([dim], a copy) or None. Does not count a sighting."""
        where = self.rows_for([key])[0]
        return None if where is None else self.shards[where[0]].weights[where[1]].clone()

    def locate(self, ids: Sequence[Id]) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
        """Per shard: (shard, positions in ids [m] long, rows [m] long) of the ids that have a row."""
        return self._group(ids)

    def _group(self, ids: Sequence[Id]) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
        """Per shard: (shard, positions in ids, rows) of the ids that have a row."""
        groups: dict[int, tuple[list[int], list[int]]] = {}
        for pos, where in enumerate(self.rows_for(ids)):
            if where is not None:
                positions, rows = groups.setdefault(where[0], ([], []))
                positions.append(pos)
                rows.append(where[1])
        return [(s, torch.tensor(p), torch.tensor(r)) for s, (p, r) in groups.items()]

    # ---- learning ---------------------------------------------------------------------
    def apply_gradients(self, ids: Sequence[Id], grads: torch.Tensor, lr: float) -> int:
        """Row-wise Adagrad on the rows of `ids`; grads [n, dim]. Duplicates are summed.

        Ids without a row are skipped. Returns the number of rows updated.
        """
        if grads.shape != (len(ids), self.config.dim):
            raise ValueError(f"grads must be [{len(ids)}, {self.config.dim}], got {tuple(grads.shape)}")
        updated = 0
        self.version += 1
        for s, positions, rows in self._group(ids):
            shard = self.shards[s]
            rows = rows.to(shard.device)
            unique, inverse = torch.unique(rows, return_inverse=True)
            g = torch.zeros(len(unique), self.config.dim, device=shard.device)
            g.index_add_(0, inverse, grads[positions.to(grads.device)].to(shard.device, torch.float32))
            shard.accum[unique] += g.pow(2).mean(dim=1)
            step = lr * g / (shard.accum[unique].sqrt().unsqueeze(1) + self.config.eps)
            shard.weights[unique] -= step
            shard.row_version[unique.cpu()] = self.version
            updated += len(unique)
        return updated

    # ---- shipping changes -------------------------------------------------------------
    def changed_rows_since(self, version: int) -> list[Id]:
        """Ids whose row was admitted, updated or imported after `version` (still present)."""
        changed: list[Id] = []
        for shard in self.shards:
            for row in torch.nonzero(shard.row_version > version).flatten().tolist():
                key = shard.ids[row]
                if key is not None and shard.rows.get(key) == row:
                    changed.append(key)
        return changed

    def prune_evicted(self, up_to_version: int) -> None:
        """Forget evictions at or before `up_to_version` (every replica has them): the list
        would otherwise grow with every id that ever passed through a full table."""
        self.evicted = [(v, key) for v, key in self.evicted if v > up_to_version]

    def evicted_since(self, version: int) -> list[Id]:
        """Ids evicted after `version` (a replica should drop them unless re-imported)."""
        return [key for v, key in self.evicted if v > version and key not in self]

    def export_rows(self, ids: Sequence[Id]) -> tuple[list[Id], torch.Tensor, torch.Tensor]:
        """(ids that have a row, weights [m, dim] on CPU, Adagrad accumulators [m] on CPU)."""
        found = [key for key, where in zip(ids, self.rows_for(ids)) if where is not None]
        weights = torch.zeros(len(found), self.config.dim)
        accum = torch.zeros(len(found))
        for s, positions, rows in self._group(found):
            shard = self.shards[s]
            weights[positions] = shard.weights[rows.to(shard.device)].cpu()
            accum[positions] = shard.accum[rows.to(shard.device)].cpu()
        return found, weights, accum

    def import_rows(self, ids: Sequence[Id], weights: torch.Tensor, accum: torch.Tensor | None = None) -> None:
        """Upsert rows (weights [n, dim], accum [n]) from another process, skipping admission."""
        if weights.shape != (len(ids), self.config.dim):
            raise ValueError(f"weights must be [{len(ids)}, {self.config.dim}], got {tuple(weights.shape)}")
        self.version += 1
        for pos, key in enumerate(ids):
            shard = self.shards[self.shard_index(key)]
            row = shard.touch(key)
            if row is None:
                row, evicted = shard.allocate(key)
                if evicted is not None:
                    self.evicted.append((self.version, evicted))
                    self.evictions += 1
            shard.weights[row] = weights[pos].to(shard.device, torch.float32)
            shard.accum[row] = 0.0 if accum is None else float(accum[pos])
            shard.row_version[row] = self.version

    def overwrite_rows(self, ids: Sequence[Id], weights: torch.Tensor) -> None:
        """Replace the weights of rows that exist (weights [n, dim]); recency and Adagrad state stay.

        For blending a model with another version: unlike import_rows it admits nothing.
        """
        if weights.shape != (len(ids), self.config.dim):
            raise ValueError(f"weights must be [{len(ids)}, {self.config.dim}], got {tuple(weights.shape)}")
        self.version += 1
        for s, positions, rows in self._group(ids):
            shard = self.shards[s]
            shard.weights[rows.to(shard.device)] = weights[positions].to(shard.device, torch.float32)
            shard.row_version[rows] = self.version

    def used_rows(self, shard: int) -> int:
        """Rows 0..n-1 of a shard are in use: rows are handed out in order and never freed."""
        return len(self.shards[shard].rows)

    def row_ids(self, shard: int) -> list[Id | None]:
        """Id of each row of a shard (None for a row never used)."""
        return self.shards[shard].ids

    # ---- full state (checkpoints) ----------------------------------------------------------
    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """(CPU tensors, JSON-able meta) that `from_state` turns back into an identical store.

        Keeps LRU order, admission counts, free rows and the init generator, so that a
        restored store admits, evicts and initialises exactly as this one would.
        """
        tensors: dict[str, torch.Tensor] = {"generator": self.shards[0].generator.get_state()}
        shards = []
        for s, shard in enumerate(self.shards):
            tensors[f"shard{s}.weights"] = shard.weights.cpu()
            tensors[f"shard{s}.accum"] = shard.accum.cpu()
            tensors[f"shard{s}.row_version"] = shard.row_version.clone()
            shards.append({"rows": list(shard.rows.items()), "free": shard.free, "ids": shard.ids})
        meta = {
            "config": self.config.__dict__,
            "shards": shards,
            "counts": list(self.counts.items()),
            "version": self.version,
            "evicted": self.evicted,
            "evictions": self.evictions,
        }
        return tensors, meta

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any],
                   devices: list[torch.device] | None = None) -> "EmbeddingStore":
        store = cls(StoreConfig(**meta["config"]), devices)
        if len(meta["shards"]) != len(store.shards):
            raise ValueError(f"state has {len(meta['shards'])} shards, this store {len(store.shards)}")
        store.shards[0].generator.set_state(tensors["generator"])
        for s, (shard, m) in enumerate(zip(store.shards, meta["shards"])):
            shard.weights.copy_(tensors[f"shard{s}.weights"])
            shard.accum.copy_(tensors[f"shard{s}.accum"])
            shard.row_version.copy_(tensors[f"shard{s}.row_version"])
            shard.rows = OrderedDict((key, row) for key, row in m["rows"])
            shard.free = list(m["free"])
            shard.ids = list(m["ids"])
        store.counts = OrderedDict((key, n) for key, n in meta["counts"])
        store.version = meta["version"]
        store.evicted = [(v, key) for v, key in meta["evicted"]]
        store.evictions = meta.get("evictions", len(store.evicted))
        return store

    # ---- reporting and serving ----------------------------------------------------------
    def memory_bytes(self) -> list[int]:
        """Bytes of tensor storage per shard (weights, accumulators, versions; dicts excluded)."""
        return [s.memory_bytes() for s in self.shards]

    def serving_copy(self, dtype: str = "fp16") -> "ServingTable":
        """A compressed read-only copy of the admitted rows ("fp16" or "int8", per-row scale)."""
        return ServingTable.build(self, dtype)


class ServingTable:
    """Read-only compressed rows for serving: fp16, or int8 with one fp32 scale per row.

    Error bounds per element: fp16 |x - x'| <= |x| * 2**-11 (normal range);
    int8 |x - x'| <= scale / 2 where scale = max|row| / 127.
    """

    def __init__(self, dim: int, index: dict[Id, int], values: torch.Tensor, scales: torch.Tensor | None) -> None:
        self.dim = dim
        self.index = index
        self.values = values
        self.scales = scales

    @classmethod
    def build(cls, store: EmbeddingStore, dtype: str) -> "ServingTable":
        if dtype not in ("fp16", "int8"):
            raise ValueError("dtype must be 'fp16' or 'int8'")
        keys = [key for shard in store.shards for key in shard.rows]
        _, weights, _ = store.export_rows(keys)
        index = {key: i for i, key in enumerate(keys)}
        if dtype == "fp16":
            return cls(store.config.dim, index, weights.half(), None)
        scales = weights.abs().amax(dim=1).clamp(min=1e-12) / 127.0
        values = torch.round(weights / scales.unsqueeze(1)).clamp(-127, 127).to(torch.int8)
        return cls(store.config.dim, index, values, scales)

    def lookup(self, ids: Sequence[Id]) -> torch.Tensor:
        """[n, dim] float32; unknown ids get zeros."""
        out = torch.zeros(len(ids), self.dim)
        pairs = [(p, self.index[k]) for p, k in enumerate(ids) if k in self.index]
        if pairs:
            pos, rows = (torch.tensor(x) for x in zip(*pairs))
            vals = self.values[rows].float()
            if self.scales is not None:
                vals = vals * self.scales[rows].unsqueeze(1)
            out[pos] = vals
        return out

    def memory_bytes(self) -> int:
        extra = 0 if self.scales is None else self.scales.element_size() * self.scales.nelement()
        return self.values.element_size() * self.values.nelement() + extra


def gradient_of(rows: torch.Tensor) -> torch.Tensor:
    """`rows.grad` after the backward pass, for `apply_gradients` (an error if it never reached them)."""
    if rows.grad is None:
        raise RuntimeError("rows looked up for training got no gradient: they were not part of the loss")
    return rows.grad
