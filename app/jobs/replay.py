"""`streamrank replay`: stream a shared data set into Kafka as a shop would, at a chosen rate.

- `--dataset beauty` (default): the Amazon Beauty sequences as user events, users
  interleaved in time, each user's items in order;
- `--dataset homedepot`: the Home Depot products as catalog upserts (what search serves).
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterable, Iterator

from tqdm import tqdm

from app.kafka_io import ensure_topics, make_producer
from app.records import CatalogChange
from app.replay_data import ReplayPlan, read_sequences, sequence_events
from app.settings import Settings
from models.data.homedepot import load_homedepot

Record = tuple[str, str, bytes]  # topic, key, value


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("replay", help="replay a data set into Kafka (user events or catalog)")
    parser.add_argument("--dataset", choices=("beauty", "homedepot"), default="beauty")
    parser.add_argument("--data", type=Path, help="the file (default: the shared copy of the dataset)")
    parser.add_argument("--rate", type=float, default=0.0, help="records per second (0: as fast as possible)")
    parser.add_argument("--limit", type=int, default=0, help="stop after this many records (0: all)")
    parser.add_argument("--type", default="purchase", help="beauty: event type of each interaction")
    parser.add_argument("--run-id", default="seq", help="beauty: event-id prefix; replaying a run again sends "
                                                     "only duplicates, a new run new events")
    parser.add_argument("--event-time", choices=("live", "synthetic"), default="live",
                        help="beauty: live stamps events when sent (a shop's stream); synthetic "
                             "keeps the reproducible timeline of the replay plan")
    parser.set_defaults(run=run)


def beauty_records(settings: Settings, path: Path, args: argparse.Namespace) -> tuple[int, Iterator[Record]]:
    sequences = read_sequences(path)
    total = sum(len(items) for _, items in sequences)
    events: Iterable = sequence_events(sequences, ReplayPlan(event_type=args.type, run=args.run_id))
    if args.event_time == "live":
        events = (replace(e, ts=time.time()) for e in events)
    topic = settings.topics.events
    return total, ((topic, e.user_id, e.to_json()) for e in events)


def homedepot_records(settings: Settings, path: Path, args: argparse.Namespace) -> tuple[int, Iterator[Record]]:
    data = load_homedepot(path)
    topic = settings.topics.catalog
    changes = (CatalogChange(op="upsert", item_id=item, ts=time.time(), title=title)
               for item, title in zip(data.items, data.titles))
    return len(data.items), ((topic, c.item_id, c.to_json()) for c in changes)


DATASETS = {
    "beauty": (Path("amazon-beauty") / "Beauty.txt", beauty_records),
    "homedepot": (Path("homedepot") / "train.csv.gz", homedepot_records),
}


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    default_path, records_of = DATASETS[args.dataset]
    path = args.data or settings.data_dir / default_path
    total, records = records_of(settings, path, args)
    if args.limit:
        total = min(total, args.limit)
    sent, seconds = asyncio.run(_produce(settings, itertools.islice(records, total), total, args.rate))
    print(f"replayed {sent} {args.dataset} records from {path} in {seconds:.1f}s "
          f"({sent / max(seconds, 1e-9):.0f} records/s)")
    return 0


async def _produce(settings: Settings, records: Iterable[Record], total: int, rate: float) -> tuple[int, float]:
    await ensure_topics(settings)
    producer = make_producer(settings)
    await producer.start()
    start = time.monotonic()
    sent = 0
    try:
        with tqdm(total=total, unit="rec", desc="replay") as bar:
            for topic, key, value in records:
                await producer.send(topic, key=key.encode(), value=value)
                sent += 1
                if sent % 1000 == 0:
                    bar.update(1000)
                    if rate > 0:  # pace in blocks: a sleep per record would cap the rate
                        ahead = sent / rate - (time.monotonic() - start)
                        if ahead > 0:
                            await asyncio.sleep(ahead)
            bar.update(sent % 1000)
        await producer.flush()
    finally:
        await producer.stop()
    return sent, time.monotonic() - start
