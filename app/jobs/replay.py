"""`streamrank replay`: stream a shared data set into Kafka as a shop would, at a chosen rate.

- `--dataset beauty` (default): the Amazon Beauty sequences as user events, users
  interleaved in time, each user's items in order;
- `--dataset homedepot`: the Home Depot products as catalog upserts (what search serves; the
  file has no prices, each product gets a fixed made-up one), then simulated shoppers on the
  training queries: each session searches (the live gateway, or BM25 in-process with
  `--ranker local`), sends the search, one impression per result, the clicks of a
  position-based click model, then the carts and purchases that follow some clicks, as user
  events. The shoppers come back (a pool of `--users`), so they build histories; every
  event names a catalog product. This is the demo's shop; Beauty is the recommender benchmark.
  With `--ads` (and `--ranker local`), synthetic campaigns bid for two sponsored slots of each
  page (`models/ads/`); the shoppers click ads as they click any result, by label and position.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Iterable, Iterator

from aiokafka import AIOKafkaProducer
from tqdm import tqdm

from app.kafka_io import ensure_topics, make_producer
from tables.wire.records import CatalogChange, UserEvent
from app.replay_data import ReplayPlan, catalog_price, read_sequences, sequence_events
from app.search_sessions import (CampaignPlan, SessionPlan, SessionSimulator, SessionSummary, SponsoredSlots,
                                 synthetic_campaigns, training_queries)
from app.session_rankers import GatewayRanker, LocalRanker, Ranker
from app.settings import Settings
from models.data.homedepot import SearchData, load_homedepot, load_test_queries
from models.errors import DataError

Record = tuple[str, str, bytes]  # topic, key, value
Send = Callable[[UserEvent], Awaitable[None]]

DATASETS = {
    "beauty": Path("amazon-beauty") / "Beauty.txt",
    "homedepot": Path("homedepot") / "train.csv.gz",
}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("replay", help="replay a data set into Kafka (user events, catalog, search sessions)")
    parser.add_argument("--dataset", choices=tuple(DATASETS), default="beauty")
    parser.add_argument("--data", type=Path, help="the file (default: the shared copy of the dataset)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="records per second (0: as fast as possible); homedepot: catalog records, "
                             "then search sessions per second")
    parser.add_argument("--limit", type=int, default=0, help="stop after this many records (0: all); "
                                                             "homedepot: catalog records")
    parser.add_argument("--type", default="purchase", help="beauty: event type of each interaction")
    parser.add_argument("--run-id", default="seq", help="event-id prefix; replaying a run again sends "
                                                     "only duplicates, a new run new events")
    parser.add_argument("--event-time", choices=("live", "synthetic"), default="live",
                        help="beauty: live stamps events when sent (a shop's stream); synthetic "
                             "keeps the reproducible timeline of the replay plan")
    sessions = parser.add_argument_group("homedepot search sessions")
    sessions.add_argument("--sessions", type=int, default=2000, help="search sessions after the catalog (0: none)")
    sessions.add_argument("--sessions-only", action="store_true", help="skip the catalog (already sent)")
    sessions.add_argument("--ranker", choices=("gateway", "local"), default="gateway",
                          help="gateway: GET /v1/search of a running gateway; local: BM25 over the titles here")
    sessions.add_argument("--gateway", default=None,
                          help="gateway base URL (default: http://STREAMRANK_GATEWAY_HOST:STREAMRANK_GATEWAY_PORT)")
    sessions.add_argument("--users", type=_positive, default=500, help="simulated users hd-u0 .. hd-u{N-1}")
    sessions.add_argument("--k", type=_positive, default=10, help="results shown per search")
    sessions.add_argument("--seed", type=int, default=7, help="seed of users, queries and clicks")
    sessions.add_argument("--test-queries", type=Path, default=None,
                          help="queries (one a line) never to search, besides the dev split")
    sessions.add_argument("--ads", action="store_true",
                          help="synthetic campaigns bid for sponsored slots on each page (needs --ranker local "
                               "until the gateway serves them)")
    sessions.add_argument("--ad-share", type=float, default=CampaignPlan.share,
                          help="with --ads: share of the catalog advertised")
    parser.set_defaults(run=run)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    path = args.data or settings.runtime.data_dir / DATASETS[args.dataset]
    if args.dataset == "homedepot":
        return asyncio.run(replay_homedepot(settings, path, args))
    records, total = _limited(*beauty_records(settings, path, args), args.limit)
    _report(args.dataset, path, *asyncio.run(_produce(settings, records, total, args.rate)))
    return 0


def beauty_records(settings: Settings, path: Path, args: argparse.Namespace) -> tuple[int, Iterator[Record]]:
    sequences = read_sequences(path)
    total = sum(len(items) for _, items in sequences)
    events: Iterable = sequence_events(sequences, ReplayPlan(event_type=args.type, run=args.run_id))
    if args.event_time == "live":
        events = (replace(e, ts=time.time()) for e in events)
    topic = settings.topics.events
    return total, ((topic, e.user_id, e.to_json()) for e in events)


def catalog_records(settings: Settings, data: SearchData) -> tuple[int, Iterator[Record]]:
    topic = settings.topics.catalog
    # The file has no prices: each product gets a fixed made-up one, so pages can show a price.
    changes = (CatalogChange(op="upsert", item_id=item, ts=time.time(), title=title, price=catalog_price(item))
               for item, title in zip(data.items, data.titles))
    return len(data.items), ((topic, c.item_id, c.to_json()) for c in changes)


async def replay_homedepot(settings: Settings, path: Path, args: argparse.Namespace) -> int:
    """Catalog (unless --sessions-only), then --sessions simulated search sessions."""
    if getattr(args, "ads", False) and args.ranker != "local":
        raise DataError("--ads needs --ranker local: the gateway does not serve sponsored slots yet")
    data = load_homedepot(path)
    simulator = session_simulator(settings, data, args) if args.sessions > 0 else None
    # Entering the gateway ranker checks it answers: fail before sending the catalog, not after.
    async with ranker_of(settings, data, args) if simulator else contextlib.nullcontext() as ranker:
        if not args.sessions_only:
            records, total = _limited(*catalog_records(settings, data), args.limit)
            _report("homedepot catalog", path, *await _produce(settings, records, total, args.rate))
        if simulator is not None:
            ads = sponsored_slots(data, simulator, ranker, args)
            summary = await _simulate_to_kafka(settings, simulator, ranker, args.sessions, args.rate, ads)
            print(json.dumps(summary.as_dict() if ads is None else {**summary.as_dict(), "ads": ads.tally.as_dict()}))
    return 0


def sponsored_slots(data: SearchData, simulator: SessionSimulator, ranker: Ranker,
                    args: argparse.Namespace) -> SponsoredSlots | None:
    """With --ads: synthetic campaigns over the catalog, auctioned on the local ranker's BM25 index."""
    if not getattr(args, "ads", False) or not isinstance(ranker, LocalRanker):
        return None
    campaigns = synthetic_campaigns(data.items, CampaignPlan(share=args.ad_share))
    print(f"{len(campaigns)} synthetic campaigns on {args.ad_share:.0%} of the catalog")
    return SponsoredSlots(campaigns, ranker.index, simulator.plan)


