"""New model versions are picked up from the model directory and swapped in under load,
without a failed request and without a request ranking with a mix of two versions."""
import asyncio
import random

import torch

from app.gateway.keys import SERVING, WATCHER
from models.rec.embedding_version import EmbeddingRecVersion
from tables import user_profiles
from tests.gateway.conftest import profile, until

ITEMS = ["a", "x", "y"]


def version_favouring(target: str) -> EmbeddingRecVersion:
    """Item vectors where `target` is the nearest neighbour of item a."""
    vecs = {"a": [1.0, 0.0], "x": [0.0, 1.0], "y": [0.0, -1.0]}
    vecs[target] = [0.9, 0.1]
    return EmbeddingRecVersion.build("tmp", ITEMS, torch.tensor([vecs[i] for i in ITEMS]))


async def test_watcher_installs_each_new_version(client, settings):
    serving = client.app[SERVING]
    assert serving.embedding is None
    version_favouring("x").save(settings.runtime.model_dir, {"note": "first"})
    assert await client.app[WATCHER].check()
    assert serving.embedding.version == "rec-embeddings-v1"
    assert not await client.app[WATCHER].check()  # nothing newer
    version_favouring("y").save(settings.runtime.model_dir, {"note": "second"})
    await until(lambda: serving.embedding.version == "rec-embeddings-v2")  # the watcher polls every 0.05 s here


async def test_swaps_under_concurrent_requests_fail_nothing_and_never_mix_versions(client, read_model, settings):
    read_model.apply(user_profiles.NAME, "me", profile(["a"]))
    serving = client.app[SERVING]
    serving.embedding_blend = 1.0  # rank by the embedding alone: each version has one right answer
    models = {"x": version_favouring("x"), "y": version_favouring("y")}
    expected = {}
    for target, model in models.items():
        object.__setattr__(model, "version", f"v-{target}")
        expected[model.version] = target
    serving.install(models["x"])
    stop = asyncio.Event()
    results = []

    async def swapper():
        for n in range(60):
            serving.install(models["y" if n % 2 else "x"])
            await asyncio.sleep(random.random() * 0.004)
        stop.set()

    async def one_request():
        r = await client.get("/v1/recommend?user_id=me&k=1")
        return r.status, await r.json()

    async def load():
        while not stop.is_set():
            results.extend(await asyncio.gather(*(one_request() for _ in range(20))))

    await asyncio.gather(swapper(), load())
    assert len(results) >= 20
    assert all(status == 200 for status, _ in results)
    seen_versions = set()
    for _, body in results:
        version = body["model_version"].split("+")[0]
        seen_versions.add(version)
        assert body["items"][0]["item_id"] == expected[version], body
    assert seen_versions == {"v-x", "v-y"}
