"""Gateway memory under hostile traffic: resident memory while unique junk keeps coming.

Starts a real gateway process on loopback, on topics of a run of its own at the Kafka broker
(`KAFKA_BROKER`, default 127.0.0.1:19092), with API keys on. No worker: a small Home Depot
catalog (`--items`, with made-up categories, prices and stock), shopper profiles and item
statistics are written straight to the tables' changelogs, as a worker would write them.
With `--dense` (the default) the gateway runs its MiniLM search too, encoding the catalog at
start (the reason the catalog is small). Then `--requests` requests over `--connections`
connections, each asking for something never asked before:
- /v1/recommend with a new user id (up to 256 characters), k and filters at random;
- /v1/items/{id}/similar for catalog and junk ids, mostly with filters nothing passes;
- /v1/search with a new junk query (up to 512 characters), some with a junk user id;
- /v1/users/{junk} and /v1/items/{junk};
- malformed ones: percent-escapes that are not UTF-8, absurd numbers, ids over the limit,
  a wrong API key, `text/plain` and too deeply nested POSTs.
The recommendation cache (`--cache-bytes`) and the query encoder's cache (`--query-cache`)
are set small enough to fill early in the run. Every `--report-every` requests it prints
the gateway's RSS, the recommendation cache's entries and bytes, and the statuses so far.
"Full" is the first report at which the recommendation cache holds 90% of its bytes and
more unique queries were searched than the encoder caches; RSS must stay flat after it.
Last line: {"rss_mb_start": ..., "rss_mb_full": ..., "rss_mb_end": ..., "rss_growth_after_full_mb": ...,
            "status_5xx": 0, "statuses": {...}, ...}
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import string
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.kafka_io import ensure_topics, make_producer, wait_for_broker
from app.metrics import sample_totals
from app.processes import free_port, gateway_process, wait_until
from tables.wire.records import CatalogChange, UserEvent
from app.settings import Settings
from tables.wire.names import changelog_topic
from models.data.homedepot import load_homedepot
from tables import catalog, item_stats, user_profiles
from run_topics import drop_run_topics

API_KEY = "abuse-bench-key"
CATEGORIES = [f"cat-{n}" for n in range(10)]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def load_tables(settings: Settings, n_items: int, n_users: int, seed: int) -> list[str]:
    """Catalog, profiles and item stats on the changelogs; returns the catalog's item ids."""
    await ensure_topics(settings)
    data = load_homedepot(settings.runtime.data_dir / "homedepot" / "train.csv.gz")
    items = data.items[:n_items]
    rng = random.Random(seed)
    now = time.time()
    producer = make_producer(settings)
    await producer.start()

    async def put(table: str, key: str, value: dict) -> None:
        # Faust writes str keys as JSON, values as the table's JSON
        await producer.send(changelog_topic(settings, table), key=orjson.dumps(key), value=orjson.dumps(value))

    try:
        for n, (item, title) in enumerate(zip(items, data.titles)):
            change = CatalogChange("upsert", item, now, title=title, category=CATEGORIES[n % len(CATEGORIES)],
                                   price=float(5 + n % 200), stock=n % 4)
            await put(catalog.NAME, item, catalog.to_item(change))
        stats: dict[str, dict] = {}
        offset = itertools.count()
        for u in range(n_users):
            profile = user_profiles.empty()
            for item in rng.sample(items, rng.randint(3, 12)):
                event = UserEvent(f"e{next(offset)}", f"shopper-{u}", "view", now - rng.random() * 86400, item)
                profile = user_profiles.apply_event(profile, event, 0, next(offset), settings.features.recent_items)
                stats[item] = item_stats.apply_event(stats.get(item) or item_stats.empty(), "view", event.ts, 0,
                                                     next(offset), settings.features.popularity_half_life_s,
                                                     settings.features.trending_half_life_s)
            await put(user_profiles.NAME, f"shopper-{u}", profile)
        for item, s in stats.items():
            await put(item_stats.NAME, item, s)
        await producer.flush()
    finally:
        await producer.stop()
    return list(items)


def junk(rng: random.Random, lo: int, hi: int) -> str:
    return "".join(rng.choices(string.ascii_lowercase + string.digits + "-_ ", k=rng.randint(lo, hi))).strip() or "x"