def session_simulator(settings: Settings, data: SearchData, args: argparse.Namespace) -> SessionSimulator:
    exclude = load_test_queries(args.test_queries) if args.test_queries else []
    queries = training_queries(data, settings.search.dev_fraction, settings.search.calib_fraction, exclude)
    if not queries:
        raise DataError("no training queries left to simulate sessions with (all in dev or --test-queries)")
    plan = SessionPlan(run=args.run_id, users=args.users, k=args.k, seed=args.seed)
    return SessionSimulator(data, queries, plan)


def demo_shopper(settings: Settings, users: int = 500, seed: int = 7) -> tuple[str, str]:
    """(shopper, product) for the demo's example requests: the shopper of the first session and
    the most relevant product of that session's query (the one most likely to be clicked and bought)."""
    data = load_homedepot(settings.runtime.data_dir / DATASETS["homedepot"])
    queries = training_queries(data, settings.search.dev_fraction, settings.search.calib_fraction)
    session = SessionSimulator(data, queries, SessionPlan(users=users, seed=seed)).session(0)
    judged = data.judgments[session.query]
    return session.user_id, max(judged, key=lambda item: (judged[item], item))


def ranker_of(settings: Settings, data: SearchData, args: argparse.Namespace) -> Ranker:
    if args.ranker == "local":
        return LocalRanker(data)
    return GatewayRanker(args.gateway or f"http://{settings.gateway.host}:{settings.gateway.port}")


