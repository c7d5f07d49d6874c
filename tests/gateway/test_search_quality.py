"""Search over the real Home Depot catalog: judged relevant products come back for known queries."""
from tables.wire.records import CatalogChange
from models.data.homedepot import load_homedepot
from tables import catalog


async def test_relevant_products_in_the_top_10_for_known_queries(client, read_model, settings):
    data = load_homedepot(settings.runtime.data_dir / "homedepot" / "train.csv.gz")
    for item, title in zip(data.items, data.titles):
        read_model.apply(catalog.NAME, item, catalog.to_item(CatalogChange("upsert", item, 1.0, title=title)))
    queries = sorted(q for q in data.judgments if data.relevant(q))[:300]
    hits = 0
    for q in queries:
        body = await (await client.get("/v1/search", params={"q": data.query_text[q], "k": "10"})).json()
        hits += bool({i["item_id"] for i in body["items"]} & data.relevant(q))
    rate = hits / len(queries)
    print(f"search: a relevant product in the top 10 for {hits}/{len(queries)} known queries ({rate:.1%})")
    assert len(data.items) > 40_000
    assert rate > 0.4
