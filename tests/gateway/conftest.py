"""The real gateway app, with an in-memory sink in place of Kafka and a read model fed by hand,
and the helpers the gateway tests share (a shop's profiles, items and model versions)."""
from __future__ import annotations

import asyncio

import pytest

from app.gateway.app import init_app
from app.gateway.keys import METRICS, SERVING, SETTINGS, SINK
from app.gateway.model_updates import ModelUpdatesFollower
from app.gateway.read_model import ReadModel
from app.settings import Settings
from models.online.click_model import OnlineClickModel
from models.online.config import LearnerConfig
from models.online.rec_model import OnlineRecConfig, OnlineRecModel
from models.online.versions import OnlineLearner, Version
from tables import catalog, item_stats, user_profiles
from tables.wire.records import CatalogChange, UserEvent
from tables.wire.updates import encode_version


class MemorySink:
    def __init__(self) -> None:
        self.events: list[UserEvent] = []
        self.catalog: list[CatalogChange] = []
        self.campaigns: list = []  # models.ads.campaigns.Campaign
        self.commands: list[bytes] = []
        self.command_headers: list[list[tuple[str, bytes]]] = []
        self.dead_letters: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]] = []
        self.started = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.started = False

    async def send_events(self, events: list[UserEvent]) -> None:
        self.events.extend(events)

    async def send_catalog(self, changes: list[CatalogChange]) -> None:
        self.catalog.extend(changes)

    async def send_campaigns(self, campaigns: list) -> None:
        self.campaigns.extend(campaigns)

    async def send_model_command(self, command: bytes, headers: list[tuple[str, bytes]]) -> None:
        self.commands.append(command)
        self.command_headers.append(headers)

    async def send_dead_letter(self, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        self.dead_letters.append((key, value, headers))


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings().replace(max_event_bytes=1024, max_request_bytes=16 * 1024, max_batch_events=50,
                    state_dir=tmp_path, model_poll_s=0.05, search_dense=False)


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def read_model(settings) -> ReadModel:
    return ReadModel(settings)


@pytest.fixture
async def client(aiohttp_client, settings, sink, read_model):
    app = init_app(settings, sink=sink, read_model=read_model, follow_changelogs=False)
    return await aiohttp_client(app)


# ---- helpers shared by the gateway tests ----------------------------------------------

CATALOG = {
    "p1": ("3-seat fabric couch, grey", "furniture"),
    "p2": ("Cordless drill driver 18V with two batteries", "tools"),
    "p3": ("Stainless steel kitchen sink, double bowl", "kitchen"),
    "p4": ("LED ceiling light fixture, flush mount", "lighting"),
    "p5": ("Garden hose 50 ft, kink resistant", "garden"),
}


def profile(items, purchased=()):
    p = user_profiles.empty()
    for k, item in enumerate(items):
        etype = "purchase" if item in purchased else "view"
        p = user_profiles.apply_event(p, UserEvent(f"e{k}", "u", etype, 10.0 + k, item), 0, k, 50)
    return p


def put_item(read_model, item_id, title, **fields):
    read_model.apply(catalog.NAME, item_id, catalog.to_item(CatalogChange("upsert", item_id, 1.0, title=title, **fields)))


def put(read_model, item, title, category, ts=1.0):
    read_model.apply(catalog.NAME, item, catalog.to_item(CatalogChange("upsert", item, ts, title=title, category=category)))


def fill(read_model):
    # Three shoppers teach: a -> b (twice), a -> c, b -> d.
    for n, seq in enumerate([["a", "b", "d"], ["a", "b"], ["a", "c"]]):
        read_model.apply(user_profiles.NAME, f"s{n}", profile(seq))
    put_item(read_model, "b", "Cordless drill 18V", stock=0, price=99.0, category="tools")
    put_item(read_model, "c", "Hammer drill", stock=5, price=49.0, category="tools")
    put_item(read_model, "d", "Garden hose", stock=2, price=19.0, category="garden")
    for item, n in (("t1", 5), ("t2", 3)):
        s = item_stats.empty()
        for k in range(n):
            s = item_stats.apply_event(s, "purchase", 10.0, 0, k, 86400.0, 3600.0)
        read_model.apply(item_stats.NAME, item, s)


def shopper(read_model, user="u", items=("a",)):
    p = user_profiles.empty()
    for k, item in enumerate(items):
        p = user_profiles.apply_event(p, UserEvent(f"e{k}", user, "view", 10.0 + k, item), 0, k, 50)
    read_model.apply(user_profiles.NAME, user, p)


async def until(condition, seconds=10.0):
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    assert condition()


async def search(client, query, **params):
    r = await client.get("/v1/search", params={"q": query, **params})
    assert r.status == 200
    body = await r.json()
    return [i["item_id"] for i in body["items"]], body["model_version"]


def follower_of(app) -> ModelUpdatesFollower:
    return ModelUpdatesFollower(app[SETTINGS], app[SERVING], app[METRICS], app[SINK])


async def publish(follower: ModelUpdatesFollower, version: Version, kind: str = "version") -> bool:
    """Hand the follower a version as the learner signs it."""
    return await follower.receive(*encode_version(version, follower.key, kind))


def versions(n: int) -> list[Version]:
    """n published versions; after version v, the item that most often follows `a` is x{v}."""
    learner = OnlineLearner(OnlineRecModel(OnlineRecConfig(dim=8, num_shards=1, capacity=1000, negatives=8)),
                            OnlineClickModel(), LearnerConfig(min_samples=1, guard_ratio=0.01))
    out = []
    for v in range(1, n + 1):
        learner.step([(["a"], f"x{v}")] * (40 * v))
        decision = learner.propose(float(v))
        assert decision.action == "promote", decision.reason
        out.append(decision.version)
    return out
