"""`streamrank replay`: stream a shared data set into Kafka as a shop would, at a chosen rate."""
from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from app.kafka_io import ensure_topics, make_producer
from app.replay_data import ReplayPlan, read_sequences, sequence_events
from app.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("replay", help="replay a data set into Kafka as user events")
    parser.add_argument("--data", type=Path, help="sequence file (default: the shared Amazon Beauty)")
    parser.add_argument("--rate", type=float, default=0.0, help="events per second (0: as fast as possible)")
    parser.add_argument("--limit", type=int, default=0, help="stop after this many events (0: all)")
    parser.add_argument("--type", default="purchase", help="event type of each interaction")
    parser.add_argument("--event-time", choices=("live", "synthetic"), default="live",
                        help="live: stamp events when sent (a shop's stream); synthetic: the "
                             "reproducible timeline of the replay plan")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    path = args.data or settings.data_dir / "amazon-beauty" / "Beauty.txt"
    sequences = read_sequences(path)
    total = sum(len(items) for _, items in sequences)
    if args.limit:
        total = min(total, args.limit)
    events = itertools.islice(sequence_events(sequences, ReplayPlan(event_type=args.type)), total)
    if args.event_time == "live":
        events = (replace(e, ts=time.time()) for e in events)
    sent, seconds = asyncio.run(_produce(settings, events, total, args.rate))
    print(f"replayed {sent} events from {path} to {settings.topics.events} "
          f"in {seconds:.1f}s ({sent / max(seconds, 1e-9):.0f} events/s)")
    return 0


async def _produce(settings: Settings, events, total: int, rate: float) -> tuple[int, float]:
    await ensure_topics(settings)
    producer = make_producer(settings)
    await producer.start()
    start = time.monotonic()
    sent = 0
    try:
        with tqdm(total=total, unit="ev", desc="replay") as bar:
            for event in events:
                await producer.send(settings.topics.events, key=event.user_id.encode(), value=event.to_json())
                sent += 1
                if sent % 1000 == 0:
                    bar.update(1000)
                    if rate > 0:  # pace in blocks: a sleep per event would cap the rate
                        ahead = sent / rate - (time.monotonic() - start)
                        if ahead > 0:
                            await asyncio.sleep(ahead)
            bar.update(sent % 1000)
        await producer.flush()
    finally:
        await producer.stop()
    return sent, time.monotonic() - start
