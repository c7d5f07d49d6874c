"""Dense retrieval over a changing catalog: one row per live item, cosine by dot product.

Rows are reused after deletes; `ids[row] is None` marks a free row.

`search` is exact. `scan` scores every row for candidate selection, and is the hot part of
a search: one float32 pass over a 45k x 384 catalog reads 70 MB and takes about 7 ms on
one core, bound by memory. Blocks of rows can be packed as int8 with a scale per row
(fbgemm's dynamic-quantised linear, 4x fewer bytes, about 1.9 ms for the same pass); a
packed block is used while no row of it changed since it was packed, and a changed block
is scanned in float32 until it is packed again. Packing is a pure function (`pack_rows`),
so the caller can run it on another thread. The int8 scores only choose candidates:
`search` scores 4k + 50 of them again in float32, and `HybridSearcher` takes the int8 top n as
dense candidates whose features are float32. How much of the exact top k the int8 top k
holds is measured by `bench/retrieval.py`.
"""
from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from typing import Any

import torch

BLOCK_ROWS = 4096


@functools.cache
def int8_supported() -> bool:
    """Whether this torch packs int8 rows (fbgemm on x86); elsewhere every block stays float32.

    Checked by packing once: torch deprecates its quantized tensors, and a build without
    them must fall back to the exact scan rather than fail.
    """
    try:
        pack_rows(torch.ones(2, 4))
    except Exception:  # noqa: BLE001 — any failure means: no int8 scan here
        return False
    return True


def pack_rows(rows: torch.Tensor) -> Any:
    """Rows [n, dim] float32 -> packed int8 weights with one scale per row (for `scan`)."""
    scales = rows.abs().amax(dim=1).clamp(min=1e-8) / 127.0
    ints = torch.round(rows / scales.unsqueeze(1)).clamp(-127, 127).to(torch.int8)
    with warnings.catch_warnings():  # deprecated in favour of torchao, which we do not ship
        warnings.simplefilter("ignore")
        quantized = torch._make_per_channel_quantized_tensor(ints, scales.double(), torch.zeros(len(rows), dtype=torch.long), 0)
        return torch.ops.quantized.linear_prepack(quantized, None)


class DenseIndex:
    def __init__(self, dim: int, capacity: int = 1024) -> None:
        self.dim = dim
        self.vectors = torch.zeros(capacity, dim)
        self.live = torch.zeros(capacity, dtype=torch.bool)
        self.ids: list[str | None] = []
        self.slot: dict[str, int] = {}
        self._free: list[int] = []
        self._generation: list[int] = []  # per block; bumped by every write to one of its rows
        self._packed: dict[int, tuple[int, int, Any]] = {}  # block -> (generation, rows, packed)

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
            self._generation[row // BLOCK_ROWS] += 1

    def remove(self, item_id: str) -> bool:
        row = self.slot.pop(item_id, None)
        if row is None:
            return False
        self.live[row] = False  # masks the row in every scan, packed or not
        self.ids[row] = None
        self._free.append(row)
        return True

    def _append_row(self) -> int:
        row = len(self.ids)
        if row >= self.vectors.shape[0]:  # grow by doubling: amortised O(1) appends
            self.vectors = torch.cat([self.vectors, torch.zeros_like(self.vectors)])
            self.live = torch.cat([self.live, torch.zeros_like(self.live)])
        self.ids.append(None)
        if row // BLOCK_ROWS >= len(self._generation):
            self._generation.append(0)
        return row

    def scan(self, query: torch.Tensor) -> torch.Tensor:
        """Approximate cosine of every row [len(ids)] for a normalised query [dim]; free rows -inf.

        Packed blocks are int8 (error about 0.003 on a cosine), the others exact.
        """
        n = len(self.ids)
        parts = []
        for block in range(0, (n + BLOCK_ROWS - 1) // BLOCK_ROWS):
            start, stop = block * BLOCK_ROWS, min(n, (block + 1) * BLOCK_ROWS)
            packed = self._current_pack(block, stop - start)
            if packed is not None:
                parts.append(torch.ops.quantized.linear_dynamic(query.unsqueeze(0), packed, True)[0])
            else:
                parts.append(self.vectors[start:stop] @ query)
        scores = torch.cat(parts) if parts else torch.zeros(0)
        return scores.masked_fill(~self.live[:n], float("-inf"))

    def _current_pack(self, block: int, rows: int) -> Any:
        """The packed int8 rows of `block` if they are its current `rows` rows, else None."""
        packed = self._packed.get(block)
        if packed is None or packed[0] != self._generation[block] or packed[1] != rows:
            return None
        return packed[2]

    def unpacked_blocks(self, limit: int) -> list[tuple[int, int, torch.Tensor]]:
        """Up to `limit` (block, generation, copy of its rows) that `scan` reads in float32.

        Hand each copy to `pack_rows` (any thread) and the result to `install_packed`.
        """
        if not int8_supported():
            return []
        n = len(self.ids)
        out = []
        for block, generation in enumerate(self._generation):
            start, stop = block * BLOCK_ROWS, min(n, (block + 1) * BLOCK_ROWS)
            if self._current_pack(block, stop - start) is None:
                out.append((block, generation, self.vectors[start:stop].clone()))
                if len(out) == limit:
                    break
        return out

    def install_packed(self, block: int, generation: int, rows: int, packed: Any) -> bool:
        """Use `packed` for `block` unless the block changed since its rows were copied."""
        if block >= len(self._generation) or self._generation[block] != generation:
            return False
        self._packed[block] = (generation, rows, packed)
        return True

    def pack_all(self) -> None:
        """Pack every block now, on this thread (offline use and tests)."""
        for block, generation, rows in self.unpacked_blocks(len(self._generation)):
            self.install_packed(block, generation, len(rows), pack_rows(rows))

    def search(self, query: torch.Tensor, k: int) -> list[tuple[str, float]]:
        """Top `k` (item_id, cosine) for a normalised query [dim], exact.

        The scan picks 4k + 50 rows, which are scored again in float32: an exact top-k row
        is missed only if int8 errors (about 0.003 on a cosine) put 3k + 50 others ahead of
        it, which needs that many rows within a few thousandths of its cosine.
        """
        if not self.slot or k <= 0:
            return []
        approx = self.scan(query)
        rows = torch.topk(approx, min(4 * k + 50, len(self.slot))).indices
        exact = self.vectors[rows] @ query
        top = torch.topk(exact, min(k, len(rows)))
        return [(self.ids[int(rows[r])], float(s)) for s, r in zip(top.values.tolist(), top.indices.tolist())]  # type: ignore[misc]

    def memory_bytes(self) -> int:
        packed_rows = sum(rows for _, rows, _ in self._packed.values())
        return (self.vectors.element_size() * self.vectors.nelement() + self.live.nelement()
                + packed_rows * (self.dim + 8))
