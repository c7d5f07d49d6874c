"""Learner throughput on the synthetic shop of bench/scale.py (default 1M shoppers, 100k items,
Zipf popularity), without Kafka: the samples the worker would write for its first `--events`
events (the same profile code, tables/user_profiles.py), through `OnlineLearner.step` in
micro-batches as `streamrank learner` takes them.

On a Zipf-shaped catalogue a popular item gathers a thousand successors per count channel,
and the learner's step slows as they grow: the default-size scale run fell behind there. So
the figure that matters is the rate late in the stream, `late_samples_per_cpu_s` (its last
half). Beside it, in the same run: the same learner reading every successor of a history
item (`features_per_source` 0, how it learned before), and transition counting alone.
Progressive NDCG@10 of each learner shows what reading only the strongest successors costs,
and `gateway_counts_mb` what its counts take in a gateway, which holds only those (whole: all).
Last line: {"learner": {...}, "all_successors": {...}, "gateway_counts_mb": {...}, "counting_samples_per_cpu_s": ..., ...}.
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import sys
import time
import tracemalloc
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.learner import guard_config, to_model_samples
from app.settings import Settings
from app.threads import limit_threads
from models.data.synthetic_shop import ShopConfig, SyntheticShop
from models.online.click_model import OnlineClickConfig, OnlineClickModel
from models.online.rec_model import OnlineRecConfig, OnlineRecModel
from models.online.versions import OnlineLearner
from models.rec.online_transitions import OnlineTransitions
from tables import user_profiles
from tables.wire.records import decode_event

Stream = list[tuple[list[tuple[list[str], str]], list]]  # micro-batches of (rec samples, click samples)


def shop_batches(settings: Settings, shop: SyntheticShop, events: int, batch: int) -> Stream:
    """The worker's samples for the shop's first `events` events, cut into learner batches."""
    profiles: dict[str, dict] = {}
    made: list[dict] = []
    for offset, record in enumerate(shop.events(events, time.time() - 3600.0, 3600.0)):
        event = decode_event(orjson.dumps(record), settings.limits.event_bytes, time.time())
        profile = profiles.get(event.user_id) or user_profiles.empty()
        profiles[event.user_id], samples = user_profiles.apply_event_and_sample(
            profile, event, 0, offset, settings.features.recent_items, settings.online.impression_window_s)
        made.extend(samples)
    return [to_model_samples(made[start:start + batch]) for start in range(0, len(made), batch)]


def learn(settings: Settings, stream: Stream, per_source: int) -> tuple[dict[str, float], OnlineRecModel]:
    """One learner as `streamrank learner` builds it (app.learner.new_learner), cut at `per_source`."""
    o = settings.online
    rec = OnlineRecModel(OnlineRecConfig(dim=o.dim, capacity=o.capacity, num_shards=o.shards, min_count=o.min_count,
                                         features_per_source=per_source))
    click = OnlineClickModel(OnlineClickConfig(capacity=o.capacity, num_shards=o.shards, min_count=o.min_count))
    learner = OnlineLearner(rec, click, dataclasses.replace(guard_config(settings), min_samples=10**9))
    half = len(stream) // 2
    cpu = [0.0, 0.0]
    for n, (rec_samples, click_samples) in enumerate(stream):
        started = time.process_time()
        learner.step(rec_samples, click_samples)
        cpu[n >= half] += time.process_time() - started
    count = [sum(len(r) + len(c) for r, c in part) for part in (stream[:half], stream[half:])]
    return {"samples_per_cpu_s": round(sum(count) / sum(cpu), 1), "early_samples_per_cpu_s": round(count[0] / cpu[0], 1),
            "late_samples_per_cpu_s": round(count[1] / cpu[1], 1), "cpu_s": round(sum(cpu), 1),
            "progressive_NDCG@10": round(learner.live_window.ndcg(), 4), "scored_samples": learner.live_window.count,
            "items": len(rec.store), "count_edges": rec.counts.edges()}, rec


def reader_counts_mb(rec: OnlineRecModel) -> dict[str, float]:
    """MB the model's counts take in a reader (a gateway's version: each row's strongest
    `features_per_source` successors), and whole, by tracemalloc over loading them."""
    arrays = rec.counts.to_arrays()  # as a version carries them
    out = {}
    for name, keep in (("reader_counts_mb", rec.config.features_per_source), ("whole_counts_mb", 0)):
        gc.collect()
        tracemalloc.start()
        counts = rec.counts.empty_like()
        counts.load_arrays(arrays, keep=keep)
        out[name] = round(tracemalloc.get_traced_memory()[0] / 2**20, 1)
        tracemalloc.stop()
        del counts
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--shoppers", type=int, default=ShopConfig.shoppers)
    parser.add_argument("--items", type=int, default=ShopConfig.items)
    parser.add_argument("--batch", type=int, default=None, help="samples per micro-batch (default: the setting learner_batch)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/torch threads (the learner is held to one core)")
    args = parser.parse_args()
    limit_threads(args.threads)
    settings = Settings.from_env()
    batch = args.batch or settings.learner.batch
    stream = shop_batches(settings, SyntheticShop(ShopConfig(shoppers=args.shoppers, items=args.items)), args.events, batch)
    rec_samples = [s for r, _ in stream for s in r]
    counter = OnlineTransitions()
    started = time.process_time()
    for history, target in rec_samples:
        counter.learn_one(history[-1] if history else None, target)
    counting_cpu = time.process_time() - started
    learner, rec = learn(settings, stream, OnlineRecConfig.features_per_source)
    counts_mb = reader_counts_mb(rec)  # once: a learner reading every successor has the same counts
    del rec
    print(json.dumps({"learner": learner, "gateway_counts_mb": counts_mb}), flush=True)
    every, _ = learn(settings, stream, 0)
    print(json.dumps({
        "learner": learner, "all_successors": every, "gateway_counts_mb": counts_mb,
        "late_ratio": round(learner["late_samples_per_cpu_s"] / every["late_samples_per_cpu_s"], 2),
        "counting_samples_per_cpu_s": round(len(rec_samples) / counting_cpu, 1),
        "features_per_source": OnlineRecConfig.features_per_source, "events": args.events,
        "rec_samples": len(rec_samples), "click_samples": sum(len(c) for _, c in stream), "batch": batch,
        "shoppers": args.shoppers, "items": args.items, "threads": args.threads}))


if __name__ == "__main__":
    main()
