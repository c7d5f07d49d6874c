"""The item encoder on the real broker: it encodes a small catalog once and publishes the
vectors; a fresh gateway loads them from the topic and serves dense search without encoding
any item; a restarted encoder encodes only what changed."""
from __future__ import annotations

import asyncio
import time

import orjson
from aiohttp.test_utils import TestClient, TestServer

from app.gateway.app import init_app
from app.gateway.keys import DENSE
from app.item_encoder import ItemEncoder
from app.kafka_io import make_consumer, make_producer
from tables.wire.records import CatalogChange
from tables.wire.names import changelog_topic
from models.encoder import TextEncoder
from models.item_vectors import decode_vector
from tables import catalog
from tests.gateway.conftest import MemorySink
from tests.gateway.conftest import CATALOG


async def wait_for(predicate, timeout_s=120.0, task: asyncio.Task | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        if task is not None and task.done():
            task.result()  # raises what stopped the encoder
            raise AssertionError("the encoder stopped")
        await asyncio.sleep(0.05)


async def put_catalog(settings, changes: list[CatalogChange]) -> None:
    """As the worker's catalog table writes its changelog: JSON key, JSON value."""
    producer = make_producer(settings)
    await producer.start()
    try:
        for change in changes:
            await producer.send_and_wait(changelog_topic(settings, catalog.NAME), orjson.dumps(catalog.to_item(change)),
                                         key=orjson.dumps(change.item_id))
    finally:
        await producer.stop()


async def topic_records(settings) -> list[tuple[str, bytes | None]]:
    consumer = make_consumer(settings, settings.topics.item_vectors, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        out: list[tuple[str, bytes | None]] = []
        while batches := await consumer.getmany(timeout_ms=2000):
            out += [(r.key.decode(), r.value) for records in batches.values() for r in records]
        return out
    finally:
        await consumer.stop()


class Counting:
    """The item tower, counting the texts it encodes."""

    def __init__(self, tower: TextEncoder) -> None:
        self.tower, self.texts = tower, []

    def __call__(self, texts):
        self.texts += list(texts)
        return self.tower.encode(texts)


async def start_encoder(settings, encode: Counting, model_key: str) -> tuple[ItemEncoder, asyncio.Task]:
    encoder = ItemEncoder(settings, encode, model_key)
    return encoder, asyncio.create_task(encoder.run())


async def stop(task: asyncio.Task) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def products() -> list[CatalogChange]:
    return [CatalogChange("upsert", item, 1.0, title=title, category=category) for item, (title, category) in CATALOG.items()]


def test_vectors_are_encoded_once_and_a_fresh_gateway_serves_dense_search_from_the_topic(stack_settings):
    settings = stack_settings.replace(search_dense=True, model_poll_s=3600.0)

    async def run() -> None:
        tower = TextEncoder(max_length=settings.encoder.max_length).for_serving()
        await put_catalog(settings, [*products(), CatalogChange("upsert", "p6", 1.0, title="leather sofa")])
        encode = Counting(tower)
        encoder, task = await start_encoder(settings, encode, tower.model_key)
        try:
            await wait_for(lambda: encoder.sent == 6, task=task)
            await put_catalog(settings, [CatalogChange("delete", "p6", 2.0)])
            await wait_for(lambda: encoder.sent == 7, task=task)  # the tombstone
        finally:
            await stop(task)
        assert len(encode.texts) == 6
        records = await topic_records(settings)
        assert sorted(k for k, v in records if v is not None) == ["p1", "p2", "p3", "p4", "p5", "p6"]
        assert [k for k, v in records if v is None] == ["p6"]
        assert all(decode_vector(v).vector.shape == (384,) for _, v in records if v is not None)

        client = TestClient(TestServer(init_app(settings, sink=MemorySink(), watch_models=False)))
        await client.start_server()
        try:
            dense = client.app[DENSE]
            await wait_for(lambda: len(dense.index) == 5 and len(dense.texts) == 5)
            assert dense._catalog_encoder is None  # the gateway encoded no item: it has no item tower
            body = await (await client.get("/v1/search", params={"q": "sofa", "k": "3"})).json()
            assert body["items"][0]["item_id"] == "p1" and body["model_version"] == "bm25+minilm-l6-pretrained"
            ready = await (await client.get("/readyz")).json()
            assert ready["search"] == {"items": 5, "with_vectors": 5, "ready": True,
                                       "model_version": "bm25+minilm-l6-pretrained"}

            # A restarted encoder reads what is published and encodes only the renamed item.
            await put_catalog(settings, [CatalogChange("upsert", "p2", 3.0, title="Hammer drill 20V", category="tools")])
            again = Counting(tower)
            encoder, task = await start_encoder(settings, again, tower.model_key)
            try:
                await wait_for(lambda: encoder.sent == 1, task=task)
                await wait_for(lambda: encoder.follower is not None and encoder.follower.caught_up.is_set()
                               and not encoder.pending)
            finally:
                await stop(task)
            assert again.texts == ["Hammer drill 20V tools"]
            await wait_for(lambda: dense.texts.get("p2") == "Hammer drill 20V tools" and "p2" in dense.index.slot)
        finally:
            await client.close()

    asyncio.run(run())
