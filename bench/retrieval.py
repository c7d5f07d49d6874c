"""Exact top-k retrieval in torch, measured: is an ANN index worth its costs here?

For the shapes streamrank serves, times one exact pass (matrix product + top-k) per user
when users come one at a time and when concurrent requests are batched (what the gateway's
RankBatcher does), on:
- the recommender's item vectors (the newest `var/models/rec-embeddings` version, else
  random vectors of the Beauty shape, 12,101 x 64);
- the search catalog's MiniLM vectors (Home Depot shape, 45,782 x 384).
An ANN index would cut the scan but lose recall, and must be kept current as the catalog
changes; the numbers say where that trade could pay. Last line is JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.settings import Settings  # noqa: E402


def item_vectors(settings: Settings) -> tuple[str, torch.Tensor]:
    versions = sorted((settings.model_dir / "rec-embeddings").glob("v*")) if (settings.model_dir / "rec-embeddings").is_dir() else []
    if versions:
        from models.rec.embedding_version import EmbeddingRecVersion

        model = EmbeddingRecVersion.from_checkpoint(str(versions[-1]))
        return model.version, model.vectors
    return "random-12101x64", torch.nn.functional.normalize(torch.randn(12_101, 64), dim=1)


def per_user_us(vectors: torch.Tensor, batch: int, k: int, seconds: float) -> float:
    users = torch.nn.functional.normalize(torch.randn(batch, vectors.shape[1]), dim=1)
    torch.topk(users @ vectors.T, k, dim=1)  # warm up
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        torch.topk(users @ vectors.T, k, dim=1)
        done += batch
    return (time.perf_counter() - started) / done * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the gateway runs 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    name, rec = item_vectors(Settings.from_env())
    search = torch.nn.functional.normalize(torch.randn(45_782, 384), dim=1)
    out: dict[str, dict[str, float]] = {}
    for label, vectors, k in ((f"recommend ({name}, {rec.shape[0]}x{rec.shape[1]})", rec, 50),
                              (f"search ({search.shape[0]}x{search.shape[1]})", search, 200)):
        row = {f"batch_{b}_us_per_user": round(per_user_us(vectors, b, k, args.seconds), 1) for b in (1, 4, 16, 64)}
        row["batching_gain_16"] = round(row["batch_1_us_per_user"] / row["batch_16_us_per_user"], 2)
        out[label] = row
        print(label, row, flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
