"""The pages in headless Chromium, against the real gateway served on a real port.

What would run beside the gateway is played in-process, so no Kafka is needed: a sink that
applies events to the gateway's tables as the worker's changelogs would (and counts them in
a worker registry), and a learner that answers an admin rollback by publishing the version,
signed, to the gateway's model-updates follower. The worker's and learner's registries are
served on /metrics ports of their own, as the real processes serve theirs.
"""
from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.gateway.app import init_app
from app.gateway.keys import METRICS, MODEL_UPDATES, SERVING
from app.gateway.model_updates import ModelUpdatesFollower
from app.gateway.read_model import ReadModel
from app.metrics import Metrics
from app.processes import free_port
from app.settings import Settings
from models.online.click_model import OnlineClickModel
from models.online.rec_model import OnlineRecConfig, OnlineRecModel
from models.online.versions import LearnerConfig, OnlineLearner
from tables import catalog, item_stats, user_profiles
from tables.wire.records import CatalogChange, UserEvent
from tables.wire.updates import decode, encode_version, read_command
from tests.browser.webdriver import Driver, find_browser
from tests.gateway.conftest import MemorySink

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "screenshots"
ADMIN_TOKEN = "browser-test-admin-token"
API_KEY = "browser-test-api-key"
T = TypeVar("T")

# A small hardware store: (id, title, category, price, stock).
PRODUCTS = [
    ("drill", "Cordless drill 20V", "tools", 129.0, 8), ("bits", "Drill bit set, 30 pieces", "tools", 24.5, 40),
    ("hammer", "Claw hammer 16 oz", "tools", 18.0, 25), ("gloves", "Leather work gloves", "safety", 12.0, 60),
    ("hose", "Garden hose 50 ft", "garden", 39.0, 12), ("nozzle", "Hose spray nozzle", "garden", 9.5, 30),
    ("sprinkler", "Oscillating lawn sprinkler", "garden", 21.0, 9), ("paint", "Interior paint, white, 1 gal", "paint", 34.0, 20),
    ("roller", "Paint roller kit", "paint", 15.0, 18), ("ladder", "Step ladder 6 ft", "tools", 89.0, 4),
]
# Shoppers who taught the gateway what people take next (and made items popular).
SESSIONS = [["drill", "bits", "gloves"], ["drill", "bits"], ["hose", "nozzle", "sprinkler"], ["hose", "nozzle"],
            ["paint", "roller"], ["hammer", "gloves"]]
SHOPPERS = {"pat": ["paint"]}  # the tests' shopper, with one item seen


class FakeWorker:
    """The worker's tables, in-process: each event updates its profile and item stats, and
    the new records go to the gateway's read model as the changelogs would carry them."""

    def __init__(self, settings: Settings, read_model: ReadModel, metrics: Metrics) -> None:
        self.settings, self.read_model, self.metrics = settings, read_model, metrics
        self.profiles: dict[str, Any] = {}  # the worker's full records (the gateway keeps fewer fields)
        self.stats: dict[str, Any] = {}
        self.offset = 0

    def apply(self, event: UserEvent) -> None:
        s, offset = self.settings, self.offset
        self.offset += 1
        profile = self.profiles.get(event.user_id) or user_profiles.empty()
        profile = self.profiles[event.user_id] = user_profiles.apply_event(profile, event, 0, offset, s.features.recent_items)
        self.read_model.apply(user_profiles.NAME, event.user_id, profile)
        if event.item_id is not None:
            stats = item_stats.apply_event(self.stats.get(event.item_id) or item_stats.empty(), event.type,
                                           event.ts, 0, offset, s.features.popularity_half_life_s, s.features.trending_half_life_s)
            self.stats[event.item_id] = stats
            self.read_model.apply(item_stats.NAME, event.item_id, stats)
        self.metrics.events_processed.labels(type=event.type).inc()
        self.metrics.event_lag.observe(0.02)


class LoopbackSink(MemorySink):
    """Accepted events reach the fake worker at once; a model command reaches the fake learner."""

    def __init__(self, worker: FakeWorker) -> None:
        super().__init__()
        self.worker = worker
        self.learner: FakeLearner | None = None

    async def send_events(self, events: list[UserEvent]) -> None:
        await super().send_events(events)
        for event in events:
            self.worker.apply(event)

    async def send_model_command(self, command: bytes, headers: list[tuple[str, bytes]]) -> None:
        await super().send_model_command(command, headers)
        if self.learner is not None:
            await self.learner.carry_out(command, headers)


