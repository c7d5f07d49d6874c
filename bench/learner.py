"""Learner throughput: samples per second through the online learner's step (score with the
live and the serving model, then learn), on the Amazon Beauty stream in replay order.

Beside it, in the same run, the one-pass transition counter on the same samples (the
streaming baseline the learner must beat on quality) gives the cost of counting alone.
Shards go to every CUDA device present (else the CPU); `--devices cpu` forces the CPU.
Then one checkpoint of that learner (`OnlineLearner.save`): its save and load time (CPU
seconds) and size, beside the learning time of the run (the share of it a checkpoint costs).
Then the neural learner (OnlineSASRec, issue 17) on the first `--neural-samples` of the stream,
and the whole learner with it inside, within its time share (`--neural-share`).
Last line: {"learner_samples_per_s": ..., "counting_samples_per_s": ..., "ratio": ..., "device": ...,
"checkpoint": {"save_cpu_s": ..., "load_cpu_s": ..., "bytes": ..., "card_bytes": ...},
"neural": {"samples_per_s": ..., "samples_per_cpu_s": ..., "samples": ...},
"with_neural": {"samples_per_cpu_s": ..., "neural_learned_share": ..., ...}}
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

from app.plot_dir import add_plots_argument, plot_dir, write_plots
from app.settings import Settings
from app.threads import limit_threads
from models.data.sequences import Dataset, load_sequences
from models.online.click_model import OnlineClickModel
from models.online.rec_model import OnlineRecConfig, OnlineRecModel
from models.online.versions import LearnerConfig, OnlineLearner
from models.rec.neural_learning import NeuralLearning, step_both
from models.rec.neural_version import NeuralRecVersion
from models.rec.online_neural import OnlineSASRec, OnlineSASRecConfig
from models.rec.online_transitions import OnlineTransitions
from models.rec.sasrec import SASRec, SASRecConfig
from models.sharding import available_devices

sys.path.insert(0, str(Path(__file__).resolve().parent))
from online_quality import training_stream

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon-beauty" / "Beauty.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--devices", choices=("auto", "cpu"), default="auto")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/torch threads (the target is one core)")
    parser.add_argument("--validation-share", type=float, default=None,
                        help="share of rank samples scored (default: the setting learner_validation_share)")
    parser.add_argument("--neural-samples", type=int, default=20_000, help="samples through the neural learner")
    parser.add_argument("--neural-share", type=float, default=None,
                        help="time share of the neural model in the whole learner (default: the setting learner_neural_share)")
    add_plots_argument(parser)
    args = parser.parse_args()
    limit_threads(args.threads)
    devices = [torch.device("cpu")] if args.devices == "cpu" else available_devices()
    data = load_sequences(args.data)
    stream = training_stream(data)[: args.samples]

    share = args.validation_share if args.validation_share is not None else Settings().learner.validation_share
    counter = OnlineTransitions()
    started, cpu = time.perf_counter(), time.process_time()
    for history, target in stream:
        counter.learn_one(history[-1] if history else None, target)
    counting_s, counting_cpu = time.perf_counter() - started, time.process_time() - cpu

    rec = OnlineRecModel(OnlineRecConfig(num_shards=len(devices), capacity=max(1, data.n_items)), devices)
    learner = OnlineLearner(rec, OnlineClickModel(devices=devices), LearnerConfig(min_samples=10**9, validation_share=share))
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(stream), args.batch):
        learner.step(stream[start:start + args.batch])
    if devices[0].type == "cuda":
        torch.cuda.synchronize()
    learner_s, learner_cpu = time.perf_counter() - started, time.process_time() - cpu
    out = {
        # Per CPU-second of this process (all its threads): what one core sustains, and a
        # figure a busy shared machine moves far less than the wall rate beside it.
        "learner_samples_per_cpu_s": round(len(stream) / learner_cpu, 1),
        "counting_samples_per_cpu_s": round(len(stream) / counting_cpu, 1),
        "ratio": round(counting_cpu / learner_cpu, 4),
        "learner_samples_per_s": round(len(stream) / learner_s, 1),
        "counting_samples_per_s": round(len(stream) / counting_s, 1),
        "validation_share": share, "scored_samples": learner.live_window.count,
        "samples": len(stream), "batch": args.batch, "items": rec.store.__len__(),
        "device": ",".join(str(d) for d in devices), "threads": args.threads,
        "progressive_NDCG@10": round(learner.live_window.ndcg(), 4),
        "checkpoint": checkpoint_cost(learner, learner_s),
        "neural": neural_rate(data, stream[: args.neural_samples], args.batch, devices),
        "with_neural": with_neural(data, stream, args.batch, devices, share, args.neural_share),
    }
    write_plots(plot_dir(Settings.from_env().runtime.state_dir, "bench-learner", args.plots), out, lambda d: plot_rates(out, d))
    print(json.dumps(out))


def plot_rates(out: dict, directory: Path) -> list[Path]:
    """rate.png: the learner's samples per CPU second beside counting alone (the baseline), same run."""
    from models.plots import plot_bars

    return [plot_bars({"transition counting": {"samples/CPU s": out["counting_samples_per_cpu_s"]},
                       f"online learner ({out['device']})": {"samples/CPU s": out["learner_samples_per_cpu_s"]}},
                      directory / "rate.png", "bench/learner.py: learning rate", "samples per CPU second")]


