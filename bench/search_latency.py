"""/v1/search through the real gateway app over the full Home Depot catalog: nDCG@10 and latency.

Serves a copy of a search checkpoint from a temporary state dir whose item vector cache is
filled from the offline embedding cache (no 10-minute encode). Requests run one at a time.
Usage: .venv/bin/python bench/search_latency.py [var/models/search/v0002]
"""
from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from aiohttp.test_utils import TestClient, TestServer

from app.gateway.app import init_app
from app.gateway.dense_search import vector_cache_path
from app.gateway.keys import DENSE
from app.gateway.read_model import ReadModel
from tables.wire.records import CatalogChange, UserEvent
from app.search_model import MODEL_NAME
from app.search_pipeline import DEV_QUERIES_FILE
from app.settings import Settings
from models.checkpoint import load_checkpoint
from models.data.homedepot import load_homedepot, load_test_queries
from models.vector_cache import cached_vectors
from models.encoder import DIM, TextEncoder
from models.search_eval import search_metrics
from models.vector_cache import VectorCache
from tables import catalog


class NullSink:
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def send_events(self, events: list[UserEvent]) -> None: ...
    async def send_catalog(self, changes: list[CatalogChange]) -> None: ...


async def main(path: Path, state_dir: Path) -> None:
    base = Settings.from_env()
    # A lone gateway encoding (here: reading from its cache) the catalog itself: no encoder process runs.
    settings = base.replace(state_dir=state_dir, search_dense=True, search_encode_catalog=True, model_poll_s=3600.0)
    checkpoint = load_checkpoint(path)
    data = load_homedepot(Path(checkpoint.card["data"]["path"]))
    queries = load_test_queries(path / DEV_QUERIES_FILE)
    encoder = TextEncoder(max_length=settings.encoder.max_length)
    vectors = cached_vectors(base.runtime.embedding_cache_dir, encoder.model_key, data.titles, None)  # type: ignore[arg-type]
    cache = VectorCache(vector_cache_path(settings, encoder), DIM)
    cache.put(list(data.titles), vectors)
    cache.save()
    shutil.copytree(path, settings.runtime.model_dir / MODEL_NAME / path.name)

    read_model = ReadModel(settings)
    client = TestClient(TestServer(init_app(settings, sink=NullSink(), read_model=read_model, follow_changelogs=False)))
    await client.start_server()
    try:
        started = time.perf_counter()
        for item, title in zip(data.items, data.titles):
            read_model.apply(catalog.NAME, item, catalog.to_item(CatalogChange("upsert", item, 1.0, title=title)))
        dense = client.app[DENSE]
        while len(dense.index) < len(data.items):
            await asyncio.sleep(0.1)
        print(f"{len(data.items)} items indexed with vectors in {time.perf_counter() - started:.1f}s "
              f"(served {dense.model.version if dense.model else None})")
        ranked, ms = {}, []
        for q in queries:
            t0 = time.perf_counter()
            body = await (await client.get("/v1/search", params={"q": data.query_text.get(q, q), "k": "10"})).json()
            ms.append(1000 * (time.perf_counter() - t0))
            ranked[q] = [i["item_id"] for i in body["items"]]
        versions = {body["model_version"]}
        print(f"nDCG@10 through /v1/search: {search_metrics(data, queries, ranked)['nDCG@10']:.4f} ({versions})")
        print(f"HTTP latency, one request at a time: p50 {np.percentile(ms, 50):.1f} ms  "
              f"p90 {np.percentile(ms, 90):.1f} ms  p99 {np.percentile(ms, 99):.1f} ms")
    finally:
        await client.close()


if __name__ == "__main__":
    ckpt = Path(sys.argv[1]) if len(sys.argv) > 1 else Settings.from_env().runtime.model_dir / "search" / "v0002"
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(ckpt.resolve(), Path(tmp)))