class FakeLearner:
    """A real OnlineLearner with a few promoted versions; carries out signed admin commands."""

    def __init__(self, follower: ModelUpdatesFollower, metrics: Metrics) -> None:
        self.follower, self.metrics = follower, metrics
        self.learner = OnlineLearner(OnlineRecModel(OnlineRecConfig(dim=8, num_shards=1, capacity=1000, negatives=8)),
                                     OnlineClickModel(), LearnerConfig(min_samples=1, guard_ratio=0.01))

    async def promote(self, n: int) -> None:
        for v in range(1, n + 1):
            self.learner.step([(["drill"], "bits")] * (20 * v))
            decision = self.learner.propose(float(v))
            assert decision.action == "promote", decision.reason
            self.metrics.model_decisions.labels(decision="promote").inc()
            self.metrics.learner_version.set(decision.version.number)
            for model, value in (("live", 0.30 + 0.01 * v), ("serving", 0.28 + 0.01 * v)):
                self.metrics.online_metric.labels(model=model, metric="ndcg@10").set(value)
            assert await self.follower.receive(*encode_version(decision.version, self.follower.key))

    async def carry_out(self, command: bytes, headers: list[tuple[str, bytes]]) -> None:
        order = read_command(decode(command, headers, self.follower.key))
        version = self.learner.rollback(order.version, time.time())
        self.metrics.model_decisions.labels(decision=f"manual_{order.action}").inc()
        self.metrics.learner_version.set(version.number)
        assert await self.follower.receive(*encode_version(version, self.follower.key, "rollback"))


def stock_shop(read_model: ReadModel, worker: FakeWorker) -> None:
    now = time.time()
    for item_id, title, category, price, stock in PRODUCTS:
        change = CatalogChange("upsert", item_id, now - 60, title, category, price, stock)
        read_model.apply(catalog.NAME, item_id, catalog.to_item(change))
    seen = [*((f"s{n}", items) for n, items in enumerate(SESSIONS)), *SHOPPERS.items()]
    for user, items in seen:
        for k, item in enumerate(items):
            worker.apply(UserEvent(f"seed-{user}-{k}", user, "view", now - 50 + k, item))


class LiveShop:
    """The gateway (and the fake worker's and learner's /metrics) on a loop in a thread:
    chromedriver's calls block, so the server cannot share the test's loop."""

    def __init__(self, state_dir: Path, versions: int = 0, api_keys: str = "") -> None:
        self.worker_metrics, self.learner_metrics = Metrics(), Metrics()
        worker_port, learner_port = free_port(), free_port()
        self.settings = Settings().replace(state_dir=state_dir, search_dense=False, model_poll_s=0.05, admin_token=ADMIN_TOKEN,
                                 api_keys=api_keys, worker_metrics_port=worker_port, learner_metrics_port=learner_port)
        self.read_model = ReadModel(self.settings)
        worker = FakeWorker(self.settings, self.read_model, self.worker_metrics)
        stock_shop(self.read_model, worker)
        self.sink = LoopbackSink(worker)
        self.app = init_app(self.settings, sink=self.sink, read_model=self.read_model, follow_changelogs=False)
        # The learner's versions come over Kafka in production; here the fake learner hands them over.
        self.follower = ModelUpdatesFollower(self.settings, self.app[SERVING], self.app[METRICS], self.sink)
        self.app[MODEL_UPDATES] = self.follower
        self.learner = self.sink.learner = FakeLearner(self.follower, self.learner_metrics)
        self.loop = asyncio.new_event_loop()
        self.runners: list[web.AppRunner] = []
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.run(self._serve(self.app, self.port))
        self.run(self._serve(_metrics_app(self.worker_metrics), worker_port))
        self.run(self._serve(_metrics_app(self.learner_metrics), learner_port))
        if versions:
            self.run(self.learner.promote(versions))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def _serve(self, app: web.Application, port: int) -> None:
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        self.runners.append(runner)

    async def stop_gateway(self) -> None:
        """The API going down under an open page."""
        await self.runners.pop(0).cleanup()

    def close(self) -> None:
        for runner in reversed(self.runners):
            self.run(runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def _metrics_app(metrics: Metrics) -> web.Application:
    async def scrape(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    return app


# ---- fixtures ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def browser() -> Iterator[Driver]:
    found = find_browser()
    if found is None:
        why = "headless Chromium is not installed (apt-get install -y chromium chromium-driver; make test does it)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    driver = Driver(*found)
    yield driver
    driver.quit()


@pytest.fixture
def page(browser: Driver) -> Iterator[Driver]:
    """The browser, its console read empty at the start of a test, and a desktop-sized window."""
    browser.resize(1200, 900)
    browser.get("about:blank")
    browser.logs()
    yield browser


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[LiveShop]:
    live = LiveShop(tmp_path)
    yield live
    live.close()


@pytest.fixture
def shop_with_versions(tmp_path: Path) -> Iterator[LiveShop]:
    live = LiveShop(tmp_path, versions=3)
    yield live
    live.close()


@pytest.fixture
def keyed_shop(tmp_path: Path) -> Iterator[LiveShop]:
    live = LiveShop(tmp_path, api_keys=API_KEY)
    yield live
    live.close()


def screenshot(driver: Driver, name: str) -> Path:
    return driver.screenshot(SCREENSHOTS / f"{name}.png")


def console_errors(driver: Driver, *, allow_http_errors: bool = False) -> list[dict[str, Any]]:
    """SEVERE console entries. Chromium logs every 4xx/5xx answer and refused connection as
    a network error: expected where a test sends bad input on purpose, never a script error."""
    return [e for e in driver.logs() if e.get("level") == "SEVERE"
            and not (allow_http_errors and e.get("source") == "network")]
