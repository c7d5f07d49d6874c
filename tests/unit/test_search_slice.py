"""The quick fine-tune's data: a catalog slice, and the item vectors the encoder process computed."""
import pytest
import torch
import torch.nn.functional as F

from app.gateway.dense_search import vector_cache_path
from app.search_slice import catalog_slice, encoder_cache_vectors, shared_assets
from app.settings import Settings
from models.data.homedepot import SearchData
from models.encoder import DIM, TextEncoder
from models.vector_cache import VectorCache


def data() -> SearchData:
    return SearchData(
        items=["a", "b", "c", "d"],
        titles=["angle bracket", "deck stain", "shower faucet", "ceiling fan"],
        judgments={"bracket": {"a": 3.0, "d": 1.0}, "stain": {"b": 2.5}, "fan": {"d": 3.0}, "faucet": {"c": 2.0, "a": 1.0}},
        query_text={"bracket": "Bracket", "stain": "stain", "fan": "Fan", "faucet": "faucet"},
    )


def test_a_slice_keeps_the_first_products_and_the_judgments_on_them():
    out = catalog_slice(data(), 2)
    assert (out.items, out.titles) == (["a", "b"], ["angle bracket", "deck stain"])
    assert out.judgments == {"bracket": {"a": 3.0}, "stain": {"b": 2.5}, "faucet": {"a": 1.0}}  # "fan" judged nothing kept
    assert out.query_text == {"bracket": "Bracket", "stain": "stain", "faucet": "faucet"}
    assert catalog_slice(data(), 10).judgments == data().judgments
    with pytest.raises(ValueError):
        catalog_slice(data(), 0)


def test_cached_vectors_are_used_and_only_the_rest_encoded(tmp_path):
    cache = VectorCache(tmp_path / "c.safetensors", DIM)
    known = F.normalize(torch.randn(2, DIM), dim=1)
    cache.put(["deck stain", "ceiling fan"], known)
    asked = []

    def encode(texts):
        asked.extend(texts)
        return torch.ones(len(texts), DIM)

    out = encoder_cache_vectors(cache, encode, data().titles)
    assert asked == ["angle bracket", "shower faucet"]
    assert torch.equal(out[1], known[0]) and torch.equal(out[3], known[1])
    assert torch.equal(out[0], torch.ones(DIM)) and out.shape == (4, DIM)
    assert encoder_cache_vectors(None, encode, ["x"]).shape == (1, DIM)


def test_the_fine_tune_reads_the_item_encoders_cache_file(tmp_path, monkeypatch):
    settings = Settings().replace(state_dir=tmp_path)
    encoder = TextEncoder(max_length=settings.encoder.max_length)
    cache = VectorCache(vector_cache_path(settings, encoder.for_serving()), DIM)  # where `streamrank encoder` keeps it
    vectors = F.normalize(torch.randn(4, DIM), dim=1)
    cache.put(data().titles, vectors)
    cache.save()
    monkeypatch.setattr(TextEncoder, "encode", lambda *a, **k: pytest.fail("encoded a title the cache holds"))
    assets = shared_assets(settings, data())
    assert torch.equal(assets.item_vecs, vectors)
    assert assets.row_of == {"a": 0, "b": 1, "c": 2, "d": 3}
