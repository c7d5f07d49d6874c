"""Hybrid search with the real MiniLM encoder: meaning, not only shared words."""

from app.gateway.app import init_app
from app.gateway.keys import DENSE
from tables.wire.records import CatalogChange
from tables import catalog
from tests.gateway.conftest import until

CATALOG = {
    "p1": "3-seat fabric couch, grey",
    "p2": "Cordless drill driver 18V with two batteries",
    "p3": "Stainless steel kitchen sink, double bowl",
    "p4": "LED ceiling light fixture, flush mount",
    "p5": "Garden hose 50 ft, kink resistant",
}


async def test_dense_retrieval_finds_synonyms_and_follows_catalog_changes(aiohttp_client, settings, sink, read_model):
    app = init_app(settings.replace(search_dense=True, search_encode_catalog=True), sink=sink, read_model=read_model,
                   follow_changelogs=False, watch_models=False)
    client = await aiohttp_client(app)
    for item, title in CATALOG.items():
        read_model.apply(catalog.NAME, item, catalog.to_item(CatalogChange("upsert", item, 1.0, title=title)))
    dense = client.app[DENSE]
    await until(lambda: len(dense.index) == len(CATALOG))

    body = await (await client.get("/v1/search?q=sofa&k=3")).json()  # no title says "sofa"
    assert body["items"][0]["item_id"] == "p1"
    assert body["model_version"] == "bm25+minilm-l6-pretrained"
    body = await (await client.get("/v1/search?q=power tool for screws&k=1")).json()
    assert body["items"][0]["item_id"] == "p2"

    read_model.apply(catalog.NAME, "p1", catalog.to_item(CatalogChange("delete", "p1", 2.0)))
    body = await (await client.get("/v1/search?q=sofa&k=5")).json()
    assert "p1" not in [i["item_id"] for i in body["items"]]


def test_item_vector_cache_keeps_what_a_loading_catalog_has_not_reached_yet(settings, tmp_path):
    """A gateway saving its cache while the catalog still streams in from the changelog must
    not drop the vectors of the items it has not read yet: it would encode them again."""
    import time

    import torch

    from app.gateway.dense_search import DenseSearch
    from app.metrics import Metrics
    from models.encoder import DIM
    from models.vector_cache import VectorCache

    dense = DenseSearch(settings.replace(search_dense=True, search_encode_catalog=True), Metrics())
    try:
        dense._cache = VectorCache(tmp_path / "vectors.safetensors", DIM)
        titles = [f"product number {n}" for n in range(3000)]
        dense._cache.put(titles, torch.nn.functional.normalize(torch.randn(len(titles), DIM), dim=1))
        for n, title in enumerate(titles[:100]):  # the first hundred items have arrived
            dense.on_change(catalog.NAME, f"p{n}", None, catalog.to_item(CatalogChange("upsert", f"p{n}", 1.0, title=title)))
        dense._save_cache(dense._live_texts())
        assert len(VectorCache(tmp_path / "vectors.safetensors", DIM).vectors) == 3000

        # Loaded and quiet (every item has its vector, no change for a while): stale texts go.
        dense.pending.clear()
        dense._apply()
        dense.searcher.set_vectors(list(dense.texts.items()), torch.stack([dense._cache.get(t) for t in dense.texts.values()]))
        dense._changed_at = time.monotonic() - 60
        dense._save_cache(dense._live_texts())
        assert len(VectorCache(tmp_path / "vectors.safetensors", DIM).vectors) == 100
    finally:
        for pool in (dense._catalog_pool, dense._encode_pool, dense._query_pool):
            pool.shutdown()
