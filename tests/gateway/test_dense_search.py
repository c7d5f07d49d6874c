"""Hybrid search with the real MiniLM encoder: meaning, not only shared words."""
import asyncio
from dataclasses import replace

from app.gateway.app import init_app
from app.gateway.keys import DENSE
from app.records import CatalogChange
from tables import catalog

CATALOG = {
    "p1": "3-seat fabric couch, grey",
    "p2": "Cordless drill driver 18V with two batteries",
    "p3": "Stainless steel kitchen sink, double bowl",
    "p4": "LED ceiling light fixture, flush mount",
    "p5": "Garden hose 50 ft, kink resistant",
}


async def test_dense_retrieval_finds_synonyms_and_follows_catalog_changes(aiohttp_client, settings, sink, read_model):
    app = init_app(replace(settings, search_dense=True), sink=sink, read_model=read_model,
                   follow_changelogs=False, watch_models=False)
    client = await aiohttp_client(app)
    for item, title in CATALOG.items():
        read_model.apply(catalog.NAME, item, catalog.to_item(CatalogChange("upsert", item, 1.0, title=title)))
    dense = client.app[DENSE]
    for _ in range(200):
        if len(dense.index) == len(CATALOG):
            break
        await asyncio.sleep(0.05)
    assert len(dense.index) == len(CATALOG)

    body = await (await client.get("/v1/search?q=sofa&k=3")).json()  # no title says "sofa"
    assert body["items"][0]["item_id"] == "p1"
    assert body["model_version"] == "bm25+minilm-l6-pretrained"
    body = await (await client.get("/v1/search?q=power tool for screws&k=1")).json()
    assert body["items"][0]["item_id"] == "p2"

    read_model.apply(catalog.NAME, "p1", catalog.to_item(CatalogChange("delete", "p1", 2.0)))
    body = await (await client.get("/v1/search?q=sofa&k=5")).json()
    assert "p1" not in [i["item_id"] for i in body["items"]]
