"""A gateway restarted with a search checkpoint and a partial vector set searches at once:
lexical hits for the items without a vector, dense ones for those with; it never encodes a
catalog text (the vectors come from `streamrank encoder` over the item-vectors topic)."""
import uuid

import torch
import torch.nn.functional as F

from app.gateway.app import init_app
from app.gateway.dense_search import item_model_key
from app.gateway.keys import DENSE
from app.gateway.serving import item_text
from app.search_model import MODEL_NAME, QueryTower
from models.checkpoint import save_checkpoint
from models.encoder import BASE_MODEL
from models.item_vectors import decode_vector, encode_vector, model_digest
from models.query_adapter import QueryAdapter
from models.search_ranker import FEATURES, SearchRanker
from tables import catalog
from tests.gateway.conftest import CATALOG, put, search, until

FILLERS = 1500  # past the 1024 slots the searcher's arrays start with


def save_hybrid_version(model_dir):
    """A search checkpoint whose ranker adds dense cosine and relative BM25 (identity adapter)."""
    ranker = SearchRanker()
    with torch.no_grad():
        ranker.linear.weight[0, FEATURES.index("dense")] = 1.0
        ranker.linear.weight[0, FEATURES.index("bm25_rel")] = 1.0
    tensors = {**QueryTower(None, QueryAdapter()).tensors(), **ranker.state_tensors()}
    card = {"kind": "search", "model_id": uuid.uuid4().hex, "base_model": BASE_MODEL, "features": list(FEATURES),
            "query_encoder": "pretrained", "settings": {"encoder_max_length": 32}}
    return save_checkpoint(model_dir, MODEL_NAME, tensors, card)


def vector_record(settings, item_text_: str, vector: torch.Tensor, tower: str | None = None):
    return decode_vector(encode_vector(model_digest(tower or item_model_key(settings)), item_text_, vector))


def text_of(read_model, item: str) -> str:
    return item_text(read_model.tables[catalog.NAME][item])


async def test_restart_with_a_checkpoint_and_a_partial_vector_set_searches_at_once(aiohttp_client, settings, sink, read_model):
    settings = settings.replace(search_dense=True)  # search_encode_catalog off: vectors come from the encoder
    save_hybrid_version(settings.runtime.model_dir)
    for n in range(FILLERS):  # the read model holds the catalog before the gateway starts, as after a restart
        put(read_model, f"f{n}", "zebra striped doormat" if n == 1400 else f"widget model {n} bracket", "misc")
    for item, (title, category) in CATALOG.items():
        put(read_model, item, title, category)
    client = await aiohttp_client(init_app(settings, sink=sink, read_model=read_model, follow_changelogs=False))
    dense = client.app[DENSE]
    await until(lambda: dense.model is not None)

    items, version = await search(client, "zebra doormat", k="3")  # no vector anywhere yet: 200, by text
    assert items[0] == "f1400" and version == "search-v1"

    # Half the fillers and the five products get their vectors, as a half-filled topic would hand them over.
    texts = [text_of(read_model, i) for i in CATALOG]
    real = dense._query_encoder.encode(texts)
    noise = F.normalize(torch.randn(700, real.shape[1]), dim=1)
    dense.on_vectors([(f"f{n}", vector_record(settings, text_of(read_model, f"f{n}"), noise[n])) for n in range(700)])
    dense.on_vectors([(i, vector_record(settings, t, v)) for i, t, v in zip(CATALOG, texts, real)])
    items, _ = await search(client, "sofa", k="3")  # at once: the search installs them first
    assert items[0] == "p1"  # by meaning: no title says "sofa"
    assert (await search(client, "zebra doormat", k="3"))[0][0] == "f1400"  # still by its text
    assert len(dense.searcher.dense) == 705 and dense._catalog_encoder is None  # nothing encoded here

    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["search"] == {"items": FILLERS + len(CATALOG), "with_vectors": 705, "ready": False,
                                                  "model_version": "search-v1"}


async def test_only_vectors_of_the_current_text_and_tower_are_installed(aiohttp_client, settings, sink, read_model):
    settings = settings.replace(search_dense=True)
    client = await aiohttp_client(init_app(settings, sink=sink, read_model=read_model, follow_changelogs=False))
    dense = client.app[DENSE]
    vector = F.normalize(torch.ones(384), dim=0)
    dense.on_vectors([("p9", vector_record(settings, "lamp shade lighting", vector))])  # before its item
    dense.on_vectors([("p8", vector_record(settings, "old title tools", vector)),
                      ("p7", vector_record(settings, "garden rake garden", vector, tower="another tower"))])
    put(read_model, "p9", "lamp shade", "lighting")
    put(read_model, "p8", "new title", "tools")
    put(read_model, "p7", "garden rake", "garden")
    await search(client, "lamp")
    assert set(dense.searcher.dense.slot) == {"p9"}
    body = await (await client.get("/readyz")).json()
    assert body["search"] == {"items": 3, "with_vectors": 1, "ready": False,
                              "model_version": "bm25+minilm-l6-pretrained"}

    dense.on_vectors([("p8", vector_record(settings, "new title tools", vector))])  # the encoder caught up
    await search(client, "lamp")
    assert set(dense.searcher.dense.slot) == {"p8", "p9"}
    dense.on_vectors([("p7", vector_record(settings, "garden rake garden", vector)), ("p9", None)])
    await search(client, "lamp")
    assert (await (await client.get("/readyz")).json())["search"]["ready"]


def test_the_gateway_names_the_item_tower_that_the_encoder_runs(settings):
    """Gateways match vectors by this key without loading the item tower: it must be the
    encoder's (`streamrank encoder` runs float32 weights, `for_serving()`)."""
    from models.encoder import TextEncoder

    assert item_model_key(settings) == TextEncoder(max_length=settings.encoder.max_length).for_serving().model_key
