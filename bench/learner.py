"""Learner throughput: samples per second through the online learner's step (score with the
live and the serving model, then learn), on the Amazon Beauty stream in replay order.

Beside it, in the same run, the one-pass transition counter on the same samples (the
streaming baseline the learner must beat on quality) gives the cost of counting alone.
Shards go to every CUDA device present (else the CPU); `--devices cpu` forces the CPU.
Then one checkpoint of that learner (`OnlineLearner.save`): its save and load time (CPU
seconds) and size, beside the learning time of the run (the share of it a checkpoint costs).
Last line: {"learner_samples_per_s": ..., "counting_samples_per_s": ..., "ratio": ..., "device": ...,
"checkpoint": {"save_cpu_s": ..., "load_cpu_s": ..., "bytes": ..., "card_bytes": ...}}
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import orjson
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.data.sequences import load_sequences  # noqa: E402
from models.online.click_model import OnlineClickModel  # noqa: E402
from models.online.rec_model import OnlineRecConfig, OnlineRecModel  # noqa: E402
from models.online.versions import LearnerConfig, OnlineLearner  # noqa: E402
from models.rec.online_transitions import OnlineTransitions  # noqa: E402
from models.sharding import available_devices  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from online_quality import training_stream  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon-beauty" / "Beauty.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--devices", choices=("auto", "cpu"), default="auto")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] if args.devices == "cpu" else available_devices()
    data = load_sequences(args.data)
    stream = training_stream(data)[: args.samples]

    counter = OnlineTransitions()
    started = time.perf_counter()
    for history, target in stream:
        counter.learn_one(history[-1] if history else None, target)
    counting_s = time.perf_counter() - started

    rec = OnlineRecModel(OnlineRecConfig(num_shards=len(devices), capacity=max(1, data.n_items)), devices)
    learner = OnlineLearner(rec, OnlineClickModel(devices=devices), LearnerConfig(min_samples=10**9))
    started = time.perf_counter()
    for start in range(0, len(stream), args.batch):
        learner.step(stream[start:start + args.batch])
    if devices[0].type == "cuda":
        torch.cuda.synchronize()
    learner_s = time.perf_counter() - started
    out = {
        "learner_samples_per_s": round(len(stream) / learner_s, 1),
        "counting_samples_per_s": round(len(stream) / counting_s, 1),
        "ratio": round(counting_s / learner_s, 4),
        "samples": len(stream), "batch": args.batch, "items": rec.store.__len__(),
        "device": ",".join(str(d) for d in devices), "threads": args.threads,
        "progressive_NDCG@10": round(learner.live_window.ndcg(), 4),
        "checkpoint": checkpoint_cost(learner, learner_s),
    }
    print(json.dumps(out))


def checkpoint_cost(learner: OnlineLearner, learner_s: float) -> dict[str, float]:
    """Save and load one checkpoint; CPU seconds (the process's, all threads) and bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        started, wall = time.process_time(), time.perf_counter()
        path = learner.save(Path(tmp) / "ckpt", {"samples": 0})
        save_cpu, save_wall = time.process_time() - started, time.perf_counter() - wall
        files = {f.name: f.stat().st_size for f in path.iterdir()}
        started = time.process_time()
        OnlineLearner.load(path)
        load_cpu = time.process_time() - started
    # Baseline, same run: what the counts cost as JSON in the card, as checkpoints held them before.
    started = time.process_time()
    json_bytes = sum(len(orjson.dumps(m.counts.to_json())) for m in (learner.live_rec, learner.serving_rec))
    json_cpu = time.process_time() - started
    return {"save_cpu_s": round(save_cpu, 3), "save_wall_s": round(save_wall, 3), "load_cpu_s": round(load_cpu, 3),
            "bytes": sum(files.values()), "card_bytes": files.get("card.json", 0),
            "save_share_of_learning": round(save_wall / learner_s, 4),
            "baseline_json_counts": {"cpu_s": round(json_cpu, 3), "bytes": json_bytes}}


if __name__ == "__main__":
    main()
