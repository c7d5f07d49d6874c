"""The poisoned stream on real Kafka: a bot floods the samples topic, the guard promotes what
the live model learned from it (on the flood the live model looks better), the version then
serves real traffic worse than the last good one, and the learner rolls it back by itself;
the gateway, following the model-updates topic, serves the good version's ranking again.

The learner service runs in the test (no worker) so that versions are proposed exactly
between the phases; sample records are shaped as the user-events agent writes them."""
from __future__ import annotations

import asyncio
import time

import orjson
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from app.gateway.app import init_app
from app.kafka_io import make_producer, model_update_records
from app.learner import LearnerService
from app.metrics import Metrics
from tables.wire.updates import VERSION_KINDS, read_version, signing_key, valid_records
from models.online.versions import Version
from tests.unit.online_streams import chain_stream, rewired_targets


class SampleFeed:
    """Writes next-item samples with increasing source positions, as the agent would."""

    def __init__(self, settings) -> None:
        self.settings = settings
        self.offset = 0

    async def send(self, samples: list[tuple[list[str], str]]) -> None:
        producer = make_producer(self.settings)
        await producer.start()
        try:
            for history, target in samples:
                record = {"kind": "next", "user": f"u{self.offset}", "history": history, "target": target,
                          "ts": time.time(), "src": [0, self.offset]}
                self.offset += 1
                await producer.send(self.settings.topics.samples, orjson.dumps(record), key=b"u")
            await producer.flush()
        finally:
            await producer.stop()


async def consume(service: LearnerService, feed: SampleFeed, samples: list[tuple[list[str], str]]) -> None:
    """Send `samples` and tick the service until it has learned all of them."""
    await feed.send(samples)
    deadline = time.monotonic() + 60
    while service.dedupe.offset.get("0", -1) < feed.offset - 1:
        assert time.monotonic() < deadline, "the learner did not consume the samples"
        await service.tick()
        await asyncio.sleep(0.05)


async def learn(service: LearnerService, feed: SampleFeed, samples: list[tuple[list[str], str]]) -> str:
    """Send `samples`, let the service learn all of them, then propose; the decision's action."""
    await consume(service, feed, samples)
    before = decisions(service.metrics)
    await service.propose()
    after = decisions(service.metrics)
    return next((name for name, n in after.items() if n > before.get(name, 0)), "wait")


def decisions(metrics: Metrics) -> dict[str, float]:
    return {s.labels["decision"]: s.value
            for family in text_string_to_metric_families(generate_latest(metrics.registry).decode())
            for s in family.samples if s.name == "streamrank_model_decisions_total"}


async def published_versions(settings) -> list[Version]:
    records = valid_records(await model_update_records(settings), signing_key(settings))
    return [read_version(r) for r in records if r.kind in VERSION_KINDS]


async def test_a_served_version_that_degrades_is_rolled_back_and_the_gateway_follows(
        stack_settings, aiohttp_client):
    settings = stack_settings.replace(version_interval_s=3600, checkpoint_interval_s=3600, guard_min_samples=150,
                       guard_ratio=0.9, admin_token="t0ken", search_dense=False,
                       # Every sample judged: the windows are sized in samples fed below.
                       learner_validation_share=1.0)
    service = LearnerService(settings, Metrics())
    await service.start()
    feed = SampleFeed(settings)
    client = await aiohttp_client(init_app(settings))
    auth = {"Authorization": "Bearer t0ken"}

    async def served(version: int, item: str) -> list[str]:
        deadline = time.monotonic() + 30
        while (await (await client.get("/v1/admin/model", headers=auth)).json())["serving_version"] != version:
            assert time.monotonic() < deadline, f"the gateway never served version {version}"
            await asyncio.sleep(0.2)
        body = await (await client.get(f"/v1/items/{item}/similar?k=3")).json()
        assert body["model_version"] == f"online-v{version}"
        return [i["item_id"] for i in body["items"]]

    try:
        assert await learn(service, feed, chain_stream(60, seed=1)) == "promote"
        assert await learn(service, feed, chain_stream(60, seed=2)) == "promote"  # 1 passed probation
        good = await served(2, "x3")
        assert good[0] == "y3"  # real users go x3 -> y3
        # The flood: the guard judges it on the flood itself, where the live model fits it best.
        assert await learn(service, feed, rewired_targets(chain_stream(1000, seed=3))) == "promote"
        poisoned = await served(3, "x3")
        assert poisoned[0] != "y3"
        # Real traffic again: version 3 serves it worse than version 2 did, so back to 2.
        assert await learn(service, feed, chain_stream(100, seed=4)) == "rollback"
        assert await served(4, "x3") == good
        last = (await published_versions(settings))[-1]
        assert last.full and last.number == 4 and last.metrics["rollback_to"] == 2
        assert last.metrics["rolled_back"] == 3 and "NDCG@10" in last.metrics["reason"]
        assert decisions(service.metrics).get("rollback") == 1
        # the rollback is checkpointed: a restarted learner goes on from version 2's state
        assert service.checkpointed == 4
    finally:
        await service.stop()
