"""`streamrank encoder`: computes the catalog's item vectors once and publishes them for every gateway."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from typing import TYPE_CHECKING

from app.settings import Settings

if TYPE_CHECKING:  # torch and Kafka load only when the job runs: `streamrank --help` stays quick
    from app.item_encoder import ItemEncoder


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("encoder", help="encode catalog item texts to the item-vectors topic (run one)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from app.gateway.dense_search import vector_cache_path
    from app.item_encoder import ItemEncoder
    from models.encoder import TextEncoder

    settings = Settings.from_env()
    # float32 weights: the item tower the gateways' `item_model_key` names (on CUDA it runs there).
    tower = TextEncoder(max_length=settings.encoder.max_length).for_serving()
    encoder = ItemEncoder(settings, lambda texts: tower.encode(texts, settings.encoder.batch_size),
                          tower.model_key, vector_cache_path(settings, tower))
    asyncio.run(_until_stopped(encoder))
    return 0


async def _until_stopped(encoder: ItemEncoder) -> None:
    """Run until SIGTERM or SIGINT, then stop cleanly (the vector cache is saved on the way out)."""
    task = asyncio.create_task(encoder.run())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task
