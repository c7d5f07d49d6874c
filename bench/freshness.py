"""Freshness: from an event entering Kafka to (a) the gateway's user state showing it and
(b) a served model version that learned from it.

Starts Kafka if none runs, then a worker, a learner and a gateway on topics of a
run of their own; warms the learner up with Beauty events so versions flow. Each trial
produces two views by a new user, item A then item B (both ids new), and polls the gateway:
(a) `/v1/users/{user}` lists B; (b) `/v1/items/A/similar`, ranked by the online model's
served version, lists B (only a version that learned A -> B can). The version interval is
a setting (`--version-interval`), which bounds (b) from below.
Last line: {"user_state_ms": {"p50": ..., "p95": ...}, "model_version_ms": {...}, ...}
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.kafka_io import ensure_topics, produce_events, wait_for_broker
from app.plot_dir import add_plots_argument, plot_dir, write_plots
from app.processes import free_port, gateway_process, learner_process, scrape, wait_until, worker_process
from tables.wire.records import UserEvent
from app.replay_data import read_sequences, sequence_events
from app.settings import ROOT, Settings
from models.errors import BrokerUnavailable
from run_topics import drop_run_topics


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def produce(settings: Settings, events: list[UserEvent]) -> float:
    """Send and wait for the acks; returns the time the last one was acknowledged."""
    await produce_events(settings, events)
    return time.monotonic()


def trial(settings: Settings, base: str, n: int, run: str, timeout_s: float) -> tuple[float, float]:
    user, a, b = f"{run}-u{n}", f"{run}-a{n}", f"{run}-b{n}"
    now = time.time()
    events = [UserEvent(f"{run}:{n}:0", user, "view", now, a), UserEvent(f"{run}:{n}:1", user, "view", now, b)]
    sent = asyncio.run(produce(settings, events))
    state_s = model_s = None
    deadline = sent + timeout_s
    while (state_s is None or model_s is None) and time.monotonic() < deadline:
        if state_s is None:
            try:
                if b in get_json(f"{base}/v1/users/{user}").get("recent_items", []):
                    state_s = time.monotonic() - sent
            except OSError:
                pass  # 404 until the profile exists
        if model_s is None:
            answer = get_json(f"{base}/v1/items/{a}/similar?k=10")
            if answer["model_version"].startswith("online-v") or "+online-v" in answer["model_version"]:
                if b in [i["item_id"] for i in answer["items"]]:
                    model_s = time.monotonic() - sent
        time.sleep(0.01)
    if state_s is None or model_s is None:
        raise TimeoutError(f"trial {n}: state {state_s}, model {model_s} after {timeout_s}s")
    return state_s * 1000, model_s * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--warmup-events", type=int, default=20_000)
    parser.add_argument("--version-interval", type=float, default=1.0, help="seconds between learner versions")
    add_plots_argument(parser)
    args = parser.parse_args()
    run = f"fresh-{uuid.uuid4().hex[:8]}"
    state = Path(tempfile.mkdtemp(prefix="streamrank-fresh-"))
    settings = Settings.from_env().replace(app_id=run, topic_prefix=run, state_dir=state, search_dense=False,
                       worker_metrics_port=free_port(), gateway_port=free_port(), learner_metrics_port=free_port(),
                       version_interval_s=args.version_interval, guard_min_samples=1, learner_poll_s=0.05)
    try:
        asyncio.run(wait_for_broker(settings, timeout_s=5))
    except BrokerUnavailable:
        subprocess.run([str(ROOT / "scripts" / "kafka.sh"), "start"], check=True)
    asyncio.run(ensure_topics(settings))
    warm = list(itertools.islice(sequence_events(read_sequences(settings.runtime.data_dir / "amazon-beauty" / "Beauty.txt")),
                                 args.warmup_events))
    worker = worker_process(settings, state / "worker.log").start()
    learner = learner_process(settings, state / "learner.log").start()
    gateway = gateway_process(settings, state / "gateway.log").start()
    base = f"http://127.0.0.1:{settings.gateway.port}"
    try:
        asyncio.run(produce(settings, warm))
        wait_until(lambda: get_json(f"{base}/readyz")["ready"], 300, 1.0, "gateway ready")
        wait_until(lambda: "online-v" in get_json(f"{base}/v1/items/{warm[-1].item_id}/similar")["model_version"],
                   600, 1.0, "a first online version served")
        # Measured on a quiet pipeline: every warm-up event applied and every sample learned.
        def caught_up() -> bool:
            m = {**scrape(settings.worker.metrics_port), **scrape(settings.learner.metrics_port)}
            learned = m.get("streamrank_learner_samples_total", 0) + m.get("streamrank_learner_samples_skipped_total", 0)
            return m.get("streamrank_events_processed_total", 0) >= len(warm) and learned >= m.get("streamrank_samples_total", 0)
        wait_until(caught_up, 900, 1.0, "worker and learner caught up with the warm-up")
        print(f"warmed up with {len(warm)} events; serving "
              f"{get_json(f'{base}/v1/items/{warm[-1].item_id}/similar')['model_version']}", flush=True)
        state_ms, model_ms = [], []
        for n in range(args.trials):
            s, m = trial(settings, base, n, run, timeout_s=120)
            state_ms.append(s)
            model_ms.append(m)
            print(f"trial {n}: user state {s:.0f} ms, model version {m:.0f} ms", flush=True)
        out = {
            "user_state_ms": {"p50": round(statistics.median(state_ms), 1), "p95": round(percentile(state_ms, 0.95), 1)},
            "model_version_ms": {"p50": round(statistics.median(model_ms), 1),
                                 "p95": round(percentile(model_ms, 0.95), 1)},
            "version_interval_s": args.version_interval, "trials": args.trials,
        }
        write_plots(plot_dir(Settings.from_env().runtime.state_dir, "bench-freshness", args.plots), out,
                    lambda d: plot_freshness(state_ms, model_ms, args.version_interval, d))
        print(json.dumps(out))
    finally:
        gateway.stop()
        learner.stop()
        worker.stop()
    drop_run_topics(settings)  # a run that failed raised before: its topics stay with its logs


def plot_freshness(state_ms: list[float], model_ms: list[float], interval_s: float, directory: Path) -> list[Path]:
    """freshness.png: the distribution of both delays over the trials, p50/p95/p99 marked."""
    from models.plots import plot_distribution

    return [plot_distribution({"user state shows the event": state_ms,
                               f"a served version learned it (interval {interval_s:g} s)": model_ms},
                              directory / "freshness.png", "bench/freshness.py: event in Kafka -> visible",
                              "milliseconds after the produce was acknowledged")]


if __name__ == "__main__":
    main()
