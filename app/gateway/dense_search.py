"""Dense retrieval in the gateway: catalog vectors kept current, queries encoded off the loop.

Catalog changes queue up and are encoded in batches on a background thread; until an item
has its vector, search finds it lexically only. Queries are encoded (with an LRU cache) and
matched on a second thread, so neither blocks the event loop or waits behind the other.
"""
from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from app.gateway.serving import item_text
from app.gateway.tasks import cancel_and_wait
from app.metrics import Metrics
from models.dense_index import DenseIndex
from models.encoder import DIM, TextEncoder
from tables import catalog

log = logging.getLogger(__name__)
BATCH = 256


class DenseSearch:
    version = "minilm-l6-pretrained"

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.index = DenseIndex(DIM)
        self.pending: dict[str, str | None] = {}  # item -> text to encode, None to remove
        self._catalog_pool = ThreadPoolExecutor(1, thread_name_prefix="encode-catalog")
        self._query_pool = ThreadPoolExecutor(1, thread_name_prefix="encode-query")
        self._catalog_encoder: TextEncoder | None = None
        self._query_encoder: TextEncoder | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # Two instances: a tokenizer must not be used from two threads at once.
        self._catalog_encoder = await loop.run_in_executor(self._catalog_pool, TextEncoder)
        self._query_encoder = await loop.run_in_executor(self._query_pool, TextEncoder)
        self._task = asyncio.create_task(self._encode_loop(), name="encode-catalog")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._catalog_pool.shutdown(wait=False, cancel_futures=True)
        self._query_pool.shutdown(wait=False, cancel_futures=True)

    @property
    def ready(self) -> bool:
        return self._query_encoder is not None

    def on_change(self, table: str, key: str, old: Any, new: Any) -> None:
        if table == catalog.NAME:
            self.pending[key] = item_text(new) if catalog.is_live(new) else None

    async def _encode_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.pending:
                await asyncio.sleep(0.1)
                continue
            batch: list[tuple[str, str]] = []
            while self.pending and len(batch) < BATCH:
                item, text = next(iter(self.pending.items()))
                del self.pending[item]
                if text is None:
                    self.index.remove(item)
                else:
                    batch.append((item, text))
            if batch:
                try:
                    vectors = await loop.run_in_executor(
                        self._catalog_pool, self._catalog_encoder.encode, [t for _, t in batch])  # type: ignore[union-attr]
                except Exception:  # noqa: BLE001 — keep serving; the items stay lexical-only
                    log.exception("encoding %d catalog items failed", len(batch))
                    continue
                # Applied on the loop, after the await: a newer change queued meanwhile wins.
                fresh = [(i, v) for (i, _), v in zip(batch, vectors) if i not in self.pending]
                if fresh:
                    self.index.upsert([i for i, _ in fresh], torch.stack([v for _, v in fresh]))
                self.metrics.dense_items.set(len(self.index))

    async def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """Top `k` (item, cosine) for a query; [] until the encoder is loaded."""
        if self._query_encoder is None:
            return []
        encoder, index = self._query_encoder, self.index

        def run() -> list[tuple[str, float]]:
            return index.search(encoder.encode_queries([query])[0], k)

        return await asyncio.get_running_loop().run_in_executor(self._query_pool, run)
