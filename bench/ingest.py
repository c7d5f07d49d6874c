"""Ingest throughput: events/s from the events topic into the tables, against a bare consumer.

Both read the same topic in the same run: a plain aiokafka consumer (the pipeline's upper
bound) and the Faust worker (validation, dedupe, profile and item-stat tables with RocksDB
changelogs, and the item repartition). The worker's rate is measured from its first to its
last processed event (start-up and rebalance left out), by scraping its metrics.
Last line: {"pipeline_eps": ..., "raw_eps": ..., "ratio": ...}
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.kafka_io import ensure_topics, make_producer, wait_for_broker  # noqa: E402
from app.processes import free_port, scrape, wait_until, worker_process  # noqa: E402
from app.replay_data import read_sequences, sequence_events  # noqa: E402
from app.settings import ROOT, Settings  # noqa: E402
from models.errors import BrokerUnavailable  # noqa: E402


async def produce(settings: Settings, n: int) -> None:
    await ensure_topics(settings)
    events = itertools.islice(sequence_events(read_sequences(settings.data_dir / "amazon-beauty" / "Beauty.txt")), n)
    producer = make_producer(settings)
    await producer.start()
    try:
        for e in events:
            await producer.send(settings.topics.events, key=e.user_id.encode(), value=e.to_json())
        await producer.flush()
    finally:
        await producer.stop()


async def raw_consume(settings: Settings, n: int) -> float:
    """Events/s of a bare consumer that parses each record, from first record to the n-th."""
    consumer = AIOKafkaConsumer(settings.topics.events, bootstrap_servers=settings.bootstrap_servers,
                                group_id=f"bench-raw-{uuid.uuid4().hex[:6]}", auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    seen, start = 0, None
    try:
        while seen < n:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batches.values():
                if start is None:
                    start = time.perf_counter()
                for rec in records:
                    orjson.loads(rec.value)
                seen += len(records)
        return seen / (time.perf_counter() - start)  # type: ignore[operator]
    finally:
        await consumer.stop()


def pipeline_rate(settings: Settings, n: int, log: Path) -> float:
    worker = worker_process(settings, log).start()
    try:
        processed = lambda: scrape(settings.worker_metrics_port).get("streamrank_events_processed_total", 0.0)  # noqa: E731
        wait_until(lambda: processed() > 0, 180, 0.05, "first event processed")
        start, last = time.perf_counter(), 0.0
        while (last := processed()) < n:
            if not worker.alive():
                raise RuntimeError(f"worker died:\n{worker.tail()}")
            time.sleep(0.05)
        first = 1.0  # the event that started the clock
        return (last - first) / (time.perf_counter() - start)
    finally:
        worker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--store", default="rocksdb://")
    args = parser.parse_args()
    run_id = uuid.uuid4().hex[:8]
    base = Settings.from_env()
    settings = replace(base, app_id=f"bench-{run_id}", topic_prefix=f"bench-{run_id}", store=args.store,
                       state_dir=Path(tempfile.mkdtemp(prefix="streamrank-bench-")),
                       worker_metrics_port=free_port())
    try:
        asyncio.run(wait_for_broker(settings, timeout_s=5))
    except BrokerUnavailable:
        subprocess.run([str(ROOT / "scripts" / "kafka.sh"), "start"], check=True)
    asyncio.run(produce(settings, args.events))
    raw = asyncio.run(raw_consume(settings, args.events))
    print(f"bare aiokafka consumer: {raw:,.0f} events/s")
    pipe = pipeline_rate(settings, args.events, settings.state_dir / "worker.log")
    print(f"streamrank worker ({args.store}): {pipe:,.0f} events/s")
    print(orjson.dumps({"pipeline_eps": round(pipe, 1), "raw_eps": round(raw, 1),
                        "ratio": round(pipe / raw, 4), "events": args.events, "store": args.store}).decode())


if __name__ == "__main__":
    main()
