"""The demo's way to a fine-tuned search model: the gateway serves the pretrained model at once,
a real (tiny) `streamrank finetune --max-items` runs beside it, and the gateway swaps the new
version in while answering: /v1/search and /readyz name it, no request fails, and once the new
version answered, the old one never answers again. Real MiniLM, tiny catalog."""
import argparse
import asyncio
import csv
import gzip
import json

from app.gateway.app import init_app
from app.gateway.keys import DENSE
from app.jobs import finetune
from models.encoder import BASE_MODEL
from tests.gateway.conftest import put, until

PRETRAINED = "bm25+minilm-l6-pretrained"
# (product, title, category); the queries below judge them.
PRODUCTS = [
    ("p1", "3-seat fabric couch, grey", "furniture"),
    ("p2", "Cordless drill driver 18V with two batteries", "tools"),
    ("p3", "Stainless steel kitchen sink, double bowl", "kitchen"),
    ("p4", "LED ceiling light fixture, flush mount", "lighting"),
    ("p5", "Garden hose 50 ft, kink resistant", "garden"),
    ("p6", "Leather armchair with ottoman", "furniture"),
    ("p7", "Hammer drill 20V brushless", "tools"),
    ("p8", "Pull-down kitchen faucet, chrome", "kitchen"),
    ("p9", "Outdoor wall lantern, black", "lighting"),
    ("p10", "Lawn sprinkler, oscillating", "garden"),
    ("p11", "Not in the slice: patio umbrella", "garden"),  # beyond --max-items 10
]
WORDS = {"p1": "sofa", "p2": "power drill", "p3": "sink", "p4": "ceiling lamp", "p5": "water hose",
         "p6": "lounge chair", "p7": "masonry drill", "p8": "faucet", "p9": "porch light", "p10": "sprinkler"}


def write_judgments(path):
    """Five phrasings per product (relevance 3) and a weak match (1): 50 queries, every split used."""
    rows, n = [], 0
    items = [p for p, _, _ in PRODUCTS]
    for i, (item, title, _) in enumerate(PRODUCTS[:10]):
        for form in ("{}", "best {}", "cheap {}", "{} sale", "new {}"):
            n += 1
            query = form.format(WORDS[item])
            rows.append((n, item, title, query, 3.0))
            other = items[(i + 1) % 10]
            rows.append((n + 1000, other, PRODUCTS[(i + 1) % 10][1], query, 1.0))
    rows.append((9999, "p11", PRODUCTS[10][1], "patio umbrella", 3.0))
    with gzip.open(path, "wt", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "product_uid", "product_title", "search_term", "relevance"])
        writer.writerows(rows)
    return path


def finetune_args(data):
    return argparse.Namespace(data=data, test_queries=None, epochs=2, encoder_epochs=0, max_steps=4,
                              write_test_queries=None, max_items=10)


async def search_version(client):
    r = await client.get("/v1/search", params={"q": "sofa", "k": "3"})
    assert r.status == 200, await r.text()
    return (await r.json())["model_version"]


async def readyz_version(client):
    return (await (await client.get("/readyz")).json())["search"]["model_version"]


async def test_a_background_finetune_is_swapped_in_while_serving(aiohttp_client, settings, sink, read_model,
                                                                tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMRANK_STATE_DIR", str(settings.runtime.state_dir))  # the job's model dir is the gateway's
    app = init_app(settings.replace(search_dense=True, search_encode_catalog=True), sink=sink,
                   read_model=read_model, follow_changelogs=False)
    client = await aiohttp_client(app)
    for item, title, category in PRODUCTS:
        put(read_model, item, title, category)
    dense = client.app[DENSE]
    await until(lambda: len(dense.searcher.dense) == len(PRODUCTS))
    assert await search_version(client) == PRETRAINED == await readyz_version(client)

    job = asyncio.create_task(asyncio.to_thread(finetune.run, finetune_args(write_judgments(tmp_path / "j.csv.gz"))))
    versions = []
    while not job.done() or not versions or versions[-1] == PRETRAINED:
        versions.append(await search_version(client))  # asserts every answer is a 200
        if job.done() and job.exception() is not None:
            await job  # the fine-tune failed: say why, do not wait for a swap that cannot come
        await asyncio.sleep(0.05)
        assert len(versions) < 4000, "the fine-tuned version never served"
    assert await job == 0
    card = json.loads((settings.runtime.model_dir / "search" / "v0001" / "card.json").read_text())
    # The item tower stays the pretrained one the encoder process runs: the catalog's vectors
    # (item-vectors topic, keyed by that tower) stay valid across the swap, nothing is re-encoded.
    assert card["base_model"] == BASE_MODEL and card["query_encoder"] == "pretrained"
    assert card["data"]["items"] == 10  # the slice
    assert versions[0] == PRETRAINED and versions[-1] == "search-v1"
    swapped = versions.index("search-v1")
    assert set(versions[:swapped]) == {PRETRAINED} and set(versions[swapped:]) == {"search-v1"}
    assert await readyz_version(client) == "search-v1"
    r = await client.get("/v1/search", params={"q": "patio umbrella", "k": "3"})
    assert (await r.json())["items"][0]["item_id"] == "p11"  # serves the whole catalog, not the slice
