"""Embedding retrieval for the requests that arrive together, in one matrix product.

Requests that the event loop has ready at the same time (under load, many connections
deliver at once) each queue their user here; the first schedules a flush with `call_soon`,
which runs after every handler already ready has queued its own. The flush scores the whole
group in one `rank_many` (one [B, D] x [D, N] product and one top-k instead of B of each),
so the per-request cost falls as load rises, and a lone request waits for nothing.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from models.ranker import BatchRanker

MAX_BATCH = 64


class RankBatcher:
    def __init__(self) -> None:
        self._pending: list[tuple[BatchRanker, tuple[Sequence[str], int, Iterable[str], Callable[[str], bool] | None],
                                  asyncio.Future[list[tuple[str, float]]]]] = []
        self.batches = 0
        self.requests = 0

    async def rank(self, model: BatchRanker, history: Sequence[str], k: int, exclude: Iterable[str] = (),
                   allow: Callable[[str], bool] | None = None) -> list[tuple[str, float]]:
        """`model.rank(history, k, exclude, allow)`, batched with the requests ready now."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[tuple[str, float]]] = loop.create_future()
        self._pending.append((model, (history, k, exclude, allow), future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        groups: dict[int, tuple[BatchRanker, list[Any]]] = {}
        for model, request, future in pending:  # a swap between two requests: one group per version
            groups.setdefault(id(model), (model, []))[1].append((request, future))
        for model, items in groups.values():
            for start in range(0, len(items), MAX_BATCH):
                chunk = items[start:start + MAX_BATCH]
                self.batches += 1
                self.requests += len(chunk)
                try:
                    results = model.rank_many([request for request, _ in chunk])
                except Exception as exc:  # noqa: BLE001 — each waiting request answers with the error
                    for _, future in chunk:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(chunk, results):
                    if not future.done():  # its client went away meanwhile
                        future.set_result(result)
