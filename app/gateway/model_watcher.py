"""Watches the model directory and hot-swaps the serving recommender to each new version.

Loading (file I/O, tensor work) runs in a thread; the swap is one reference assignment on
the event loop, so a request sees either the old or the new version, never a mix.
"""
from __future__ import annotations

import asyncio
import logging

from app.gateway.serving import ServingModels
from app.gateway.tasks import cancel_and_wait
from app.metrics import Metrics
from app.settings import Settings
from models.checkpoint import latest_version, version_path
from models.rec.embedding_version import NAME, EmbeddingRecVersion

log = logging.getLogger(__name__)


class ModelWatcher:
    def __init__(self, settings: Settings, serving: ServingModels, metrics: Metrics) -> None:
        self.settings = settings
        self.serving = serving
        self.metrics = metrics
        self.loaded: int | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.check()  # serve the newest version from the first request on
        self._task = asyncio.create_task(self._run(), name="model-watcher")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.model_poll_s)
            try:
                await self.check()
            except Exception:  # noqa: BLE001 — a bad checkpoint must not stop serving the current one
                log.exception("could not load the newest model version; serving %s", self.serving.version)
                self.metrics.model_load_failures.inc()

    async def check(self) -> bool:
        """Load and install the newest version if it is not the one served; True if swapped."""
        newest = latest_version(self.settings.model_dir, NAME)
        if newest is None or newest == self.loaded:
            return False
        path = version_path(self.settings.model_dir, NAME, newest)
        model = await asyncio.to_thread(EmbeddingRecVersion.from_checkpoint, str(path))
        self.serving.install(model)
        self.loaded = newest
        self.metrics.model_swaps.inc()
        log.info("serving recommender %s (%d items)", model.version, len(model.item_ids))
        return True
