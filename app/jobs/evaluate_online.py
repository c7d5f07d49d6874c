"""`streamrank evaluate online`: the online learner, fed once through the real pipeline.

    streamrank evaluate online --data FILE [--attributes FILE] [--skip-offline] --json

Every user's items but the last go, interleaved in time as `replay` sends them, into Kafka
(topics of a run of their own); a worker process turns them into profiles and samples, and
its learner learns from each sample once, scoring it first. When the learner has taken every
sample, the version it serves ranks each user's last item over all items (history masked),
beside the offline model (trained on the same items), popularity and item transitions (a
one-pass streaming method itself). The progressive curve is the learner's window metric at
each version. The last stdout line is one JSON object keyed by system.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition

from app.jobs.train import add_data_arguments, data_paths
from app.plot_dir import add_plots_argument, plot_dir, write_plots
from app.settings import Settings

REPORTED = ("HR@10", "NDCG@10")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from app.jobs import evaluate_time_split

    parser = sub.add_parser("online", help="one pass through Kafka, the worker and the learner; then leave-one-out "
                                           "(or --protocol time-split: checkpoint, then prequential online learning)")
    add_data_arguments(parser)
    parser.add_argument("--protocol", choices=("one-pass", "time-split"), default="one-pass",
                        help="one-pass: through Kafka (this docstring); time-split: app/jobs/evaluate_time_split.py")
    evaluate_time_split.add_arguments(parser)
    parser.add_argument("--skip-offline", action="store_true", help="leave out the offline model (minutes to train)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the learner")
    parser.add_argument("--json", action="store_true", help="end with one JSON line (always printed; kept for scripts)")
    add_plots_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.protocol == "time-split":
        from app.jobs.evaluate_time_split import run as run_time_split

        return run_time_split(args)
    from models.data import load_sequences
    from models.data.sequences import split_leave_one_out

    started = time.monotonic()
    base = Settings.from_env()
    data_path, attr_path = data_paths(base, args)
    data = load_sequences(data_path, attr_path)
    test = split_leave_one_out(data.sequences, holdout=1)
    print(f"data: {len(data.users)} users, {data.n_items} items, {data.n_interactions} interactions")

    workdir = Path(tempfile.mkdtemp(prefix="streamrank-online-"))
    try:
        online, curve, learner_s = asyncio.run(_through_the_pipeline(base, data, test, workdir, args.timeout))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results: dict[str, Any] = {"online": online}
    results.update(_baselines_and_offline(base, data, args))
    for name, metrics in results.items():
        print(f"{name:12s}" + "".join(f"  {k} {v:.4f}" for k, v in metrics.items()))
    base_ndcg = results["transition"]["NDCG@10"]
    if base_ndcg > 0:
        print(f"online / transition NDCG@10: {online['NDCG@10'] / base_ndcg:.3f}")
    print("progressive NDCG@10 at each version: " + ", ".join(f"{p['samples']}:{p['NDCG@10']:.4f}" for p in curve))
    out = {name: {k: round(v, 6) for k, v in m.items() if k in REPORTED} for name, m in results.items()}
    result = {**out, "progressive": curve, "learner_seconds": round(learner_s, 1),
              "seconds": round(time.monotonic() - started, 1)}
    write_plots(plot_dir(base.runtime.state_dir, "evaluate-online", args.plots), result, lambda d: plot_report(result, d))
    print(json.dumps(result))
    return 0


def plot_report(result: Mapping[str, Any], directory: Path) -> list[Path]:
    """bars.png: the online learner beside the offline model and the baselines; progressive.png:
    the learner's live NDCG@10 at each version it published, against samples seen."""
    from models.plots import plot_bars, plot_curves

    systems = {name: m for name, m in result.items() if isinstance(m, dict) and set(m) & set(REPORTED)}
    paths = [plot_bars(systems, directory / "bars.png", "evaluate online: leave-one-out after one pass", "metric")]
    curve = result.get("progressive") or []
    if curve:
        paths.append(plot_curves({"online learner (live window)": [p["NDCG@10"] for p in curve]},
                                 directory / "progressive.png", "progressive NDCG@10 at each version",
                                 "samples seen", "NDCG@10",
                                 x={"online learner (live window)": [p["samples"] for p in curve]}))
    return paths


