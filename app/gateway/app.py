"""`init_app(settings)`: the aiohttp application, with its resources opened in cleanup_ctx."""
from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

from aiohttp import web

from app.gateway.ads import SponsoredSlots
from app.gateway.changelog import ChangelogFollower
from app.gateway.errors import errors_and_metrics
from app.gateway.gc_freeze import freeze_long_lived
from app.gateway.guards import guards
from app.gateway.dense_search import DenseSearch
from app.gateway.loop_stalls import watch_loop_lag
from app.gateway.keys import (ADS, DENSE, FOLLOWER, METRICS, MODEL_UPDATES, NEURAL_WATCHER, READ_MODEL, SEARCH_WATCHER,
                              SERVING, SETTINGS, SINK, WATCHER)
from app.gateway.model_updates import ModelUpdatesFollower
from app.gateway.model_watcher import neural_watcher, recommender_watcher, search_watcher
from app.gateway.read_model import ReadModel
from app.gateway.routes import setup_routes
from app.gateway.serving import ServingModels
from app.gateway.tasks import cancel_and_wait
from app.gateway.vector_follower import VectorFollower
from app.gateway.sink import EventSink, KafkaSink
from app.metrics import Metrics
from app.settings import Settings

log = logging.getLogger(__name__)
FREEZE_AFTER_QUIET_S = 10.0


def init_app(
    settings: Settings,
    *,
    sink: EventSink | None = None,
    read_model: ReadModel | None = None,
    follow_changelogs: bool = True,
    watch_models: bool = True,
) -> web.Application:
    """Tests pass their own sink and read model and turn the changelog follower off."""
    app = web.Application(client_max_size=settings.limits.request_bytes, middlewares=[errors_and_metrics, guards])
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[READ_MODEL] = read_model or ReadModel(settings)
    app[SERVING] = ServingModels(app[READ_MODEL], embedding_blend=settings.recommend.embedding_blend,
                                 search_dense_weight=settings.search.dense_weight,
                                 click_weight=settings.search.click_weight,
                                 cache_size=settings.recommend.cache_size,
                                 cache_bytes=settings.recommend.cache_bytes,
                                 online_staleness_s=settings.recommend.online_staleness_s)
    serving = app[SERVING]
    ads = app[ADS] = SponsoredSlots(settings, app[READ_MODEL], lambda: serving.online_click)
    app[METRICS].ads_seconds.labels().set_function(lambda: ads.seconds)
    app[METRICS].ad_impressions.count_by(lambda: ads.impressions)
    app[SINK] = sink or KafkaSink(settings)
    _serving_gauges(app[METRICS], app[SERVING])
    setup_routes(app)
    app.cleanup_ctx.append(_gc_ctx)
    app.cleanup_ctx.append(_sink_ctx)
    if follow_changelogs:
        app.cleanup_ctx.append(_follower_ctx)
    if watch_models:
        app.cleanup_ctx.append(_watcher_ctx)
    if follow_changelogs:  # the learner's versions come over Kafka, like the changelogs
        app.cleanup_ctx.append(_model_updates_ctx)
    if settings.search.dense:
        app.cleanup_ctx.append(_dense_ctx)
        if follow_changelogs:  # item vectors come over Kafka, from `streamrank encoder`
            app.cleanup_ctx.append(_vectors_ctx)
        if watch_models:  # the search model needs the dense searcher's item vectors
            app.cleanup_ctx.append(_search_watcher_ctx)
    return app


async def _gc_ctx(app: web.Application) -> AsyncIterator[None]:
    stop = app[METRICS].track_gc_pauses()
    lag = asyncio.create_task(watch_loop_lag(app[METRICS].loop_lag.observe), name="loop-lag")
    yield
    await cancel_and_wait(lag)
    stop()


async def _sink_ctx(app: web.Application) -> AsyncIterator[None]:
    await app[SINK].start()
    yield
    await app[SINK].stop()


async def _follower_ctx(app: web.Application) -> AsyncIterator[None]:
    follower = ChangelogFollower(app[SETTINGS], app[READ_MODEL], app[METRICS], app[SINK])
    app[FOLLOWER] = follower
    await follower.start()
    freeze = asyncio.create_task(_freeze_when_caught_up(app, follower), name="gc-freeze")
    yield
    await cancel_and_wait(freeze)
    await follower.stop()


async def _freeze_when_caught_up(app: web.Application, follower: ChangelogFollower) -> None:
    """Move the state loaded at start out of the cyclic collector's sight: once the
    changelogs are caught up, and again once the catalog is loaded with its search vectors
    (no text change for FREEZE_AFTER_QUIET_S, every item encoded).

    Without it, a full collection walks every long-lived dict and list of the tables and
    indexes: a pause of the whole gateway (0.14–0.26 s each in the serve bench). Frozen
    objects are still freed by reference counting when the state drops them; later state is
    collected as usual, and `streamrank_gc_pause_seconds` shows what the pauses cost.
    """
    await follower.caught_up.wait()
    _freeze("changelogs caught up")
    if not app[SETTINGS].search.dense:
        return
    while (dense := app.get(DENSE)) is None:  # started after this follower
        await asyncio.sleep(1.0)
    while not dense.settled(quiet_s=FREEZE_AFTER_QUIET_S):
        await asyncio.sleep(1.0)
    _freeze("catalog loaded with its vectors")


def _freeze(why: str) -> None:
    freeze_long_lived(why, full=True)  # what is garbage now must not be frozen


async def _watcher_ctx(app: web.Application) -> AsyncIterator[None]:
    watcher = recommender_watcher(app[SETTINGS], app[SERVING], app[METRICS])
    neural = neural_watcher(app[SETTINGS], app[SERVING], app[METRICS])
    app[WATCHER], app[NEURAL_WATCHER] = watcher, neural
    await watcher.start()
    await neural.start()
    yield
    await neural.stop()
    await watcher.stop()


async def _model_updates_ctx(app: web.Application) -> AsyncIterator[None]:
    follower = ModelUpdatesFollower(app[SETTINGS], app[SERVING], app[METRICS], app[SINK])
    app[MODEL_UPDATES] = follower
    await follower.start()
    yield
    await follower.stop()


async def _dense_ctx(app: web.Application) -> AsyncIterator[None]:
    dense = DenseSearch(app[SETTINGS], app[METRICS])
    await dense.start()
    app[DENSE] = dense
    app[READ_MODEL].subscribe(dense.on_change)
    yield
    await dense.stop()


async def _vectors_ctx(app: web.Application) -> AsyncIterator[None]:
    follower = VectorFollower(app[SETTINGS], app[DENSE], app[METRICS], app[SINK], app[READ_MODEL])
    await follower.start()
    yield
    await follower.stop()


async def _search_watcher_ctx(app: web.Application) -> AsyncIterator[None]:
    watcher = search_watcher(app[SETTINGS], app[DENSE], app[METRICS])
    app[SEARCH_WATCHER] = watcher
    await watcher.start()
    yield
    await watcher.stop()


def _serving_gauges(metrics: Metrics, serving: ServingModels) -> None:
    cache, batcher = serving.cache, serving.batcher
    metrics.rec_cache_lookups.labels(result="hit").set_function(lambda: cache.hits)
    metrics.rec_cache_lookups.labels(result="miss").set_function(lambda: cache.misses)
    metrics.rec_cache_entries.set_function(lambda: len(cache))
    metrics.rec_cache_bytes.set_function(lambda: cache.bytes)
    metrics.rank_passes.labels().set_function(lambda: batcher.batches)
    metrics.rank_requests.labels().set_function(lambda: batcher.requests)
