"""A million-shopper run: a synthetic shop pushed through Kafka, workers, the learner and a gateway.

Generates a shop (models/data/synthetic_shop.py: Zipf popularity, a Markov next-item chain,
searches, impressions and clicks among the events), produces the catalog, then the events
at `--rate` per second (paced, as live traffic, with their ts at or before now) while the
workers, learner and gateway run. Every second a probe event (a view by a new user) goes
out with the traffic and is polled for in the gateway's `/v1/users/{id}`: its freshness is
ack → visible. Measured:
- sustained events/s from the workers' first to last processed event, item stats included
  (as bench/ingest.py: the worker group's commits on item-events reach their end), and the
  workers' CPU-ms per event (from /proc);
- freshness p50/p95 of the probes;
- gateway RSS over its RSS at start, per shopper seen and per catalog item (the same
  growth divided each way: each is an upper bound), and its marginal bytes per shopper (the
  slope of RSS against shoppers held, sampled while the run goes on: what more shoppers
  would add, but with what grows with time in the run counted in); its bytes per added shopper
  (`--added-events` more events by shoppers it does not hold, the model settled before and after:
  the marginal cost of a shopper alone) beside the bytes its profiles hold per shopper as the
  gateway counts them (`streamrank_gateway_profile_bytes`); worker RocksDB size on disk, learner RSS;
- `/v1/recommend` p50/p99 at `--serve-rate` req/s for 10 s at the end, as bench/serve.py
  measures it (vegeta, open loop): shoppers of the run each once (every request a cache
  miss: `cold_*`), then the same again (the recommendation cache serves them), then wrk's peak.
With a paced producer the sustained rate cannot exceed `--rate`: a pipeline that keeps up
shows `--rate` and a low freshness; one that does not, a lower rate and a freshness that grows
(offer more than the target, `--rate 4000`, to see what one worker sustains).
Ingest, serving and the fixed body each report `machine_meanwhile`: the cores busy on the whole
machine (load generators included) and the cores the hypervisor gave other guests (steal).
Serving also reports each process's major page faults meanwhile (a page read back from disk
stalls a process without using its core).
Last line: JSON with every figure and the targets beside.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from abuse import rss_mb
from prometheus_client.parser import text_string_to_metric_families
from freshness import get_json, percentile
from ingest import cpu_seconds, forwards_behind, local_broker_pid, machine_cpu, machine_share, major_faults
from run_topics import drop_run_topics
from serve import ensure_tools, gauge, measure, wait_for_learner

from app.kafka_io import ensure_topics, make_producer, wait_for_broker
from app.metrics import sample_sum
from app.processes import Process, free_port, gateway_process, learner_process, scrape, wait_until, worker_process
from tables.wire.records import UserEvent
from app.settings import ROOT, Settings
from models.data.synthetic_shop import ShopConfig, SyntheticShop
from models.errors import BrokerUnavailable

TARGETS = {"events_per_s_min": 3000, "gateway_bytes_per_shopper_max": 1024, "freshness_p95_ms_max": 5000,
           "recommend_p99_ms_max": 10}


@dataclass
class Traffic:
    """What the producer sent: shoppers and items seen, probe (user, item, acked-at) and when it finished."""

    users: set[str] = field(default_factory=set)
    items: set[str] = field(default_factory=set)
    probes: list[Future] = field(default_factory=list)
    sent: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


def poll_probe(base: str, user: str, item: str, acked: float, timeout_s: float = 900.0) -> float:
    """ms from the probe's ack until the gateway lists its item among the user's recent items."""
    deadline = acked + timeout_s
    while time.monotonic() < deadline:
        try:
            if item in get_json(f"{base}/v1/users/{user}").get("recent_items", []):
                return (time.monotonic() - acked) * 1000
        except OSError:
            pass  # 404 until the profile exists
        # 0.1 s of resolution around the 5 s target, then 1 s: a backlog's many late probes each
        # polling ten times a second loaded the gateway and this process's producer, which fell
        # behind further (a run at 4,000/s offered sent 2,119/s).
        time.sleep(0.1 if time.monotonic() - acked < 10.0 else 1.0)
    raise TimeoutError(f"probe {user} not visible after {timeout_s:.0f}s")


async def keep_pace(k: int, start: float, rate: float) -> None:
    """Wait until event `k` is due: `rate` a second from `start` (monotonic); a late producer catches up."""
    ahead = start + k / rate - time.monotonic()
    if ahead > 0:
        await asyncio.sleep(ahead)


async def produce(settings: Settings, shop: SyntheticShop, n: int, rate: float, base: str, run: str,
                  traffic: Traffic, pool: ThreadPoolExecutor) -> None:
    """Events at `rate` per second (catching up if late), a probe every second among them."""
    producer = make_producer(settings)
    await producer.start()
    try:
        start_wall, start = time.time(), time.monotonic()
        # ts of event k is when it is due, a little in the past: never ahead of the receivers' clocks.
        span = n / rate
        for k, e in enumerate(shop.events(n, start_wall - 1.0, span)):
            if k % 100 == 0:
                await keep_pace(k, start, rate)
                if k // int(rate) >= len(traffic.probes) and k < n - int(rate):
                    await send_probe(settings, producer, shop, run, traffic, pool, base)
            e["ts"] = min(e["ts"], time.time())
            event = UserEvent(**e)
            if event.item_id:  # a profile is sure to exist for a shopper with an item (a search alone may not make one)
                traffic.users.add(event.user_id)
                traffic.items.add(event.item_id)
            await producer.send(settings.topics.events, key=event.user_id.encode(), value=event.to_json())
            traffic.sent += 1
        await producer.flush()
    finally:
        await producer.stop()


async def produce_new_shoppers(settings: Settings, shop: SyntheticShop, n: int, rate: float, prefix: str) -> set[str]:
    """The run's first `n` events again, at `rate`, each shopper renamed to a new one (`prefix` +
    id, event ids too): as many shoppers as those events hold, shaped as the run's, none held yet.
    The shoppers with an item (each gets a profile)."""
    producer = make_producer(settings)
    await producer.start()
    users: set[str] = set()
    try:
        start_wall, start = time.time(), time.monotonic()
        for k, e in enumerate(shop.events(n, start_wall - 1.0, n / rate)):
            if k % 100 == 0:
                await keep_pace(k, start, rate)
            event = UserEvent(**{**e, "user_id": prefix + e["user_id"], "event_id": prefix + e["event_id"],
                                 "ts": min(e["ts"], time.time())})
            if event.item_id:
                users.add(event.user_id)
            await producer.send(settings.topics.events, key=event.user_id.encode(), value=event.to_json())
        await producer.flush()
    finally:
        await producer.stop()
    return users


def added_shopper_bytes(settings: Settings, shop: SyntheticShop, base: str, pid: int, n: int, rate: float,
                        prefix: str) -> dict:
    """What more shoppers cost the gateway, with the catalog, the models and the item stats held
    as they are: its RSS before and after `n` more events from shoppers it does not hold yet,
    each time once the learner has read every sample and its versions have stopped (RSS that a
    version swap leaves behind is then in both). The slope during ingest also counts what grows
    with time in the run (versions, transitions, allocator arenas)."""
    held0, rss_before = get_json(f"{base}/readyz")["records"]["user_profiles"], rss_mb(pid) * 2**20
    added = asyncio.run(produce_new_shoppers(settings, shop, n, rate, prefix))
    wait_until(lambda: get_json(f"{base}/readyz")["records"]["user_profiles"] >= held0 + len(added), 600, 1.0,
               "the added shoppers in the gateway")
    wait_until(lambda: scrape(settings.learner.metrics_port).get("streamrank_learner_lag_samples", 1.0) == 0.0,
               900, 2.0, "learner caught up with the added shoppers")
    wait_for_learner(base, quiet_s=10.0, timeout_s=300.0)
    grown = rss_mb(pid) * 2**20 - rss_before
    # What the profiles themselves hold, as the gateway counts them (app/gateway/profiles.py:
    # held_bytes): the same for every run of the same shop, where RSS moves with the allocator.
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as r:
        text = r.read().decode()  # one scrape: the bytes and the shoppers they are of
    held = (sample_sum(text, "streamrank_gateway_profile_bytes")
            / sample_sum(text, "streamrank_gateway_state_records", table="user_profiles"))
    return {"added_shoppers": len(added), "added_events": n, "gateway_bytes_per_added_shopper": round(grown / len(added)),
            "gateway_profile_bytes_per_shopper": round(held)}


async def send_probe(settings: Settings, producer, shop: SyntheticShop, run: str, traffic: Traffic,  # type: ignore[no-untyped-def]
                     pool: ThreadPoolExecutor, base: str) -> None:
    n = len(traffic.probes)
    user, item = f"probe-{run}-{n}", f"i{random.Random(n).randrange(shop.config.items)}"
    event = UserEvent(f"probe-{run}-{n}", user, "view", time.time(), item)
    await producer.send_and_wait(settings.topics.events, key=user.encode(), value=event.to_json())
    traffic.sent += 1
    traffic.probes.append(pool.submit(poll_probe, base, user, item, time.monotonic()))


def run_producer(*args) -> None:  # type: ignore[no-untyped-def]
    traffic: Traffic = args[6]
    try:
        asyncio.run(produce(*args))
    except BaseException as exc:  # noqa: BLE001 - reported by the main thread
        traffic.error = exc
    finally:
        traffic.done.set()


async def produce_catalog(settings: Settings, shop: SyntheticShop) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        for change in shop.catalog(time.time() - 5.0):
            await producer.send(settings.topics.catalog, key=change["item_id"].encode(), value=json.dumps(change).encode())
        await producer.flush()
    finally:
        await producer.stop()


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def ingest(configs: list[Settings], procs: list[Process], traffic: Traffic, settings: Settings,
           on_progress: Callable[[], None], others: dict[str, int]) -> dict:
    """Sustained events/s and CPU-ms per event of the workers, from their first processed event
    until every sent event is processed and every forward is in the item stats; and the CPU-ms
    per event of the `others` (name: pid) over the same span: where the cores went."""
    def processed() -> float:
        return sum(scrape(c.worker.metrics_port).get("streamrank_events_processed_total", 0.0) for c in configs)

    def cpu() -> float:
        return sum(cpu_seconds(p.proc.pid) for p in procs)  # type: ignore[union-attr]

    wait_until(lambda: processed() > 0, 300, 0.05, "first event processed")
    start, cpu0, last_report, machine0 = time.perf_counter(), cpu(), time.monotonic(), machine_cpu()
    others0 = {name: cpu_seconds(pid) for name, pid in others.items()}
    while not traffic.done.is_set() or (last := processed()) < traffic.sent:
        if not all(p.alive() for p in procs):
            raise RuntimeError(f"worker died:\n{next(p for p in procs if not p.alive()).tail()}")
        if traffic.error:
            raise RuntimeError("producer failed") from traffic.error
        if time.monotonic() - last_report > 10:
            done = [f.result() for f in traffic.probes if f.done() and not f.exception()]
            print(f"  sent {traffic.sent:,}, processed {processed():,.0f}, probes seen {len(done)}"
                  + (f" (last {done[-1]:.0f} ms)" if done else ""), flush=True)
            on_progress()
            last_report = time.monotonic()
        time.sleep(0.5)  # scraping costs the workers CPU: not too often
    while asyncio.run(forwards_behind(settings)) > 0:
        time.sleep(0.5)
    elapsed = time.perf_counter() - start
    by_process = {name: round((cpu_seconds(pid) - others0[name]) / (last - 1.0) * 1000, 3) for name, pid in others.items()}
    return {"events_per_s": round((last - 1.0) / elapsed, 1), "processed": int(last),
            "cpu_ms_per_event": round((cpu() - cpu0) / (last - 1.0) * 1000, 3), "ingest_s": round(elapsed, 1),
            "other_cpu_ms_per_event": by_process, "machine_meanwhile": machine_share(machine0, machine_cpu())}


# The gateway's histograms a serving window reports: name and labels of each.
HISTOGRAMS = {"handler": ("streamrank_http_request_duration_seconds", {"route": "/v1/recommend"}),
              "loop_lag": ("streamrank_event_loop_lag_seconds", {}),
              "gc_pauses": ("streamrank_gc_pause_seconds", {})}  # every generation summed


def histograms(base: str) -> dict[str, dict[float, float]]:
    """Each of HISTOGRAMS from one scrape of the gateway: cumulative count per upper bound (s),
    summed over the series its labels leave open."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[str, dict[float, float]] = {key: {} for key in HISTOGRAMS}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            for key, (name, labels) in HISTOGRAMS.items():
                if s.name == f"{name}_bucket" and all(s.labels.get(k) == v for k, v in labels.items()):
                    le = float(s.labels["le"])
                    out[key][le] = out[key].get(le, 0.0) + s.value
    return out