def filters(rng: random.Random, nothing: bool) -> str:
    """Query-string filters: junk categories nothing has, or real ones, stock and prices."""
    if nothing:
        return rng.choice([f"&category=none-{junk(rng, 1, 60)}", f"&min_price={rng.randint(10**6, 10**9)}",
                           f"&category={rng.choice(CATEGORIES)}&max_price=0.5"])
    return rng.choice(["", "&in_stock=true", f"&category={rng.choice(CATEGORIES)}",
                       f"&min_price={rng.randint(0, 100)}&max_price={rng.randint(100, 300)}"])


def next_request(n: int, rng: random.Random, items: list[str]) -> tuple[str, str, bytes | None, dict[str, str]]:
    """(method, path, body, headers) of request n: every id, query and filter new."""
    key = {"X-API-Key": API_KEY}
    kind = n % 10
    k = rng.choice([1, 5, 10, 50, 100])
    if kind in (0, 1, 2):
        user = quote(f"u{n}-{junk(rng, 0, 240)}")
        return "GET", f"/v1/recommend?user_id={user}&k={k}{filters(rng, rng.random() < 0.3)}", None, key
    if kind in (3, 4):
        item = rng.choice(items) if rng.random() < 0.5 else quote(f"junk-{n}-{junk(rng, 0, 200)}")
        return "GET", f"/v1/items/{item}/similar?k={k}{filters(rng, rng.random() < 0.7)}", None, key
    if kind in (5, 6):
        words = " ".join(junk(rng, 2, 12) for _ in range(rng.randint(1, 30)))
        user = f"&user_id=u{n}" if rng.random() < 0.3 else ""
        return "GET", f"/v1/search?q={quote(f'{n} {words}'[:512])}&k={k}{user}{filters(rng, False)}", None, key
    if kind == 7:
        path = rng.choice(["/v1/users/", "/v1/items/"])
        return "GET", path + quote(f"j{n}-{junk(rng, 0, 240)}"), None, key
    if kind == 8:
        bad = rng.choice([f"/v1/recommend?user_id=%ff%fe{n}", "/v1/recommend?k=1e999", "/v1/search?q=a&min_price=nan",
                          f"/v1/users/{'x' * 300}{n}", f"/v1/recommend?user_id={n}&k={'9' * 500}"])
        return "GET", bad, None, key if rng.random() < 0.8 else {"X-API-Key": f"wrong-{n}"}
    body = rng.choice([b'{"event_id": "e", "user_id": "u", "type": "view", "item_id": "i", "x": '
                       + b"[" * 300 + b"]" * 300 + b"}", b"event_id=e&user_id=u", b"[" * 2000])
    content_type = "application/json" if body.startswith(b"{") or body.startswith(b"[") else "text/plain"
    return "POST", rng.choice(["/v1/events", "/v1/catalog"]), body, {**key, "Content-Type": content_type}


async def attack(base: str, items: list[str], total: int, connections: int, max_s: float, report_every: int,
                 on_report) -> tuple[Counter, int, float]:  # type: ignore[no-untyped-def]
    """Send `total` requests (or for `max_s` seconds); returns statuses, requests sent, seconds."""
    statuses: Counter = Counter()
    counter = itertools.count()
    started = time.monotonic()
    rng = random.Random(7)
    sent = 0

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal sent
        while (n := next(counter)) < total and time.monotonic() - started < max_s:
            method, path, body, headers = next_request(n, rng, items)
            try:
                async with session.request(method, base + path, data=body, headers=headers,
                                           skip_auto_headers=["Content-Type"]) as r:
                    await r.read()
                    statuses[r.status] += 1
            except aiohttp.ClientError as exc:
                statuses[f"error:{type(exc).__name__}"] += 1
            sent += 1
            if sent % report_every == 0:
                await on_report(sent, statuses)

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        await asyncio.gather(*(one(session) for _ in range(connections)))
    return statuses, sent, time.monotonic() - started