def _baselines_and_offline(settings: Settings, data: Any, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    from models.rec.protocol import evaluate_test

    if args.skip_offline:
        from models.online.evaluation import baseline_metrics

        return baseline_metrics(data)
    from app.jobs.train import fit

    _, model, _, _ = fit(settings, args)
    test = evaluate_test(data, model)
    return {"offline": test["model"], "popularity": test["popularity"], "transition": test["transition"]}


async def _through_the_pipeline(base: Settings, data: Any, test: Any, workdir: Path,
                                timeout_s: float) -> tuple[dict[str, float], list[dict[str, Any]], float]:
    from app.kafka_io import ensure_topics, produce_events, wait_for_broker
    from app.processes import free_port, learner_process, scrape, worker_process
    from app.replay_data import ReplayPlan, sequence_events
    from app.learner import load_latest
    from models.online.evaluation import leave_one_out_metrics

    run_id = uuid.uuid4().hex[:8]
    settings = base.replace(app_id=f"eval-online-{run_id}", topic_prefix=f"eval-online-{run_id}",
                       state_dir=workdir, worker_metrics_port=free_port(), learner_metrics_port=free_port(),
                       search_dense=False,
                       version_interval_s=min(base.learner.version_interval_s, 2.0),
                       # the clean stop saves the last one; this bounds what a hard stop would lose
                       checkpoint_interval_s=min(base.learner.checkpoint_interval_s, 10.0))
    await wait_for_broker(settings)
    await ensure_topics(settings)
    sequences = [(user, [data.items[i] for i in seq]) for user, seq in zip(data.users, test.train)]
    events = list(sequence_events([(u, s) for u, s in sequences if s], ReplayPlan(run=run_id)))
    await produce_events(settings, events)
    print(f"sent {len(events)} events; the worker and the learner take them now")

    worker = worker_process(settings, workdir / "worker.log").start()
    learner_proc = learner_process(settings, workdir / "learner.log").start()
    learn_start = time.monotonic()
    try:
        await _wait_until_learned(settings, len(events), timeout_s, (worker, learner_proc), scrape)
        learner_s = time.monotonic() - learn_start
    finally:
        learner_proc.stop()  # a clean stop: its last checkpoint holds every sample
        worker.stop()
    learner, _ = load_latest(settings)
    if learner.version == 0:
        raise RuntimeError(f"the learner published no version:\n{learner_proc.tail()}")
    metrics = leave_one_out_metrics(learner.serving_model(), data, test)
    curve = await _progressive_curve(settings)
    return metrics, curve, learner_s


async def _wait_until_learned(settings: Settings, n_events: int, timeout_s: float, procs: Any, scrape: Any) -> None:
    """Until every event is processed, every sample is learned and a version holds them."""
    from app.kafka_io import make_consumer

    deadline = time.monotonic() + timeout_s
    tp = TopicPartition(settings.topics.samples, 0)
    consumer = make_consumer(settings)
    await consumer.start()
    try:
        last_print = 0.0
        while True:
            for proc in procs:
                if not proc.alive():
                    raise RuntimeError(f"{proc.argv[-1]} exited:\n{proc.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the learner did not finish in {timeout_s:.0f}s:\n{procs[-1].tail()}")
            await asyncio.sleep(1.0)
            try:  # the worker counts events, the learner samples and decisions
                m = {**scrape(settings.worker.metrics_port), **scrape(settings.learner.metrics_port)}
            except OSError:
                continue
            processed = m.get("streamrank_events_processed_total", 0.0)
            learned = m.get("streamrank_learner_samples_total", 0.0) + m.get("streamrank_learner_samples_skipped_total", 0.0)
            if time.monotonic() - last_print > 10:
                print(f"  events {processed:.0f}/{n_events}, samples learned {learned:.0f}")
                last_print = time.monotonic()
            if processed < n_events:
                continue
            end = (await consumer.end_offsets([tp]))[tp]
            if learned >= end and m.get("streamrank_model_decisions_total", 0.0) > 0:
                # one more proposal after the last sample, so the served version holds it
                await asyncio.sleep(settings.learner.version_interval_s * 2 + 1)
                return
    finally:
        await consumer.stop()


async def _progressive_curve(settings: Settings) -> list[dict[str, Any]]:
    """(samples seen, live NDCG@10 over the window) of each decision the learner published."""
    from app.kafka_io import model_update_records
    from tables.wire.updates import VERSION_KINDS, read_json, read_version, signing_key, valid_records

    curve: list[dict[str, Any]] = []
    seen = 0
    for record in valid_records(await model_update_records(settings), signing_key(settings)):
        kind = record.kind
        metrics = (read_version(record).metrics if kind in VERSION_KINDS
                   else read_json(record).get("metrics") if kind == "decision" else None)
        if metrics and "live" in metrics:
            seen += metrics["live"].get("samples") or 0
            curve.append({"samples": seen, "decision": kind,
                          "NDCG@10": round(metrics["live"].get("NDCG@10") or 0.0, 4)})
    return curve
