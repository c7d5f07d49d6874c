"""Serving latency and throughput of /v1/recommend and /v1/search, against a fixed-body handler.

Starts the real stack (Kafka, a worker, the gateway as its own process), loads the Amazon
Beauty events (users and their sequences) and the Home Depot catalog through Kafka, then:
- peak: `wrk -t1 -c32` for `--seconds` (random URLs from a list, via a Lua script);
- latency at a fixed rate: `vegeta attack -rate R` (open loop, no coordinated omission).
  /v1/recommend is measured twice: first over distinct users (every request misses the
  recommendation cache: `cold_*`), then over the same users again (the cache serves them);
  /v1/search over queries not sent before.
Each latency pass is preceded by a short unmeasured warm-up at its rate, over paths it never
measures (other users, other queries). The fixed-body aiohttp handler runs the same loads
in the same run. The trained models
of var/ are served; the online model is learned in the run, and measuring waits until its
versions stop changing.
Then, with `--live-rate` above 0, the live pass: the next Beauty events stream in at that
rate (the demo's 500/s by default) so that the worker and the learner work and the learner's
versions install while /v1/recommend is measured at `--rate` over the cold pass's users (their
cached lists serve unless the stream changed their profile, or a newer learner version has
served for `STREAMRANK_RECOMMEND_ONLINE_STALENESS_S`), then over lists never asked for (each
user with a k not requested before: every request a miss), then the fixed-body handler at
the same rate, the stream still running. Beside each /v1/recommend part: each process's cores
used and cores' worth of waiting for one (runnable, no core free: from /proc's schedstat).
Last line: {"recommend": {...}, "search": {...}, "fixed_body": {...}, "live": {...}}

With `--ads`, two more gateways start beside the first, alike but for sponsored slots (one has
them, one has them off), and the same run then measures the slots' cost: synthetic campaigns
over `--ad-share` of the catalog's and the events' items (log-normal bids, budgets no click
spends) go to both, and each /v1/recommend and /v1/search attack sends every path to both in
turn, so both see the same moments of the shared machine (after an unmeasured pass that warms
their caches and query encoders), in `--ads-rounds` rounds; the result gets "ads":
{"recommend": {...}, "search": {...}} with each round's p99, p50 and gateway CPU-us per
request, and the medians of the rounds' ratios (p99 target: within 1.10).
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import io
import itertools
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from ingest import cpu_and_wait_seconds, cpu_seconds, local_broker_pid
from run_topics import drop_run_topics
from app.kafka_io import ensure_topics, make_producer, wait_for_broker
from app.metrics import sample_sum
from app.plot_dir import add_plots_argument, plot_dir, write_plots
from app.processes import (Process, free_port, gateway_process, learner_process, settings_env, wait_until,
                           worker_process)
from models.ads.campaigns import Campaign
from tables.wire.records import CatalogChange
from app.replay_data import read_sequences, sequence_events
from app.settings import ROOT, Settings
from models.data.homedepot import load_homedepot
from models.errors import BrokerUnavailable

TOOLS = Path.home() / ".cache" / "streamrank" / "bin"


def ensure_tools() -> tuple[str, str]:
    """wrk from Debian, vegeta built from the Go module proxy (once, cached)."""
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True)
    vegeta = TOOLS / "vegeta"
    if not vegeta.exists():
        TOOLS.mkdir(parents=True, exist_ok=True)
        subprocess.run(["go", "install", "github.com/tsenart/vegeta/v12@v12.12.0"], check=True,
                       env={**os.environ, "GOBIN": str(TOOLS)}, capture_output=True)
    return shutil.which("wrk") or "wrk", str(vegeta)


async def load_data(settings: Settings, n_events: int) -> tuple[list[str], list[str], int, int]:
    """Produce events and the catalog; returns user ids, search queries, catalog size and
    the number of items the events touch."""
    await ensure_topics(settings)
    sequences = read_sequences(settings.runtime.data_dir / "amazon-beauty" / "Beauty.txt")
    events = list(itertools.islice(sequence_events(sequences), n_events))
    data = load_homedepot(settings.runtime.data_dir / "homedepot" / "train.csv.gz")
    producer = make_producer(settings)
    await producer.start()
    try:
        for e in events:
            await producer.send(settings.topics.events, key=e.user_id.encode(), value=e.to_json())
        for item, title in zip(data.items, data.titles):
            change = CatalogChange("upsert", item, time.time(), title=title, stock=1 + len(title) % 5)
            await producer.send(settings.topics.catalog, key=item.encode(), value=change.to_json())
        await producer.flush()
    finally:
        await producer.stop()
    users = sorted({e.user_id for e in events})
    return users, [data.query_text[q] for q in data.judgments], len(data.items), len({e.item_id for e in events})


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


ADS_SECONDS = "streamrank_gateway_ads_seconds_total"


def gauge(base: str, name: str, **labels: str) -> float:
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as r:
        return sample_sum(r.read().decode(), name, **labels)


def dense_items(base: str) -> float:
    return gauge(base, "streamrank_gateway_dense_items")


def serving_counters(base: str) -> dict[str, float]:
    """Recommendation cache lookups and embedding retrieval passes so far (one gateway's)."""
    return {"hits": gauge(base, "streamrank_gateway_rec_cache_lookups_total", result="hit"),
            "misses": gauge(base, "streamrank_gateway_rec_cache_lookups_total", result="miss"),
            "passes": gauge(base, "streamrank_gateway_rank_batch_passes_total"),
            "requests": gauge(base, "streamrank_gateway_rank_batch_requests_total")}


def wrk_peak(wrk: str, base: str, paths: list[str], seconds: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write("paths = {" + ",".join(json.dumps(p) for p in paths) + "}\n"
                "math.randomseed(7)\nrequest = function()\n"
                "  return wrk.format('GET', paths[math.random(#paths)])\nend\n")
    out = subprocess.run([wrk, "-t1", "-c32", f"-d{seconds}s", "-s", f.name, base], capture_output=True,
                         text=True, check=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


RAW_RESULTS: Path | None = None  # --raw-results
_PASSES = itertools.count()  # the measured passes so far: each one's raw results file


def vegeta_latency(vegeta: str, base: str, paths: list[str], rate: int, seconds: float,
                   keep: list[float] | None = None) -> dict:
    """Percentiles of one open-loop pass; every request's latency (ms) goes to `keep` (for the plot)."""
    targets = "\n".join(f"GET {base}{p}" for p in paths) + "\n"
    attack = subprocess.run([vegeta, "attack", f"-rate={rate}/s", f"-duration={seconds:g}s", "-timeout=5s"],
                            input=targets.encode(), capture_output=True, check=True)
    if keep is not None:
        keep.extend(request_latencies_ms(vegeta, attack.stdout))
        if RAW_RESULTS is not None:  # `vegeta encode` reads them: each request's start and latency
            RAW_RESULTS.mkdir(parents=True, exist_ok=True)
            (RAW_RESULTS / f"pass-{next(_PASSES):02d}.bin").write_bytes(attack.stdout)
    report = json.loads(subprocess.run([vegeta, "report", "-type=json"], input=attack.stdout,
                                       capture_output=True, check=True).stdout)
    lat = report["latencies"]
    return {"p50_ms": lat["50th"] / 1e6, "p99_ms": lat["99th"] / 1e6, "rate": rate,
            "success_ratio": report["success"], "errors": len(report.get("errors") or [])}


def request_latencies_ms(vegeta: str, attack: bytes) -> list[float]:
    """Each request's latency from vegeta's results (CSV: timestamp, code, latency in ns, ...)."""
    rows = subprocess.run([vegeta, "encode", "-to", "csv"], input=attack, capture_output=True, check=True).stdout
    return [int(row[2]) / 1e6 for row in csv.reader(io.StringIO(rows.decode())) if len(row) > 2]


def measure(tools: tuple[str, str], base: str, paths: list[str], rate: int, seconds: int,
            cold_seconds: int = 0, warmup: Sequence[str] = (),
            samples: dict[str, list[float]] | None = None, name: str = "") -> dict:
    """Latency at `rate`, then the peak. With `cold_seconds`, a first pass at `rate` over
    distinct paths (no request repeats one before it: with distinct users, every request
    misses the recommendation cache and is ranked afresh) comes before the measured one,
    which then repeats them (returning users, unchanged: the cache serves them).

    `warmup` paths (none of them measured later) go first at `rate`, unmeasured: the first
    tenth of a second of a process's first load (its first misses, the load generator
    opening its connections) cost up to 60 ms once, which is start-up, not serving.

    `samples` gets every measured request's latency under `name` (and `name cold`)."""
    wrk, vegeta = tools
    if warmup:
        vegeta_latency(vegeta, base, list(warmup), rate, max(0.3, len(warmup) / rate))
        time.sleep(1.0)
    cold = {}
    if cold_seconds:
        cold = vegeta_latency(vegeta, base, paths, rate, cold_seconds,
                              None if samples is None else samples.setdefault(f"{name} cold", []))
        time.sleep(5.0)  # requests vegeta gave up on (timeout 5 s) may still be queued: let them drain
    # Returning users are those the cold pass asked for (vegeta goes through its targets in
    # order): any other would be a first request, measured above.
    repeat = paths[: rate * cold_seconds] if cold_seconds else paths
    latency = vegeta_latency(vegeta, base, repeat, rate, seconds,
                             None if samples is None else samples.setdefault(name, []))
    latency = {**{f"cold_{k}": v for k, v in cold.items() if k.endswith("_ms") or k == "errors"}, **latency}
    return {**latency, "rps": round(wrk_peak(wrk, base, paths, seconds), 1)}


class EventStream:
    """Events produced at `rate` per second from a thread, until they run out or `stop`."""

    def __init__(self, settings: Settings, events: list, rate: int) -> None:
        self.settings, self.events, self.rate = settings, events, rate
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._produce()), name="event-stream")

    def __enter__(self) -> "EventStream":
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    async def _produce(self) -> None:
        producer = make_producer(self.settings, linger_ms=50)  # a shop's producer batches: its CPU is not the gateway's
        await producer.start()
        try:
            for e in self.events:
                if self._stop.is_set():
                    break
                ahead = self.started + self.sent / self.rate - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
                await producer.send(self.settings.topics.events, key=e.user_id.encode(), value=e.to_json())
                self.sent += 1
            await producer.flush()
        finally:
            await producer.stop()

    def rate_so_far(self) -> float:
        return round(self.sent / max(1e-9, time.monotonic() - self.started), 1)


def cores_meanwhile(pids: dict[str, int], run: Callable[[], dict]) -> dict:
    """`run()`'s result, with each process's cores used and cores' worth of waiting for one
    (runnable, not run) while it ran."""
    before, started = {name: cpu_and_wait_seconds(pid) for name, pid in pids.items()}, time.monotonic()
    out = run()
    elapsed = time.monotonic() - started
    after = {name: cpu_and_wait_seconds(pid) for name, pid in pids.items()}
    out["cores_used_and_waited"] = {name: [round((after[name][0] - before[name][0]) / elapsed, 2),
                                           round((after[name][1] - before[name][1]) / elapsed, 2)] for name in pids}
    return out


def live_pass(tools: tuple[str, str], settings: Settings, base: str, fixed_base: str, paths: list[str],
              args: argparse.Namespace, samples: dict[str, list[float]], pids: dict[str, int]) -> dict:
    """/v1/recommend (returning shoppers, then every request a miss) and the fixed body at
    `--rate` while the next events stream in (see the module doc); beside each, the cores each
    process of the stack used and waited for (`pids`)."""
    vegeta = tools[1]
    sequences = read_sequences(settings.runtime.data_dir / "amazon-beauty" / "Beauty.txt")
    seconds = int(3 * args.seconds + args.live_lead_s + 15)
    events = list(itertools.islice(sequence_events(sequences), args.events, args.events + args.live_rate * seconds))
    # Lists never asked for: the cache key holds k, and k 11.. was never requested (the ranking work is k=10's).
    missing = [f"{p.replace('&k=10', '')}&k={11 + n // len(paths)}" for n, p in
               enumerate(itertools.islice(itertools.cycle(paths), args.rate * args.seconds))]
    counters, version = serving_counters(base), gauge(base, "streamrank_gateway_online_version")
    gc_before = gc_pauses(base)
    with EventStream(settings, events, args.live_rate) as stream:
        time.sleep(args.live_lead_s)  # the worker and the learner busy, versions coming
        lead_version = gauge(base, "streamrank_gateway_online_version")
        recommend = cores_meanwhile(pids, lambda: vegeta_latency(vegeta, base, paths, args.rate, args.seconds,
                                                                 samples.setdefault("recommend live", [])))
        during = gauge(base, "streamrank_gateway_online_version") - lead_version
        after = serving_counters(base)
        all_miss = cores_meanwhile(pids, lambda: vegeta_latency(vegeta, base, missing, args.rate, args.seconds,
                                                                samples.setdefault("recommend live all-miss", [])))
        during_miss = gauge(base, "streamrank_gateway_online_version") - lead_version - during
        after_miss = serving_counters(base)
        fixed = vegeta_latency(vegeta, fixed_base, paths, args.rate, args.seconds, samples.setdefault("fixed body live", []))
        streamed = stream.rate_so_far()
    gc_after = gc_pauses(base)

    def hit_ratio(a: dict[str, float], b: dict[str, float]) -> float:
        hits, misses = b["hits"] - a["hits"], b["misses"] - a["misses"]
        return round(hits / max(1.0, hits + misses), 3)

    return {"recommend": {**recommend, "cache_hit_ratio": hit_ratio(counters, after),
                          "versions_installed_during_pass": during},
            "recommend_all_miss": {**all_miss, "cache_hit_ratio": hit_ratio(after, after_miss),
                                   "versions_installed_during_pass": during_miss},
            "fixed_body": fixed, "events_per_s_offered": args.live_rate, "events_per_s_sent": streamed,
            "versions_installed": gauge(base, "streamrank_gateway_online_version") - version,
            "online_staleness_s": settings.recommend.online_staleness_s,
            "gc_during_pass": {g: round(gc_after[g] - gc_before[g], 3) for g in gc_after}}


def gc_pauses(base: str) -> dict[str, float]:
    """Cyclic GC so far: seconds and collections of each generation (one gateway's)."""
    out = {}
    for g in "012":
        out[f"gen{g}_seconds"] = gauge(base, "streamrank_gc_pause_seconds_sum", generation=str(g))
        out[f"gen{g}_count"] = gauge(base, "streamrank_gc_pause_seconds_count", generation=str(g))
    return out


def wait_loaded(base: str, n_items: int, n_users: int, n_event_items: int) -> None:
    """Until the gateway at `base` holds the catalog, the users, every event's item stats and the
    catalog's vectors for dense search."""
    wait_until(lambda: get_json(f"{base}/readyz")["records"]["catalog"] >= n_items, 900, 2.0, "catalog loaded")
    wait_until(lambda: get_json(f"{base}/readyz")["records"]["user_profiles"] >= n_users, 900, 2.0, "users loaded")
    # Measured once the worker is done: every event's item has its stats in the gateway.
    wait_until(lambda: get_json(f"{base}/readyz")["records"]["item_stats"] >= n_event_items, 900, 2.0,
               "item stats loaded")
    wait_until(lambda: dense_items(base) >= n_items, 1800, 5.0, "catalog vectors for dense search")


def wait_for_learner(base: str, quiet_s: float = 15.0, timeout_s: float = 600.0) -> float:
    """Wait until the served online version has not changed for `quiet_s` (the learner has
    learned the loaded events): measurements then see one version, not swaps."""
    deadline = time.monotonic() + timeout_s
    last, since = gauge(base, "streamrank_gateway_online_version"), time.monotonic()
    while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
        time.sleep(1.0)
        now = gauge(base, "streamrank_gateway_online_version")
        if now != last:
            last, since = now, time.monotonic()
    return last


async def load_campaigns(settings: Settings, items: Sequence[str], share: float, seed: int = 3) -> int:
    """Synthetic campaigns over `share` of `items`: log-normal bids (median 3 per click, so that
    most pass min_expected_revenue at the prior's pCTR and the auction has work), budgets no
    run of this bench spends. Returns how many were sent."""
    rng = random.Random(seed)
    chosen = rng.sample(list(items), max(1, int(len(items) * share)))
    producer = make_producer(settings)
    await producer.start()
    try:
        for n, item in enumerate(chosen):
            c = Campaign(f"bench-{n}", item, round(3.0 * rng.lognormvariate(0.0, 0.6), 4), 1e9)
            await producer.send(settings.topics.campaigns, key=c.campaign_id.encode(), value=c.to_json())
        await producer.flush()
    finally:
        await producer.stop()
    return len(chosen)


def ad_items(settings: Settings, args: argparse.Namespace) -> list[str]:
    """What --ads may advertise: the catalog's items (search) and the events' (recommendations)."""
    events = itertools.islice(sequence_events(read_sequences(settings.runtime.data_dir / "amazon-beauty" / "Beauty.txt")),
                              args.events)
    catalog_items = load_homedepot(settings.runtime.data_dir / "homedepot" / "train.csv.gz").items
    return [*catalog_items, *sorted({e.item_id for e in events if e.item_id})]


def paired_pass(vegeta: str, sides: Mapping[str, tuple[str, int]], paths: list[str], rate: int, seconds: float) -> dict:
    """One open-loop attack that sends each path to every gateway of `sides` (name -> (base, pid)) in
    turn, at `rate` each: the gateways see the same moments of the shared machine, which runs of
    their own minutes apart do not. Per side: p50, p99, the share answered 200 and the gateway's
    CPU-us per request (the figure a busy machine moves least), and the us per request its answers
    spent on sponsored slots (`streamrank_gateway_ads_seconds_total`: 0 without them)."""
    names = list(sides)
    targets = "".join(f"GET {sides[n][0]}{p}\n" for p in paths for n in names)
    ads = {n: gauge(sides[n][0], ADS_SECONDS) for n in names}
    cpu = {n: cpu_seconds(sides[n][1]) for n in names}
    attack = subprocess.run([vegeta, "attack", f"-rate={rate * len(names)}/s", f"-duration={seconds:g}s", "-timeout=5s"],
                            input=targets.encode(), capture_output=True, check=True)
    cpu = {n: cpu_seconds(sides[n][1]) - cpu[n] for n in names}
    ads = {n: gauge(sides[n][0], ADS_SECONDS) - ads[n] for n in names}
    rows = subprocess.run([vegeta, "encode", "-to", "csv"], input=attack.stdout, capture_output=True, check=True).stdout
    by_side: dict[str, list[tuple[int, float]]] = {n: [] for n in names}
    for row in csv.reader(io.StringIO(rows.decode())):  # timestamp, code, latency (ns), ..., method, URL, headers
        side = next(n for n in names if row[10].startswith(sides[n][0] + "/"))
        by_side[side].append((int(row[1]), int(row[2]) / 1e6))
    out = {}
    for n, results in by_side.items():
        latencies = np.array([ms for _, ms in results])
        out[n] = {"p50_ms": float(np.percentile(latencies, 50)), "p99_ms": float(np.percentile(latencies, 99)),
                  "requests": len(results), "success_ratio": sum(code == 200 for code, _ in results) / len(results),
                  "cpu_us_per_request": 1e6 * cpu[n] / len(results), "ads_us_per_request": 1e6 * ads[n] / len(results)}
    return out


def ads_comparison(tools: tuple[str, str], settings: Settings, sides: Mapping[str, tuple[str, int]],
                   rec_paths: list[str], search_paths: list[str], items: Sequence[str], args: argparse.Namespace) -> dict:
    """Sponsored slots' cost, on two gateways started alike that hold the same tables and campaigns,
    one with the slots and one without (`sides`: "with" / "without" -> (base, pid)): per route, an
    unmeasured paired pass, then `--ads-rounds` measured ones (`paired_pass`); each round's p99, p50
    and gateway CPU-us per request, and the medians over rounds of the ratios (with / without)."""
    vegeta = tools[1]
    routes = {"recommend": (rec_paths[: args.rate * args.seconds], args.rate, args.seconds),
              "search": (search_paths[: args.search_rate * args.search_seconds], args.search_rate, args.search_seconds)}
    n = asyncio.run(load_campaigns(settings, items, args.ad_share))
    for side, (side_base, _) in sides.items():
        wait_until(lambda url=f"{side_base}/readyz": get_json(url)["records"].get("campaigns", 0) >= n, 300, 1.0,
                   f"campaigns loaded ({side} ads)")
    base = sides["with"][0]
    out: dict = {"campaigns": n, "rounds": args.ads_rounds,
                 **{f"sponsored_per_{name}_page": round(sum(1 for p in paths[:50] for i in get_json(base + p)["items"]
                                                            if i.get("sponsored")) / max(1, min(50, len(paths))), 2)
                    for name, (paths, _, _) in routes.items()}}
    keys = ("p99_ms", "p50_ms", "cpu_us_per_request")
    for name, (paths, rate, seconds) in routes.items():
        paired_pass(vegeta, sides, paths, rate, seconds)  # warms both caches and encoders: every path once
        rounds = []
        for number in range(args.ads_rounds):
            time.sleep(1.0)
            rounds.append(paired_pass(vegeta, sides, paths, rate, seconds))
            print(f"ads {name} round {number}: " + "; ".join(
                f"{side} p99 {r['p99_ms']:.2f} ms, {r['cpu_us_per_request']:.0f} CPU-us, {r['ads_us_per_request']:.1f} us on ads"
                for side, r in rounds[-1].items()),
                flush=True)
        figures = {f"{key}_{side}": [round(r[side][key], 2 if key != "cpu_us_per_request" else 1) for r in rounds]
                   for key in keys for side in ("without", "with")}
        ratios = {key: round(statistics.median(r["with"][key] / max(1e-9, r["without"][key]) for r in rounds), 3)
                  for key in keys}
        figures["ads_us_per_request_with"] = [round(r["with"]["ads_us_per_request"], 1) for r in rounds]
        out[name] = {**figures, "p99_ratio": ratios["p99_ms"], "p50_ratio": ratios["p50_ms"],
                     "cpu_ratio": ratios["cpu_us_per_request"],
                     "success_ratio": min(r[side]["success_ratio"] for r in rounds for side in r)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--rate", type=int, default=1000, help="fixed request rate for /v1/recommend latency")
    parser.add_argument("--search-rate", type=int, default=20,
                        help="fixed request rate for /v1/search latency (a query costs tens of ms of CPU)")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--search-seconds", type=int, default=30,
                        help="search latency pass (at 20/s, 10 s would make p99 the second-worst of 200)")
    parser.add_argument("--gateways", type=int, default=1, help="gateway processes sharing the port")
    parser.add_argument("--cache-size", type=int, default=None,
                        help="recommendation cache entries per gateway (0: off, every request ranked afresh)")
    parser.add_argument("--hold", action="store_true",
                        help="load, print the gateway's address and keep the stack up until interrupted (profiling)")
    parser.add_argument("--ads", action="store_true",
                        help="then p99 of both routes without and with synthetic campaigns (same run, same paths)")
    parser.add_argument("--ad-share", type=float, default=0.1, help="share of the items --ads gives a campaign")
    parser.add_argument("--ads-rounds", type=int, default=5,
                        help="--ads: interleaved rounds over the gateway with ads and the one without")
    parser.add_argument("--live-rate", type=int, default=500,
                        help="events/s streamed during the live pass (0: no live pass)")
    parser.add_argument("--live-lead-s", type=float, default=8.0,
                        help="seconds of streaming before the live pass is measured")
    parser.add_argument("--keep-state", action="store_true",
                        help="keep the run's state folder and every process's log (a failed run keeps them anyway)")
    parser.add_argument("--raw-results", type=Path, default=None,
                        help="write each measured pass's vegeta results there, in order (pass-NN.bin): when each "
                             "request started and how long it took, to line slow ones up with the logs")
    add_plots_argument(parser)
    args = parser.parse_args()
    global RAW_RESULTS
    RAW_RESULTS = args.raw_results
    tools = ensure_tools()
    run = f"serve-{uuid.uuid4().hex[:8]}"
    base_settings = Settings.from_env()
    state = Path(tempfile.mkdtemp(prefix="streamrank-serve-"))
    # Fresh tables per run, but the trained models and the item vectors cached across runs
    # (the first encode of the catalog takes minutes) are those of var/; the online model
    # is learned in the run, from its events.
    (ROOT / "var" / "cache").mkdir(parents=True, exist_ok=True)
    (state / "cache").symlink_to(ROOT / "var" / "cache")
    (state / "models").mkdir()
    for kind in (ROOT / "var" / "models").glob("*"):
        # not the online learner's checkpoints: their offsets belong to another run's topics
        if kind.name != "online":
            (state / "models" / kind.name).symlink_to(kind)
    # The learner checkpoints soon after each version, so that it is done (and the worker
    # quiet on these two cores) once its versions stop: see wait_for_learner.
    settings = base_settings.replace(app_id=run, topic_prefix=run, state_dir=state, checkpoint_interval_s=2.0,
                       worker_metrics_port=free_port(), gateway_port=free_port(), learner_metrics_port=free_port())
    if args.cache_size is not None:
        settings = settings.replace(recommend_cache_size=args.cache_size)
    try:
        asyncio.run(wait_for_broker(settings, timeout_s=5))
    except BrokerUnavailable:
        subprocess.run([str(ROOT / "scripts" / "kafka.sh"), "start"], check=True)
    users, queries, n_items, n_event_items = asyncio.run(load_data(settings, args.events))
    if args.ads and not settings.ads.enabled:
        raise SystemExit("--ads needs STREAMRANK_ADS_ENABLED on")
    worker = worker_process(settings, state / "worker.log").start()
    learner = learner_process(settings, state / "learner.log").start()
    # The catalog's item vectors are encoded once, by the encoder (its cache is var/cache's, as
    # the gateways' was), and every gateway loads them from the item-vectors topic.
    encoder = Process([sys.executable, "-m", "app.cli", "encoder"], settings_env(settings), state / "encoder.log").start()
    gateways = [gateway_process(settings, state / f"gateway{i}.log").start() for i in range(args.gateways)]
    # --ads: two more gateways, started alike on ports of their own, one with sponsored slots and
    # one without, for ads_comparison alone; stopped once it is done.
    ad_ports = {side: free_port() for side in ("with", "without")} if args.ads else {}
    ad_gateways = {side: gateway_process(settings.replace(gateway_port=port, ads_enabled=side == "with"),
                                         state / f"gateway-ads-{side}.log").start() for side, port in ad_ports.items()}
    fixed_port = free_port()
    fixed = Process([sys.executable, str(ROOT / "bench" / "fixed_body.py"), str(fixed_port)], dict(os.environ),
                    state / "fixed.log").start()
    base = f"http://127.0.0.1:{settings.gateway.port}"
    finished = False
    try:
        wait_loaded(base, n_items, len(users), n_event_items)
        version = wait_for_learner(base)
        for side, port in ad_ports.items():
            wait_loaded(f"http://127.0.0.1:{port}", n_items, len(users), n_event_items)
            wait_until(lambda url=f"http://127.0.0.1:{port}": gauge(url, "streamrank_gateway_online_version") == version,
                       300, 1.0, f"the online version in the gateway {side} ads")
        print(f"loaded: {get_json(f'{base}/readyz')['records']}, {dense_items(base):.0f} item vectors, "
              f"online version {version:.0f}", flush=True)
        probe = f"{base}/v1/recommend?user_id={users[0]}&k=10"
        search_probe = f"{base}/v1/search?q=drill&k=10"
        models = {"recommend": get_json(probe)["model_version"], "search": get_json(search_probe)["model_version"]}
        print(f"serving {models}", flush=True)
        if args.hold:
            print(f"holding: {base} (gateway pids {[g.proc.pid for g in gateways]}, worker {worker.proc.pid}); Ctrl-C stops",
                  flush=True)
            while True:
                time.sleep(3600)
        rng = random.Random(1)
        rec_paths = [f"/v1/recommend?user_id={u}&k=10" for u in rng.sample(users, len(users))]  # each user once
        search_paths = [f"/v1/search?k=10&q={urllib.parse.quote(q)}" for q in rng.sample(queries, 5000)]
        before, gc_before = serving_counters(base), gc_pauses(base)
        cold_seconds = min(args.seconds, len(rec_paths) // args.rate) if settings.recommend.cache_size > 0 else 0
        # Warm-up paths are ones the measured passes never ask for: users after those of the
        # cold pass, queries after those of the search pass.
        rec_warmup = rec_paths[args.rate * cold_seconds:][: args.rate // 2]
        search_warmup = search_paths[args.search_rate * args.search_seconds:][: args.search_rate * 2]
        latencies: dict[str, list[float]] = {}
        results = {
            "recommend": measure(tools, base, rec_paths, args.rate, args.seconds, cold_seconds, rec_warmup,
                                 latencies, "recommend"),
            "search": measure(tools, base, search_paths, args.search_rate, args.search_seconds, warmup=search_warmup,
                              samples=latencies, name="search"),
            "fixed_body": measure(tools, f"http://127.0.0.1:{fixed_port}", rec_paths, args.rate, args.seconds,
                                  warmup=rec_paths[: args.rate // 2], samples=latencies, name="fixed body"),
        }
        after, gc_after = serving_counters(base), gc_pauses(base)  # search does not touch the counters
        d = {k: after[k] - before[k] for k in after}
        results["recommend"]["cache_hit_ratio"] = round(d["hits"] / max(1.0, d["hits"] + d["misses"]), 3)
        results["recommend"]["users_per_embedding_pass"] = round(d["requests"] / max(1.0, d["passes"]), 2)
        results["recommend"]["cache_size"] = settings.recommend.cache_size
        for name in ("recommend", "search"):
            results[name]["rps_ratio_vs_fixed"] = round(results[name]["rps"] / results["fixed_body"]["rps"], 3)
            results[name]["model_version"] = models[name]
        results["gateways"] = args.gateways
        if ad_gateways:
            sides = {side: (f"http://127.0.0.1:{port}", ad_gateways[side].proc.pid) for side, port in ad_ports.items()}
            results["ads"] = ads_comparison(tools, settings, sides, rec_paths, search_paths, ad_items(settings, args), args)
            print(f"ads: {json.dumps(results['ads'])}", flush=True)
            for g in ad_gateways.values():
                g.stop()  # the live pass measures the stack as it runs without them
        if args.live_rate > 0:
            cold_paths = rec_paths[: args.rate * max(1, cold_seconds)]
            pids = {**{f"gateway {i}": g.proc.pid for i, g in enumerate(gateways)}, "worker": worker.proc.pid,
                    "learner": learner.proc.pid, "bench (event stream)": os.getpid()}
            if (broker := local_broker_pid()) is not None:
                pids["broker"] = broker
            results["live"] = live_pass(tools, settings, base, f"http://127.0.0.1:{fixed_port}", cold_paths, args,
                                        latencies, pids)
            print(f"live: {json.dumps(results['live'])}", flush=True)
        if args.gateways == 1:  # with several, each scrape reaches any one of them
            results["gc_during_run"] = {g: round(gc_after[g] - gc_before[g], 3) for g in gc_after}
        write_plots(plot_dir(base_settings.runtime.state_dir, "bench-serve", args.plots), results,
                    lambda d: plot_latencies(latencies, results, d))
        print(json.dumps(results))
        finished = True
    finally:
        for p in (fixed, *gateways, *ad_gateways.values(), encoder, learner, worker):
            p.stop()
        # The run's tables, the learner's snapshots, every process's log and its topics: kept where
        # it failed, or with --keep-state (the logs line slow requests of --raw-results up with versions).
        if finished and not args.keep_state:
            shutil.rmtree(state, ignore_errors=True)
            drop_run_topics(settings)
        else:
            print(f"state and logs kept in {state}", file=sys.stderr)


def plot_latencies(latencies: dict[str, list[float]], results: dict, directory: Path) -> list[Path]:
    """latency.png: each pass's latency distribution (p50/p95/p99 marked); rps.png: peak
    requests/s of each endpoint beside the fixed-body handler."""
    from models.plots import plot_bars, plot_distribution

    rps = {name: {"peak requests/s": results[name]["rps"]} for name in ("recommend", "search", "fixed_body")}
    return [plot_distribution({k: v for k, v in latencies.items() if v}, directory / "latency.png",
                              "bench/serve.py: latency at a fixed rate (open loop)"),
            plot_bars(rps, directory / "rps.png", "bench/serve.py: peak throughput (wrk -c32)", "requests/s")]


if __name__ == "__main__":
    main()
