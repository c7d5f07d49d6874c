"""Typed keys for what the gateway's handlers share."""
from __future__ import annotations

from aiohttp import web

from app.gateway.ads import SponsoredSlots
from app.gateway.changelog import ChangelogFollower
from app.gateway.dense_search import DenseSearch
from app.gateway.model_updates import ModelUpdatesFollower
from app.gateway.model_watcher import ModelWatcher
from app.gateway.read_model import ReadModel
from app.gateway.serving import ServingModels
from app.gateway.sink import EventSink
from app.metrics import Metrics
from app.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
READ_MODEL = web.AppKey("read_model", ReadModel)
SINK = web.AppKey("sink", EventSink)
FOLLOWER = web.AppKey("follower", ChangelogFollower)
SERVING = web.AppKey("serving", ServingModels)
WATCHER = web.AppKey("watcher", ModelWatcher)  # the recommender's
SEARCH_WATCHER = web.AppKey("search_watcher", ModelWatcher)
NEURAL_WATCHER = web.AppKey("neural_watcher", ModelWatcher)  # the learner's online SASRec
DENSE = web.AppKey("dense", DenseSearch)
MODEL_UPDATES = web.AppKey("model_updates", ModelUpdatesFollower)
ADS = web.AppKey("ads", SponsoredSlots)
