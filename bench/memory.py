"""Memory of the online embedding tables: bytes per row against the raw row, and resident
memory over time while ids that were never seen before keep arriving.

The online next-item model learns from an endless synthetic stream: every sample brings
new item ids (and some repeats, so admission and eviction both work). The store is bounded
by `--capacity` rows per shard; the transition counts forget evicted items. Every
`--report-every` samples it prints rows, evictions and RSS; RSS must stay flat once the
table is full. Bytes per row are measured three ways: the training rows (fp32 weights +
Adagrad accumulator + version), and the fp16 and int8 serving copies, each against the raw
fp32 row (dim x 4 bytes).
Last line: {"raw_row_bytes": ..., "train_row_bytes": ..., "fp16_row_bytes": ..., "int8_row_bytes": ...,
            "rss_mb": [...], "rss_growth_after_full_mb": ..., ...}
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.threads import limit_threads
from models.online.rec_model import OnlineRecConfig, OnlineRecModel


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def stream(batch: int, seed: int):
    """Batches of (history, target): ids mostly new, a fifth drawn from the recent past."""
    g = torch.Generator().manual_seed(seed)
    next_id = 0
    while True:
        samples = []
        for _ in range(batch):
            if next_id > 100 and torch.rand(1, generator=g).item() < 0.2:
                back = int(torch.randint(1, 100, (1,), generator=g))
                a, b = f"i{next_id - back}", f"i{next_id - back + 1}"
            else:
                a, b = f"i{next_id}", f"i{next_id + 1}"
                next_id += 1
            samples.append(([a], b))
        yield samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--capacity", type=int, default=50_000, help="rows per shard")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--report-every", type=int, default=100_000)
    parser.add_argument("--version-every", type=int, default=10_000, help="samples between versions")
    args = parser.parse_args()
    limit_threads(1)
    model = OnlineRecModel(OnlineRecConfig(dim=args.dim, capacity=args.capacity, num_shards=args.shards,
                                           negatives=256))
    store = model.store
    rss: list[float] = []
    full_at: float | None = None
    seen = 0
    started = time.monotonic()
    for batch in stream(args.batch, seed=0):
        model.learn(batch)
        seen += len(batch)
        if seen % args.version_every < args.batch:
            # What the learner does at each promoted version: changes shipped, evictions pruned.
            model.changed_sources.clear()
            model.changed_popularity.clear()
            store.prune_evicted(store.version)
        if seen % args.report_every < args.batch:
            rows = [len(s.rows) for s in store.shards]
            rss.append(round(rss_mb(), 1))
            if full_at is None and all(r >= args.capacity for r in rows):
                full_at = rss[-1]
            print(f"{seen:>9d} samples  rows/shard {rows}  evicted {store.evictions}  "
                  f"edges {model.counts.edges()}  rss {rss[-1]:.0f} MB", flush=True)
        if seen >= args.samples:
            break
    rows = len(store)
    raw = args.dim * 4
    train_bytes = sum(store.memory_bytes()) / (args.capacity * len(store.shards))
    fp16, int8 = store.serving_copy("fp16"), store.serving_copy("int8")
    out = {
        "raw_row_bytes": raw,
        "train_row_bytes": round(train_bytes, 1),
        "fp16_row_bytes": round(fp16.memory_bytes() / rows, 1),
        "int8_row_bytes": round(int8.memory_bytes() / rows, 1),
        "int8_vs_raw": round(int8.memory_bytes() / rows / raw, 3),
        "rows": rows, "capacity": args.capacity * len(store.shards), "evicted": store.evictions,
        "samples": seen, "seconds": round(time.monotonic() - started, 1),
        "rss_mb": rss,
        "rss_growth_after_full_mb": round(rss[-1] - full_at, 1) if full_at is not None else None,
    }
    assert rows <= args.capacity * len(store.shards), "over the budget"
    print(json.dumps(out))


if __name__ == "__main__":
    main()
