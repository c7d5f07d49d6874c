"""Retrieval passes over all item vectors, measured: float32, int8, batched; is an ANN index worth it?

For the shapes streamrank serves, times one pass (matrix product + top-k) per user when
users come one at a time and when concurrent requests are batched (what the gateway's
RankBatcher does): float32 in torch and in numpy (what the recommender serves), and over
int8 rows (`models.dense_index.pack_rows`, what the search gateway scans), with how much of
the exact top k the int8 pass's candidates hold, on:
- the recommender's item vectors (the newest `var/models/rec-embeddings` version, else
  random vectors of the Beauty shape, 12,101 x 64);
- the search catalog's MiniLM vectors (the gateway's vector cache under var/cache, else
  random vectors of the Home Depot shape, 45,782 x 384).
Search takes the int8 top k as its dense candidates and computes their features in float32,
so what it ranks differs from the exact pass only where the int8 top k misses an exact one. For comparison, the recall an IVF index (the usual ANN
for this size) gets at a given share of the catalog scanned. Last line is JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.settings import Settings
from app.threads import limit_threads
from models.checkpoint import version_dirs
from models.dense_index import int8_supported, pack_rows


def item_vectors(settings: Settings) -> tuple[str, torch.Tensor]:
    versions = version_dirs(settings.runtime.model_dir / "rec-embeddings")
    if versions:
        from models.rec.embedding_version import EmbeddingRecVersion

        model = EmbeddingRecVersion.from_checkpoint(str(versions[-1]))
        return model.version, model.vectors
    return "random-12101x64", torch.nn.functional.normalize(torch.randn(12_101, 64), dim=1)


def search_vectors(settings: Settings) -> tuple[str, torch.Tensor]:
    """The Home Depot catalog's MiniLM vectors from the gateway's vector cache, else random."""
    from models.encoder import DIM
    from models.vector_cache import VectorCache

    for path in sorted((settings.runtime.state_dir / "cache").glob("item-vectors-minilm-*.safetensors")):
        vectors = VectorCache(path, DIM).vectors
        if vectors:
            return "homedepot-minilm", torch.stack(list(vectors.values()))
    return "random", torch.nn.functional.normalize(torch.randn(45_782, 384), dim=1)


def per_user_us(vectors: torch.Tensor, batch: int, k: int, seconds: float, kind: str = "torch",
                packed: object = None) -> float:
    """Microseconds per user of one pass over `vectors` and a top-k: "torch" float32, "numpy"
    float32 (`EmbeddingRecVersion.rank_many`: one BLAS product, torch's top-k on its memory), or
    "int8" over `packed` (its top k are the search gateway's dense candidates)."""
    users = torch.nn.functional.normalize(torch.randn(batch, vectors.shape[1]), dim=1)
    matrix, users_np = vectors.numpy(), users.numpy()

    def one() -> None:
        if kind == "torch":
            torch.topk(users @ vectors.T, k, dim=1)
        elif kind == "numpy":
            scores = np.ascontiguousarray((matrix @ np.ascontiguousarray(users_np.T)).T)
            torch.topk(torch.from_numpy(scores), k, dim=1)
        else:
            torch.topk(torch.ops.quantized.linear_dynamic(users, packed, True), k, dim=1)

    one()  # warm up
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        one()
        done += batch
    return (time.perf_counter() - started) / done * 1e6


def int8_recall(vectors: torch.Tensor, packed: object, k: int, n: int = 500) -> float:
    """Share of the exact top k that the int8 pass's top k holds (the search gateway's dense
    candidates: their features are then float32), for queries made like real ones (means
    of a few item vectors)."""
    gen = torch.Generator().manual_seed(0)
    picks = torch.randint(vectors.shape[0], (n, 3), generator=gen)
    users = torch.nn.functional.normalize(vectors[picks].mean(1), dim=1)
    exact = torch.topk(users @ vectors.T, k, dim=1).indices
    approx = torch.topk(torch.ops.quantized.linear_dynamic(users, packed, True), k, dim=1).indices
    found = sum(len(set(e.tolist()) & set(a.tolist())) for e, a in zip(exact, approx))
    return found / exact.numel()


def ivf_recall(vectors: torch.Tensor, k: int, lists: int = 128, probes: tuple[int, ...] = (16, 32),
               n: int = 300) -> dict[str, float]:
    """An IVF index (k-means into `lists` cells, a query scans its `probe` nearest cells): the
    share of the catalog scanned and of the exact top k found, per probe count, for item-like
    queries. What an ANN index would trade against the exact int8 pass."""
    gen = torch.Generator().manual_seed(0)
    centroids = vectors[torch.randperm(vectors.shape[0], generator=gen)[:lists]].clone()
    for _ in range(12):  # Lloyd's iterations on the unit sphere
        cell = (vectors @ centroids.T).argmax(1)
        for c in range(lists):
            members = vectors[cell == c]
            if len(members):
                centroids[c] = torch.nn.functional.normalize(members.mean(0), dim=0)
    cell = (vectors @ centroids.T).argmax(1)
    picks = torch.randint(vectors.shape[0], (n, 3), generator=gen)
    users = torch.nn.functional.normalize(vectors[picks].mean(1), dim=1)
    exact = torch.topk(users @ vectors.T, k, dim=1).indices
    out: dict[str, float] = {}
    for probe in probes:
        nearest = torch.topk(users @ centroids.T, probe, dim=1).indices
        scanned = found = 0.0
        for top, cells in zip(exact, nearest):
            inside = torch.isin(cell, cells)
            scanned += float(inside.float().mean())
            found += float(inside[top].float().mean())
        out[f"ivf{lists}_probe{probe}_scanned"] = round(scanned / n, 3)
        out[f"ivf{lists}_probe{probe}_recall_at_{k}"] = round(found / n, 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the gateway runs 1)")
    args = parser.parse_args()
    limit_threads(args.threads)
    settings = Settings.from_env()
    name, rec = item_vectors(settings)
    search_name, search = search_vectors(settings)
    out: dict[str, dict[str, float]] = {}
    for label, vectors, k in ((f"recommend ({name}, {rec.shape[0]}x{rec.shape[1]})", rec, 50),
                              (f"search ({search_name}, {search.shape[0]}x{search.shape[1]})", search, 200)):
        row = {f"batch_{b}_us_per_user": round(per_user_us(vectors, b, k, args.seconds), 1) for b in (1, 4, 16, 64)}
        row["batching_gain_16"] = round(row["batch_1_us_per_user"] / row["batch_16_us_per_user"], 2)
        for b in (1, 4, 16):
            row[f"numpy_batch_{b}_us_per_user"] = round(per_user_us(vectors, b, k, args.seconds, "numpy"), 1)
        if int8_supported():
            packed = pack_rows(vectors)
            for b in (1, 16):
                row[f"int8_batch_{b}_us_per_user"] = round(per_user_us(vectors, b, k, args.seconds, "int8", packed), 1)
            row["int8_speedup_1"] = round(row["batch_1_us_per_user"] / row["int8_batch_1_us_per_user"], 2)
            row[f"int8_top_{k}_recall"] = round(int8_recall(vectors, packed, k), 4)
        row.update(ivf_recall(vectors, k))
        out[label] = row
        print(label, row, flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