def window(before: dict[float, float], after: dict[float, float]) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of what a histogram counted between two scrapes."""
    return sorted((le, after[le] - before.get(le, 0.0)) for le in after)


def handler_p99_ms(before: dict[float, float], after: dict[float, float]) -> float:
    """Upper bound (ms) of the histogram bucket that holds the 99th percentile of the requests
    between the two scrapes: the time inside the gateway's handler, without the network, the
    load generator or the kernel's queues."""
    counts = window(before, after)
    total = counts[-1][1]
    return next(le for le, n in counts if n >= 0.99 * total) * 1000


def stalls(before: dict[float, float], after: dict[float, float]) -> dict[str, float]:
    """Between two scrapes of a histogram of pauses: how many, how many over 5 and over 25 ms,
    and the upper bound (ms) of the longest one's bucket."""
    counts = window(before, after)
    total = counts[-1][1] if counts else 0.0
    late = {le: total - n for le, n in counts}
    worst = next((le for le, n in counts if n >= total), float("inf")) if total else 0.0
    return {"count": total, "over_5ms": late.get(0.005, 0.0), "over_25ms": late.get(0.025, 0.0),
            "worst_ms_at_most": worst * 1000}


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares dy/dx: the gateway's RSS per added shopper while the run goes on, which
    leaves out what a small run's growth divided by its shoppers counts in (the catalog,
    caches, allocator arenas) and is what 1M shoppers would add."""
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shoppers", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rate", type=float, default=3000.0, help="events/s the producer offers")
    parser.add_argument("--added-events", type=int, default=150_000,
                        help="after ingest, events of this many more of the run's sessions by new shoppers: "
                             "the gateway's bytes per added shopper (0: skip)")
    parser.add_argument("--serve-rate", type=int, default=1000, help="/v1/recommend requests/s at the end")
    parser.add_argument("--serve-seconds", type=int, default=10)
    parser.add_argument("--hold", action="store_true",
                        help="after ingest, print the gateway's address and the shoppers' file, keep the stack up (profiling)")
    args = parser.parse_args()
    tools = ensure_tools()
    run = f"scale-{uuid.uuid4().hex[:8]}"
    state = Path(tempfile.mkdtemp(prefix="streamrank-scale-"))
    settings = Settings.from_env().replace(app_id=run, topic_prefix=run, state_dir=state, search_dense=False,
                       gateway_port=free_port(), learner_metrics_port=free_port(), worker_metrics_port=free_port())
    try:
        asyncio.run(wait_for_broker(settings, timeout_s=5))
    except BrokerUnavailable:
        subprocess.run([str(ROOT / "scripts" / "kafka.sh"), "start"], check=True)
    asyncio.run(ensure_topics(settings))
    t0 = time.monotonic()
    shop = SyntheticShop(ShopConfig(args.shoppers, args.items, args.seed))
    print(f"shop of {args.shoppers:,} shoppers, {args.items:,} items built in {time.monotonic() - t0:.1f}s", flush=True)
    base = f"http://127.0.0.1:{settings.gateway.port}"
    gateway = gateway_process(settings, state / "gateway.log").start()
    # At the priority its setting gives (STREAMRANK_LEARNER_CPU_PRIORITY, idle by default): on a
    # small machine learning waits for the cores rather than the event path (its lag metric says how far behind).
    learner = learner_process(settings, state / "learner.log").start()
    configs = [settings.replace(state_dir=state / f"w{i}", worker_metrics_port=free_port()) for i in range(args.workers)]
    workers = [worker_process(c, c.runtime.state_dir / "worker.log").start() for c in configs]
    procs = [gateway, learner, *workers]
    pool = ThreadPoolExecutor(32)  # a probe behind a backlog polls for minutes: one thread each
    finished = False
    try:
        wait_until(lambda: get_json(f"{base}/readyz") is not None, 300, 0.5, "gateway answering")
        rss0 = rss_mb(gateway.proc.pid)  # type: ignore[union-attr]
        asyncio.run(produce_catalog(settings, shop))
        wait_until(lambda: get_json(f"{base}/readyz")["records"]["catalog"] >= args.items, 600, 1.0, "catalog loaded")
        print(f"catalog of {args.items:,} items in the gateway; gateway RSS at start {rss0:.0f} MB", flush=True)
        traffic = Traffic()
        producer = threading.Thread(target=run_producer, daemon=True,
                                    args=(settings, shop, args.events, args.rate, base, run, traffic, pool))
        producer.start()
        growth: list[tuple[float, float]] = []  # (shoppers in the gateway, RSS bytes)

        def sample() -> None:
            growth.append((get_json(f"{base}/readyz")["records"]["user_profiles"], rss_mb(gateway.proc.pid) * 2**20))  # type: ignore[union-attr]

        others = {"gateway": gateway.proc.pid, "learner": learner.proc.pid, "bench (producer, probes)": os.getpid()}  # type: ignore[union-attr]
        if (broker := local_broker_pid()) is not None:
            others["broker"] = broker
        figures = ingest(configs, workers, traffic, settings, sample, others)
        print(f"ingest: {figures}", flush=True)
        wait_until(lambda: all(f.done() for f in traffic.probes), 900, 0.5, "probes resolved")
        freshness = [f.result() for f in traffic.probes if not f.exception()]
        lost = len(traffic.probes) - len(freshness)
        freshness_ms = {"p50": round(statistics.median(freshness), 1), "p95": round(percentile(freshness, 0.95), 1),
                        "probes": len(freshness), "probes_not_seen_in_900s": lost}
        print(f"freshness: {freshness_ms}", flush=True)  # printed now: a later wait may fail
        users = sorted(traffic.users)
        wait_until(lambda: get_json(f"{base}/readyz")["records"]["user_profiles"] >= len(users) + len(traffic.probes), 600,
                   1.0, "every shopper in the gateway")
        wait_until(lambda: get_json(f"{base}/readyz")["records"]["item_stats"] >= len(traffic.items), 600, 1.0,
                   "every item's stats in the gateway")
        sample()
        grown = (rss_mb(gateway.proc.pid) - rss0) * 2**20  # type: ignore[union-attr]
        memory = {"gateway_rss_mb": round(rss_mb(gateway.proc.pid), 1), "gateway_rss_start_mb": round(rss0, 1),  # type: ignore[union-attr]
                  "gateway_bytes_per_shopper": round(grown / len(users)), "gateway_bytes_per_item": round(grown / args.items),
                  "gateway_marginal_bytes_per_shopper": round(slope(growth)) if len(growth) > 2 else None,
                  "worker_store_mb": round(sum(tree_bytes(c.runtime.state_dir) for c in configs) / 2**20, 1),
                  "learner_rss_mb": round(rss_mb(learner.proc.pid), 1)}  # type: ignore[union-attr]
        print(f"memory: {memory}", flush=True)
        # Serving is measured at the end, as serve.py does, on one model version: once the learner
        # has read every sample of the run (its lag metric) and its versions have stopped. Each
        # version it promotes while still catching up makes every cached list a miss again.
        learner_s = time.monotonic()
        wait_until(lambda: scrape(settings.learner.metrics_port).get("streamrank_learner_lag_samples", 1.0) == 0.0,
                   900, 2.0, "learner caught up")
        version = wait_for_learner(base, quiet_s=10.0, timeout_s=300.0)
        caught_up_s = round(time.monotonic() - learner_s, 1)
        if args.added_events:
            memory.update(added_shopper_bytes(settings, shop, base, gateway.proc.pid, args.added_events,  # type: ignore[union-attr]
                                              args.rate, f"added-{run}-"))
            print(f"added shoppers: {memory}", flush=True)
            version = wait_for_learner(base, quiet_s=10.0, timeout_s=300.0)
        print(f"online version {version:.0f} served; /v1/recommend at {args.serve_rate}/s", flush=True)
        rng = random.Random(args.seed)
        paths = [f"/v1/recommend?user_id={u}&k=10" for u in rng.sample(users, len(users))]
        if args.hold:
            (state / "paths.txt").write_text("".join(f"GET {base}{p}\n" for p in paths))
            print(f"holding: {base}, targets {state / 'paths.txt'} (gateway pid {gateway.proc.pid}); Ctrl-C stops",  # type: ignore[union-attr]
                  flush=True)
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # the stack is stopped below either way
            while True:
                time.sleep(3600)
        # As serve.py: distinct shoppers first (every request a cache miss: cold_*), then the same
        # again (the recommendation cache serves them), then wrk's peak; a warm-up over others first.
        cold_s = min(args.serve_seconds, len(paths) // args.serve_rate)
        warmup = paths[args.serve_rate * cold_s:][: args.serve_rate // 2]
        before = histograms(base)
        pids = {**others, **{f"worker {i}": w.proc.pid for i, w in enumerate(workers)}}  # type: ignore[union-attr]
        cpu0, t0, machine0 = {name: cpu_seconds(pid) for name, pid in pids.items()}, time.perf_counter(), machine_cpu()
        faults0 = {name: major_faults(pid) for name, pid in pids.items()}
        latency = measure(tools, base, paths, args.serve_rate, args.serve_seconds, cold_s, warmup)
        latency["major_faults_meanwhile"] = {name: major_faults(pid) - faults0[name] for name, pid in pids.items()}
        # Where the cores went while serving was measured (the load generators are not counted
        # here, but are in the machine's busy cores; stolen: what other guests of the host took).
        latency["cpu_cores_meanwhile"] = {name: round((cpu_seconds(pid) - cpu0[name]) / (time.perf_counter() - t0), 2)
                                          for name, pid in pids.items()}
        latency["machine_meanwhile"] = machine_share(machine0, machine_cpu())
        after = histograms(base)
        latency["handler_p99_ms_at_most"] = handler_p99_ms(before["handler"], after["handler"])
        latency.update({name: stalls(before[name], after[name]) for name in ("loop_lag", "gc_pauses")})
        latency["versions_installed_meanwhile"] = gauge(base, "streamrank_gateway_online_version") - version
        # The same load against a handler that answers a fixed body, in the same minute: what the
        # machine, the kernel and the load generator cost a request (on shared cores, hour by hour).
        fixed_port = free_port()
        fixed = Process([sys.executable, str(ROOT / "bench" / "fixed_body.py"), str(fixed_port)], dict(os.environ),
                        state / "fixed.log").start()
        procs.append(fixed)
        fixed_base = f"http://127.0.0.1:{fixed_port}"
        wait_until(lambda: get_json(f"{fixed_base}/healthz") is not None, 60, 0.2, "fixed-body handler")
        machine0 = machine_cpu()
        fixed_latency = measure(tools, fixed_base, paths, args.serve_rate, args.serve_seconds, cold_s, warmup)
        fixed_latency["machine_meanwhile"] = machine_share(machine0, machine_cpu())
        out = {**figures, "freshness_ms": freshness_ms,
               **memory, "recommend": {k: round(v, 3) if isinstance(v, float) else v for k, v in latency.items()},
               "fixed_body": {k: round(v, 3) if isinstance(v, float) else v for k, v in fixed_latency.items()},
               "online_version": version, "learner_caught_up_after_ingest_s": caught_up_s,
               "shoppers_seen": len(users), "items_seen": len(traffic.items), "shoppers": args.shoppers,
               "items": args.items, "events": args.events, "offered_rate": args.rate, "workers": args.workers,
               "learner_cpu_priority": settings.learner.cpu_priority, "seed": args.seed, "targets": TARGETS}
        print(json.dumps(out))
        finished = True
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        for p in reversed(procs):
            p.stop()
        # A run's state (the worker's stores, the learner's snapshots, the logs) is 0.6-0.8 GB
        # at 600k events, and its topics more: kept only where the run failed, for its logs.
        if finished:
            shutil.rmtree(state, ignore_errors=True)
            drop_run_topics(settings)
        else:
            print(f"state and logs kept in {state}", file=sys.stderr)


if __name__ == "__main__":
    main()
