"""`streamrank topics`: create the Kafka topics with the configured partitions (idempotent)."""
from __future__ import annotations

import argparse
import asyncio

from app.kafka_io import ensure_topics
from app.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("topics", help="create streamrank's Kafka topics")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    created = asyncio.run(ensure_topics(settings))
    print(f"topics on {settings.kafka.bootstrap_servers}: created {created or 'none (all existed)'}")
    return 0
