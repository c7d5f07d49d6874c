"""What one /v1/search query costs, stage by stage, in-process (no HTTP, no threads).

The live searcher over the whole Home Depot catalog (cached item vectors, int8 blocks packed,
BM25 terms precomputed, as a settled gateway holds them) and the serving encoder and adapter
of a search checkpoint; each dev query (unseen: the encoder's cache is off) is timed per stage.
In the gateway the tokenizer, encoder and adapter run on one thread while BM25 runs on
another; the candidates and the ranker follow on the second.
Usage: .venv/bin/python bench/search_stages.py [var/models/search/v0001] [--queries 400]
Last line: {"stage": {"p50_ms": ..., "p90_ms": ..., "p99_ms": ...}, ...}
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from app.search_model import load_search_model
from app.search_pipeline import DEV_QUERIES_FILE
from app.settings import Settings
from app.threads import limit_threads
from models.checkpoint import load_checkpoint
from models.data.homedepot import load_homedepot, load_test_queries, normalize_query
from models.vector_cache import cached_vectors
from models.encoder import TextEncoder
from models.hybrid_search import HybridSearcher
from models.query_adapter import serving_adapter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    settings = Settings.from_env()
    parser.add_argument("checkpoint", nargs="?", type=Path, default=settings.runtime.model_dir / "search" / "v0001")
    parser.add_argument("--queries", type=int, default=400)
    args = parser.parse_args()
    limit_threads(settings.runtime.torch_threads)
    checkpoint = load_checkpoint(args.checkpoint)
    tower, ranker = load_search_model(settings, checkpoint)
    if tower.encoder is not None:
        sys.exit("this bench times the pretrained query encoder; the checkpoint fine-tuned its own")
    data = load_homedepot(Path(checkpoint.card["data"]["path"]))
    queries = [normalize_query(q) for q in load_test_queries(args.checkpoint / DEV_QUERIES_FILE)][: args.queries]
    item_encoder = TextEncoder(max_length=settings.encoder.max_length)
    vectors = cached_vectors(settings.runtime.embedding_cache_dir, item_encoder.model_key, data.titles,
                                lambda texts: item_encoder.encode(texts, settings.encoder.batch_size, progress=True))
    encoder = TextEncoder(max_length=settings.encoder.max_length, cache_size=0).for_serving(fp16=True)
    adapter = serving_adapter(tower.adapter)
    live = HybridSearcher(vectors.shape[1], settings.search.candidates)
    for item, title, vector in zip(data.items, data.titles, vectors):
        live.upsert(item, title, vector)
    live.dense.pack_all()
    while not live.warm(1.0):
        pass

    stages = ("tokenize", "encode", "adapter", "bm25", "candidates", "rank")
    times: dict[str, list[float]] = {s: [] for s in (*stages, "total")}
    with torch.inference_mode():
        for q in [*queries[:20], *queries]:  # the first 20 warm the trace up, then every query counts
            t = [time.perf_counter()]
            batch = encoder.tokenize([q])
            t.append(time.perf_counter())
            zero = encoder._traced(batch["input_ids"], batch["attention_mask"])[0]
            t.append(time.perf_counter())
            tuned = adapter(zero.unsqueeze(0))[0]
            t.append(time.perf_counter())
            lexical = live.lexical(q)
            t.append(time.perf_counter())
            features = live.candidates(q, tuned, zero, lexical=lexical).features
            t.append(time.perf_counter())
            ranker(features)
            t.append(time.perf_counter())
            for name, start, stop in zip(stages, t, t[1:]):
                times[name].append(1000 * (stop - start))
            times["total"].append(1000 * (t[-1] - t[0]))
    out = {name: {f"p{p}_ms": round(float(np.percentile(ms[20:], p)), 3) for p in (50, 90, 99)}
           for name, ms in times.items()}
    print(f"catalog {len(live)} items, {len(queries)} dev queries of {args.checkpoint}, torch threads {torch.get_num_threads()}")
    for name, figures in out.items():
        print(f"{name:11s} " + "  ".join(f"{k} {v:6.2f}" for k, v in figures.items()))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
