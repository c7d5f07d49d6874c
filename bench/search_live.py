"""nDCG@10 and per-query latency of the live searcher over the full Home Depot catalog.

Compares it with the searcher `evaluate search` builds (HybridSearcher.from_catalog) on the same dev
queries of a search checkpoint.
Usage: .venv/bin/python bench/search_live.py [var/models/search/v0002]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from app.search_model import load_search_model
from app.search_pipeline import DEV_QUERIES_FILE
from app.settings import Settings
from app.threads import limit_threads
from models.checkpoint import load_checkpoint
from models.data.homedepot import load_homedepot, load_test_queries
from models.vector_cache import cached_vectors
from models.encoder import TextEncoder
from models.hybrid_search import HybridSearcher
from models.search_eval import search_metrics


def main() -> None:
    settings = Settings.from_env()
    limit_threads(settings.runtime.torch_threads)
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else settings.runtime.model_dir / "search" / "v0002"
    checkpoint = load_checkpoint(path)
    tower, ranker = load_search_model(settings, checkpoint)
    data = load_homedepot(Path(checkpoint.card["data"]["path"]))
    queries = load_test_queries(path / DEV_QUERIES_FILE)
    encoder = TextEncoder(max_length=settings.encoder.max_length, cache_size=settings.encoder.query_cache)
    item_vecs = cached_vectors(settings.runtime.embedding_cache_dir, encoder.model_key, data.titles,
                                  lambda texts: encoder.encode(texts, settings.encoder.batch_size, progress=True))
    print(f"catalog {len(data.items)} items, {len(queries)} dev queries, checkpoint {path}")

    started = time.perf_counter()
    live = HybridSearcher(item_vecs.shape[1], settings.search.candidates)
    for item, title, vec in zip(data.items, data.titles, item_vecs):
        live.upsert(item, title, vec)
    print(f"live index built in {time.perf_counter() - started:.1f}s")

    # Offline reference, exactly as `evaluate search` ranks (top 100 per query).
    zero_all = encoder.encode(queries)
    with torch.inference_mode():
        base = zero_all if tower.encoder is None else tower.encoder.encode(queries)
        tuned_all = tower.adapter(base)
    hybrid = HybridSearcher.from_catalog(data.items, data.titles, item_vecs, settings.search.candidates)
    offline = {q: [i for i, _ in hybrid.search(q, tuned_all[n], zero_all[n], ranker, 100)] for n, q in enumerate(queries)}

    # Live path as the gateway's query thread runs it: encode (cold LRU cache), adapt, rank.
    live_ranked, total_ms, search_ms = {}, [], []
    for q in queries:
        t0 = time.perf_counter()
        with torch.inference_mode():
            zero = encoder.encode_queries([q])[0]
            tuned = tower.adapter((zero if tower.encoder is None else tower.encoder.encode_queries([q])[0]).unsqueeze(0))[0]
        t1 = time.perf_counter()
        live_ranked[q] = [i for i, _ in live.search(q, tuned, zero, ranker, 100)]
        t2 = time.perf_counter()
        total_ms.append(1000 * (t2 - t0))
        search_ms.append(1000 * (t2 - t1))

    card = checkpoint.card.get("metrics", {}).get("dev", {}).get("model", {})
    m_live, m_off = search_metrics(data, queries, live_ranked), search_metrics(data, queries, offline)
    same = sum(live_ranked[q][:10] == offline[q][:10] for q in queries)
    print(f"nDCG@10   live {m_live['nDCG@10']:.4f}  offline (this run) {m_off['nDCG@10']:.4f}  card {card.get('nDCG@10')}")
    print(f"Recall@100 live {m_live['Recall@100']:.4f}  offline {m_off['Recall@100']:.4f}  card {card.get('Recall@100')}")
    print(f"identical top-10 lists: {same}/{len(queries)}")
    for name, ms in (("encode+search", total_ms), ("search only", search_ms)):
        print(f"latency {name}: p50 {np.percentile(ms, 50):.1f} ms  p90 {np.percentile(ms, 90):.1f} ms  "
              f"p99 {np.percentile(ms, 99):.1f} ms  (torch threads {torch.get_num_threads()})")


if __name__ == "__main__":
    main()
