"""/v1/search serves the newest search checkpoint of the model dir, swaps versions live, and
keeps the catalog's vectors across a restart. Real MiniLM, tiny catalog."""
import asyncio
import random
import uuid

import torch

from app.gateway.app import init_app
from app.gateway.dense_search import SearchModel, vector_cache_path
from app.gateway.keys import DENSE, SEARCH_WATCHER
from app.gateway.read_model import ReadModel
from tables.wire.records import CatalogChange
from app.search_model import MODEL_NAME, QueryTower
from models.checkpoint import save_checkpoint
from models.encoder import BASE_MODEL
from models.query_adapter import QueryAdapter
from models.search_ranker import FEATURES, SearchRanker
from tables import catalog, user_profiles
from tests.gateway.conftest import profile
from tests.gateway.conftest import CATALOG, put, search, until


def save_search_version(model_dir, dense_weight: float = 1.0):
    """A checkpoint as `streamrank finetune` writes it: identity adapter, ranker by +-dense cosine."""
    ranker = SearchRanker()
    with torch.no_grad():
        ranker.linear.weight[0, FEATURES.index("dense")] = dense_weight
    tensors = {**QueryTower(None, QueryAdapter()).tensors(), **ranker.state_tensors()}
    card = {"kind": "search", "model_id": uuid.uuid4().hex, "base_model": BASE_MODEL, "features": list(FEATURES),
            "query_encoder": "pretrained", "settings": {"encoder_max_length": 32}}
    return save_checkpoint(model_dir, MODEL_NAME, tensors, card)


async def start(aiohttp_client, settings, sink, read_model):
    app = init_app(settings.replace(search_dense=True, search_encode_catalog=True), sink=sink, read_model=read_model, follow_changelogs=False)
    client = await aiohttp_client(app)
    for item, (title, category) in CATALOG.items():
        put(read_model, item, title, category)
    dense = client.app[DENSE]
    await until(lambda: len(dense.searcher.dense) == len(dense.texts) == len(CATALOG))
    return client, dense


async def test_serves_the_fine_tuned_version_with_filters_and_live_catalog_changes(aiohttp_client, settings, sink, read_model):
    save_search_version(settings.runtime.model_dir)
    client, dense = await start(aiohttp_client, settings, sink, read_model)
    items, version = await search(client, "sofa", k="3")  # no title says "sofa"
    assert version == "search-v1" and items[0] == "p1"
    assert (await search(client, "sofa", k="5", category="tools"))[0] == ["p2"]

    put(read_model, "p6", "leather sofa with chaise", "furniture", ts=2.0)
    assert "p6" in (await search(client, "sofa", k="10"))[0]  # by its text at once
    await until(lambda: "p6" in dense.searcher.dense)
    assert (await search(client, "sofa", k="1"))[0] == ["p6"]
    read_model.apply(catalog.NAME, "p6", catalog.to_item(CatalogChange("delete", "p6", 3.0)))
    assert "p6" not in (await search(client, "sofa", k="10"))[0]

    read_model.apply(user_profiles.NAME, "me", profile(["p2", "p3"]))
    items, version = await search(client, "sofa", k="3", user_id="me")
    assert version == "search-v1" and items[0] == "p1"

    save_search_version(settings.runtime.model_dir, dense_weight=-1.0)  # ranks the least similar first
    await until(lambda: dense.model is not None and dense.model.version == "search-v2")
    items, version = await search(client, "sofa", k="5")
    assert version == "search-v2" and items[-1] == "p1"
    assert not await client.app[SEARCH_WATCHER].check()  # nothing newer


async def test_swaps_under_concurrent_requests_never_mix_versions(aiohttp_client, settings, sink, read_model):
    client, dense = await start(aiohttp_client, settings, sink, read_model)
    # The swaps here are the test's own: the watcher would install the newest checkpoint
    # in the middle of them, after which no answer ever shows the version the swapper waits for.
    await client.app[SEARCH_WATCHER].stop()
    assert (await search(client, "sofa"))[1] == "bm25+minilm-l6-pretrained"  # no checkpoint yet
    models = [SearchModel.load(settings, save_search_version(settings.runtime.model_dir, w)) for w in (1.0, -1.0)]
    expected = {}
    for model in models:
        dense.install(model)
        expected[model.version] = (await search(client, "sofa", k="1"))[0]
    assert expected["search-v1"] != expected["search-v2"]
    stop = asyncio.Event()
    results = []

    answered = asyncio.Event()
    installed = []

    async def swapper():
        for n in range(40):
            dense.install(models[n % 2])
            installed.append(models[n % 2].version)
            # Swap at random points, but only after some request saw this version: on a
            # slow machine a whole batch (read before the swap) could otherwise outlast every swap.
            answered.clear()
            await answered.wait()
            await asyncio.sleep(random.random() * 0.004)
        stop.set()

    async def one_search():
        result = await search(client, "sofa", k="1")
        results.append(result)
        if result[1] == installed[-1]:
            answered.set()

    async def load():
        while not stop.is_set():
            await asyncio.gather(*(one_search() for _ in range(10)))

    await asyncio.gather(swapper(), load())
    assert {version for _, version in results} == {"search-v1", "search-v2"}
    assert all(items == expected[version] for items, version in results)


async def test_a_restarted_gateway_reuses_the_cached_item_vectors(aiohttp_client, settings, sink, read_model):
    client, dense = await start(aiohttp_client, settings, sink, read_model)
    path = vector_cache_path(settings, dense._catalog_encoder)
    await client.close()  # stopping saves the cache
    assert path.is_file()

    read_model = ReadModel(settings)
    app = init_app(settings.replace(search_dense=True, search_encode_catalog=True), sink=sink, read_model=read_model, follow_changelogs=False)
    client = await aiohttp_client(app)
    dense = client.app[DENSE]
    encoded = []
    encode = dense._catalog_encoder.encode
    dense._catalog_encoder.encode = lambda texts, *a, **kw: encoded.extend(texts) or encode(texts, *a, **kw)
    for item, (title, category) in CATALOG.items():
        put(read_model, item, title, category)
    await until(lambda: len(dense.searcher.dense) == len(CATALOG))
    assert encoded == []
    put(read_model, "p6", "leather sofa with chaise", "furniture", ts=2.0)
    await until(lambda: "p6" in dense.searcher.dense)
    assert encoded == ["leather sofa with chaise furniture"]
