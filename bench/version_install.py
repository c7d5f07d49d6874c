"""How long a gateway's event loop waits while it installs the learner's versions.

A gateway builds each version the learner publishes (every `version_interval_s`, 5 s) on its
event loop, in slices of about a millisecond between requests (`between_requests` in
app/gateway/model_updates.py); it was a thread, which holds the GIL for up to the switch
interval between bytecodes and for the whole of one C call (a JSON parse, a collection).
Every request that comes during a slice, a C call or a collection waits that long, so a
build shows in /v1/recommend's p99 though no handler got slower.

The versions here are the learner's on the scale shop of bench/scale.py (default 1M
shoppers, 100k items, Zipf popularity), one per `--version-every` events (the worker's 3,000
events/s times the interval). They are signed and handed to the gateway's own follower
(`ModelUpdatesFollower.receive`: verify, decode, build, install, freeze), as Kafka would, while
a timer due every millisecond on the loop (a fixed schedule: after a stall, every probe that
fell due meanwhile is late) measures how late it ran. Each probe also ranks a shopper's
history on the version served, as each of 1,000 cache misses a second would (`--no-rank`: an
idle gateway); a memo of count terms builds up, which each version then finds again.
The later half of the versions is measured, where count rows are largest. Baselines, same
run: the timer with no build running (the pauses between versions), the same versions built
in a thread (how a gateway built them before `between_requests`), and built on the loop with
each replaced version freed in a thread (how a gateway freed them before `release` emptied
them in steps).

Last line: {"loop": {"installing": {lag percentiles, ms}, "idle": {...}, ...},
"loop, release in a thread": {...}, "thread": {...},
"versions": n, ...}. Its `install_cpu_ms` is the process's CPU while a version installs: with
`--rank`, the probes' ranking meanwhile is in it too.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from learner_shop import shop_batches

from app.gateway.loop_stalls import hand_over_gil_often
from app.gateway.model_updates import ModelUpdatesFollower
from app.gateway.read_model import ReadModel
from app.gateway.serving import ServingModels
from app.learner import guard_config
from app.metrics import Metrics
from app.settings import Settings
from app.threads import limit_threads
from models.data.synthetic_shop import ShopConfig, SyntheticShop
from models.online.click_model import OnlineClickConfig, OnlineClickModel
from models.online.rec_model import OnlineRecConfig, OnlineRecModel
from models.online.versions import OnlineLearner
from models.steps import run_steps
from tables.wire.updates import encode_version, signing_key

PROBE_S = 0.001
Record = tuple[bytes, list[tuple[str, bytes]]]  # a model-updates record: value, headers


def published_versions(settings: Settings, args: argparse.Namespace) -> tuple[list[Record], list[list[str]]]:
    """The learner's versions on the shop's first `--events` events, as it signs and publishes
    them, and the histories of the last batches' samples (shoppers to rank)."""
    shop = SyntheticShop(ShopConfig(shoppers=args.shoppers, items=args.items))
    stream = shop_batches(settings, shop, args.events, settings.learner.batch)
    o = settings.online
    rec = OnlineRecModel(OnlineRecConfig(dim=o.dim, capacity=o.capacity, num_shards=o.shards, min_count=o.min_count))
    click = OnlineClickModel(OnlineClickConfig(capacity=o.capacity, num_shards=o.shards, min_count=o.min_count))
    # Promoted on a schedule (a guard ratio of 0 passes every version): what a gateway reads is the point.
    learner = OnlineLearner(rec, click, dataclasses.replace(guard_config(settings), min_samples=1, guard_ratio=0.0))
    batches_per_version = max(1, round(len(stream) * args.version_every / args.events))
    out = []
    for n, (rec_samples, click_samples) in enumerate(stream):
        learner.step(rec_samples, click_samples)
        if (n + 1) % batches_per_version == 0:
            decision = learner.propose(time.time())
            assert decision.version is not None, decision.reason
            out.append(decision.version)
    key = signing_key(settings)
    histories = [list(history) for rec_samples, _ in stream[-40:] for history, _ in rec_samples]
    return [encode_version(version, key) for version in out], histories


def percentiles(lags: list[float]) -> dict[str, float]:
    lags = sorted(lags)
    at = lambda q: round(1000 * lags[int(q * (len(lags) - 1))], 2)  # noqa: E731
    return {"probes": len(lags), "p50_ms": at(0.5), "p99_ms": at(0.99), "p999_ms": at(0.999), "max_ms": at(1.0),
            "share_over_5ms": round(sum(lag > 0.005 for lag in lags) / len(lags), 4)}


