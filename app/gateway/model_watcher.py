"""Watches the model directory and hot-swaps a served model to each new version.

One watcher per model name: the recommender (`ServingModels.install`) and the search model
(`DenseSearch.install`). Loading (file I/O, tensor work) runs in a thread; the swap is one
reference assignment on the event loop, so a request sees either the old or the new
version, never a mix.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.gateway.dense_search import SearchModel, DenseSearch
from app.gateway.gc_freeze import freeze_long_lived
from app.gateway.serving import ServingModels
from app.gateway.tasks import cancel_and_wait
from app.metrics import Metrics
from app.search_model import MODEL_NAME as SEARCH_NAME
from app.settings import Settings
from models.checkpoint import latest_version, version_path
from models.rec.embedding_version import NAME as REC_NAME, EmbeddingRecVersion
from models.rec.neural_version import NAME as NEURAL_NAME, NeuralRecVersion

log = logging.getLogger(__name__)


class ModelWatcher:
    """Polls `<model_dir>/<name>`; `load(path)` runs in a thread, `install(model)` on the loop."""

    def __init__(self, settings: Settings, metrics: Metrics, name: str,
                 load: Callable[[Path], Any], install: Callable[[Any], None]) -> None:
        self.settings = settings
        self.metrics = metrics
        self.name = name
        self.load = load
        self.install = install
        self.loaded: int | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.check()  # serve the newest version from the first request on
        self._task = asyncio.create_task(self._run(), name=f"model-watcher-{self.name}")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.gateway.model_poll_s)
            try:
                await self.check()
            except Exception:  # a bad checkpoint must not stop serving the current one
                log.exception("could not load the newest %s version; serving v%s", self.name, self.loaded)
                self.metrics.model_load_failures.inc()

    async def check(self) -> bool:
        """Load and install the newest version if it is not the one served; True if swapped."""
        newest = latest_version(self.settings.runtime.model_dir, self.name)
        if newest is None or newest == self.loaded:
            return False
        model = await asyncio.to_thread(self.load, version_path(self.settings.runtime.model_dir, self.name, newest))
        self.install(model)
        freeze_long_lived(f"{self.name} v{newest:04d} installed")
        self.loaded = newest
        self.metrics.model_swaps.inc()
        log.info("serving %s v%04d", self.name, newest)
        return True


def recommender_watcher(settings: Settings, serving: ServingModels, metrics: Metrics) -> ModelWatcher:
    return ModelWatcher(settings, metrics, REC_NAME,
                        lambda path: EmbeddingRecVersion.from_checkpoint(str(path)), serving.install)


def neural_watcher(settings: Settings, serving: ServingModels, metrics: Metrics) -> ModelWatcher:
    return ModelWatcher(settings, metrics, NEURAL_NAME, NeuralRecVersion.from_checkpoint, serving.install_neural)


def search_watcher(settings: Settings, dense: DenseSearch, metrics: Metrics) -> ModelWatcher:
    # Adapter and ranker only: the item tower is frozen, so the catalog's vectors stay valid.
    return ModelWatcher(settings, metrics, SEARCH_NAME, lambda path: SearchModel.load(settings, path), dense.install)