def neural_rate(data: Dataset, stream: list[tuple[list[str], str]], batch: int,
                devices: list[torch.device]) -> dict[str, float]:
    """Samples/s of the neural learner (OnlineSASRec, models/rec/online_neural.py) on the same stream.

    Warm-started from an untrained checkpoint of the served shape: the cost of a step does not
    depend on what the weights hold. Learning only (the time-split protocol scores separately).
    """
    checkpoint = SASRec(SASRecConfig(n_items=data.n_items, dropout=0.5))
    model = OnlineSASRec.warm_start(checkpoint, data.items, OnlineSASRecConfig(num_shards=len(devices)), devices)
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(stream), batch):
        model.learn([[*history[-model.max_len:], target] for history, target in stream[start:start + batch]])
    if devices[0].type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"samples_per_s": round(len(stream) / wall, 1), "samples_per_cpu_s": round(len(stream) / cpu, 1),
            "samples": len(stream)}


def with_neural(data: Dataset, stream: list[tuple[list[str], str]], batch: int, devices: list[torch.device],
                validation_share: float, share: float | None) -> dict[str, float]:
    """The whole learner as `streamrank learner` runs it when a rec-neural version exists: the
    count model's step, then the neural model's (models/rec/neural_learning.py) within its time
    share, on the whole stream as fast as it goes (no idle time: the share is the lowest it gets).
    Reports samples/CPU-s of the two together and the share of samples the neural model learned."""
    defaults = Settings().learner
    share = share if share is not None else defaults.neural_share
    checkpoint = SASRec(SASRecConfig(n_items=data.n_items, dropout=0.5))
    start = NeuralRecVersion.from_model(OnlineSASRec.warm_start(checkpoint, data.items, OnlineSASRecConfig(
        num_shards=len(devices)), devices), "bench", 0.0)
    rec = OnlineRecModel(OnlineRecConfig(num_shards=len(devices), capacity=max(1, data.n_items)), devices)
    learner = OnlineLearner(rec, OnlineClickModel(devices=devices), LearnerConfig(min_samples=10**9,
                                                                                 validation_share=validation_share))
    neural = NeuralLearning(start, LearnerConfig(min_samples=10**9, validation_share=validation_share), share=share,
                            blend_window=defaults.neural_blend_samples,
                            model_config=OnlineSASRecConfig(num_shards=len(devices)))
    learned = 0
    started, cpu = time.perf_counter(), time.process_time()
    for first in range(0, len(stream), batch):
        report = step_both(learner, neural, stream[first:first + batch])
        learned += report.learned if report is not None else 0
    if devices[0].type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"samples_per_cpu_s": round(len(stream) / cpu, 1), "samples_per_s": round(len(stream) / wall, 1),
            "neural_share": share, "neural_learned": learned, "neural_learned_share": round(learned / len(stream), 4),
            "neural_samples_per_s": round(learned / wall, 1), "blend_samples": len(neural.picker.gains)}


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
