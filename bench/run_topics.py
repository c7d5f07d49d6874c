"""A bench's own topics, dropped when it is done.

Each bench runs on a topic prefix and app id of its own (a fresh run, and a shared broker that
is not disturbed), and left its topics behind: 15 GB of them in this machine's broker after a
few weeks of runs (1.5M events a `bench/scale.py` run). Dropped where a run finished; kept with
its state where it failed, or where a bench keeps its state on request.
"""
from __future__ import annotations

import asyncio
import sys

from app.kafka_io import delete_run_topics
from app.settings import Settings


def drop_run_topics(*runs: Settings) -> list[str]:
    """Delete every topic of each run's prefix and of its app id (Faust's changelogs); the names.
    A broker that refuses is reported, not raised: the bench's figures are printed already."""
    dropped: list[str] = []
    for settings in runs:
        if settings.topics.prefix == Settings().topics.prefix:
            raise ValueError("a bench's topics have a prefix of their own: refusing the default one")
        try:
            dropped += asyncio.run(delete_run_topics(settings))
        except Exception as exc:  # noqa: BLE001
            print(f"could not drop the run's topics ({exc}); they stay on the broker", file=sys.stderr)
    return dropped