async def simulate_sessions(simulator: SessionSimulator, ranker: Ranker, send: Send,
                            sessions: int, rate: float = 0.0, ads: SponsoredSlots | None = None) -> SessionSummary:
    """Run sessions 0..sessions-1: search with `ranker` (and with `ads`, auction sponsored slots
    into the results), `send` each event; rate in sessions/s (0: no pacing)."""
    summary = SessionSummary()
    start = time.monotonic()
    for number in tqdm(range(sessions), unit="session", desc="sessions"):
        session = simulator.session(number)
        results = await ranker.search(session.text, session.user_id, simulator.plan.k)
        ts = time.time()
        page = ads.page(session, results.item_ids, ts) if ads is not None else None
        if page is not None:
            results = replace(results, item_ids=[entry.item_id for entry in page])
        events = simulator.events(session, results, ts)
        if ads is not None and page is not None:
            ads.feedback(session, page, events, ts)
        for event in events:
            await send(event)
        summary.add(events)
        if rate > 0:
            await _pace(start, number + 1, rate)
    return summary


async def _simulate_to_kafka(settings: Settings, simulator: SessionSimulator, ranker: Ranker,
                             sessions: int, rate: float, ads: SponsoredSlots | None = None) -> SessionSummary:
    topic = settings.topics.events
    async with _producer(settings) as producer:

        async def send(event: UserEvent) -> None:  # keyed by user: a user's events stay in order
            await producer.send(topic, key=event.user_id.encode(), value=event.to_json())

        return await simulate_sessions(simulator, ranker, send, sessions, rate, ads)


def _limited(total: int, records: Iterator[Record], limit: int) -> tuple[Iterator[Record], int]:
    total = min(total, limit) if limit else total
    return itertools.islice(records, total), total


def _report(what: str, path: Path, sent: int, seconds: float) -> None:
    print(f"replayed {sent} {what} records from {path} in {seconds:.1f}s "
          f"({sent / max(seconds, 1e-9):.0f} records/s)")


async def _pace(start: float, done: int, rate: float) -> None:
    ahead = done / rate - (time.monotonic() - start)
    if ahead > 0:
        await asyncio.sleep(ahead)


@contextlib.asynccontextmanager
async def _producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    await ensure_topics(settings)
    producer = make_producer(settings)
    await producer.start()
    try:
        yield producer
        await producer.flush()
    finally:
        await producer.stop()


async def _produce(settings: Settings, records: Iterable[Record], total: int, rate: float) -> tuple[int, float]:
    sent = 0
    async with _producer(settings) as producer:
        start = time.monotonic()
        with tqdm(total=total, unit="rec", desc="replay") as bar:
            for topic, key, value in records:
                await producer.send(topic, key=key.encode(), value=value)
                sent += 1
                if sent % 1000 == 0:
                    bar.update(1000)
                    if rate > 0:  # pace in blocks: a sleep per record would cap the rate
                        await _pace(start, sent, rate)
            bar.update(sent % 1000)
    return sent, time.monotonic() - start