async def install_all(settings: Settings, records: list[Record], pause_s: float, histories: list[list[str]],
                      in_thread: bool = False, release_in_thread: bool = False) -> dict:
    """Hand every version to a gateway's follower (building each in a thread with `in_thread`,
    freeing each replaced one in a thread with `release_in_thread`, as stop 33's gateway did);
    the loop's lateness during builds and between them."""
    follower = ModelUpdatesFollower(settings, ServingModels(ReadModel(settings)), Metrics(), None)  # type: ignore[arg-type]
    if in_thread:
        follower.build = lambda steps: asyncio.to_thread(run_steps, steps)
    if release_in_thread:
        follower.release = lambda retired: asyncio.to_thread(retired.clear)
    lags: dict[bool, list[float]] = {True: [], False: []}
    state = {"installing": False, "measure": False, "stop": False}

    async def probe() -> None:
        start, n = time.perf_counter(), 0
        while not state["stop"]:
            # Due on a fixed schedule, as vegeta sends requests: after a stall, every probe that
            # fell due meanwhile runs late, not just the one that was waiting.
            n += 1
            installing, due = state["installing"], start + n * PROBE_S
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            if state["measure"]:  # a probe that spans a build's start or end counts as during it
                lags[installing or state["installing"]].append(max(0.0, time.perf_counter() - due))
            online = follower.serving.online
            if histories and online is not None:  # a cache miss's ranking, on the version served
                online.rank(histories[n % len(histories)], 10)

    timer = asyncio.create_task(probe())
    walls, cpus = [], []
    for n, (value, headers) in enumerate(records):
        state["measure"] = n >= len(records) // 2
        state["installing"] = True
        wall, cpu = time.perf_counter(), time.process_time()
        assert await follower.receive(value, headers), "the follower refused a version"
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        state["installing"] = False
        if state["measure"]:
            walls.append(wall)
            cpus.append(cpu)
        await asyncio.sleep(pause_s)
    state["stop"] = True
    await timer
    assert follower.serving_version == len(records), "not every version was served"
    late = [value for value, _ in records[len(records) // 2:]]
    return {"installing": percentiles(lags[True]), "idle": percentiles(lags[False]),
            "install_wall_ms": round(1000 * sum(walls) / len(walls), 1),
            "install_cpu_ms": round(1000 * sum(cpus) / len(cpus), 1),
            "version_mb": round(sum(map(len, late)) / len(late) / 1e6, 2), "measured_versions": len(late)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=600_000)
    parser.add_argument("--version-every", type=int, default=15_000,
                        help="events per version (default: 3,000 events/s times the 5 s version interval)")
    parser.add_argument("--shoppers", type=int, default=ShopConfig.shoppers)
    parser.add_argument("--items", type=int, default=ShopConfig.items)
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between versions (the idle baseline)")
    parser.add_argument("--rank", action=argparse.BooleanOptionalAction, default=True,
                        help="each probe ranks a shopper's history on the version served, as a cache miss does")
    args = parser.parse_args()
    limit_threads(1)
    with tempfile.TemporaryDirectory() as state_dir:
        os.environ.setdefault("STREAMRANK_MODEL_SIGNING_KEY", secrets.token_hex(32))
        os.environ["STREAMRANK_STATE_DIR"] = state_dir
        settings = Settings.from_env()
        started = time.perf_counter()
        records, histories = published_versions(settings, args)
        print(f"{len(records)} versions in {time.perf_counter() - started:.0f} s", flush=True)
        hand_over_gil_often(settings.gateway.gil_switch_ms)  # as `streamrank gateway` does
        histories = histories if args.rank else []
        result = {"loop": asyncio.run(install_all(settings, records, args.pause, histories)),
                  "loop, release in a thread": asyncio.run(install_all(settings, records, args.pause, histories,
                                                                       release_in_thread=True)),
                  "thread": asyncio.run(install_all(settings, records, args.pause, histories, in_thread=True))}
        print(f"loop: {json.dumps(result['loop'])}", flush=True)
    print(json.dumps({**result, "rank": args.rank, "versions": len(records), "events": args.events,
                      "version_every": args.version_every, "shoppers": args.shoppers, "items": args.items,
                      "switch_interval_ms": sys.getswitchinterval() * 1000}))


if __name__ == "__main__":
    main()