def gauges(base: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as r:
        text = r.read().decode()
    totals = sample_totals(text)
    return {key: totals[f"streamrank_gateway_{key}"] for key in ("rec_cache_entries", "rec_cache_bytes", "dense_items")
            if f"streamrank_gateway_{key}" in totals}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1500, help="catalog items (encoded at start with --dense)")
    parser.add_argument("--users", type=int, default=300, help="shopper profiles")
    parser.add_argument("--requests", type=int, default=30_000)
    parser.add_argument("--max-seconds", type=float, default=300.0, help="stop sending after this long")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--report-every", type=int, default=5000)
    parser.add_argument("--cache-bytes", type=int, default=8 * 1024 * 1024, help="recommendation cache bytes")
    parser.add_argument("--query-cache", type=int, default=1024, help="query vectors the encoder caches")
    parser.add_argument("--dense", action=argparse.BooleanOptionalAction, default=True,
                        help="MiniLM search in the gateway (--no-dense: BM25 only)")
    args = parser.parse_args()
    run = f"abuse-{uuid.uuid4().hex[:8]}"
    state = Path(tempfile.mkdtemp(prefix="streamrank-abuse-"))
    settings = Settings.from_env().replace(app_id=run, topic_prefix=run, state_dir=state, topic_partitions=1,
                       gateway_port=free_port(), api_keys=API_KEY, search_dense=args.dense,
                       search_encode_catalog=args.dense,  # a lone gateway: no encoder process here
                       recommend_cache_bytes=args.cache_bytes, encoder_query_cache=args.query_cache)
    asyncio.run(wait_for_broker(settings, timeout_s=10))
    items = asyncio.run(load_tables(settings, args.items, args.users, seed=1))
    gateway = gateway_process(settings, state / "gateway.log").start()
    base = f"http://127.0.0.1:{settings.gateway.port}"
    try:
        pid = gateway.proc.pid  # type: ignore[union-attr]
        wait_until(lambda: _ready(base, len(items), args.dense), 900, 2.0, "catalog loaded (and encoded)")
        rss = {"start": rss_mb(pid)}
        print(f"{run}: gateway ready with {len(items)} items, {args.users} shoppers; RSS {rss['start']:.1f} MB",
              flush=True)
        steps: list[dict] = []

        async def on_report(sent: int, statuses: Counter) -> None:
            g = await asyncio.to_thread(gauges, base)
            step = {"requests": sent, "rss_mb": round(rss_mb(pid), 1), "rec_cache_entries": int(g["rec_cache_entries"]),
                    "rec_cache_mb": round(g["rec_cache_bytes"] / 2**20, 2),
                    "statuses": {str(s): c for s, c in sorted(statuses.items(), key=str)}}
            searches = sent * 2 // 10  # kinds 5 and 6 of next_request, each query new
            full = g["rec_cache_bytes"] >= 0.9 * args.cache_bytes and searches > args.query_cache
            if full and "full" not in rss:
                rss["full"], step["full"] = step["rss_mb"], True
            steps.append(step)
            print(json.dumps(step), flush=True)

        statuses, sent, seconds = asyncio.run(attack(base, items, args.requests, args.connections, args.max_seconds,
                                                     args.report_every, on_report))
        rss["end"] = rss_mb(pid)
        errors_5xx = sum(c for s, c in statuses.items() if isinstance(s, int) and s >= 500)
        print(json.dumps({
            "requests": sent, "seconds": round(seconds, 1), "rps": round(sent / seconds, 1),
            "rss_mb_start": round(rss["start"], 1), "rss_mb_full": rss.get("full"), "rss_mb_end": round(rss["end"], 1),
            "rss_growth_after_full_mb": round(rss["end"] - rss["full"], 1) if "full" in rss else None,
            "status_5xx": errors_5xx, "statuses": {str(s): c for s, c in sorted(statuses.items(), key=str)},
            "rec_cache_bytes_limit": args.cache_bytes, "query_cache": args.query_cache, "dense": args.dense,
            "items": len(items)}))
        if errors_5xx:
            print(gateway.tail(60), file=sys.stderr)
    finally:
        gateway.stop()
        drop_run_topics(settings)  # the broker is shared


def _ready(base: str, n_items: int, dense: bool) -> bool:
    with urllib.request.urlopen(f"{base}/readyz", timeout=5) as r:
        records = json.loads(r.read())["records"]
    return records["catalog"] >= n_items and (not dense or gauges(base).get("dense_items", 0) >= n_items)


if __name__ == "__main__":
    main()
