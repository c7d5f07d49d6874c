"""Catalog embeddings are cached on disk by (model key, texts)."""
import torch

from models.embedding_cache import cached_embeddings


def test_cache_hits_only_for_the_same_model_and_texts(tmp_path):
    calls = []

    def encode(texts):
        calls.append(list(texts))
        return torch.arange(len(texts) * 3, dtype=torch.float32).view(len(texts), 3)

    first = cached_embeddings(tmp_path, "model-a", ["x", "y"], encode)
    again = cached_embeddings(tmp_path, "model-a", ["x", "y"], encode)
    torch.testing.assert_close(first, again)
    assert len(calls) == 1
    cached_embeddings(tmp_path, "model-b", ["x", "y"], encode)  # another model
    cached_embeddings(tmp_path, "model-a", ["y", "x"], encode)  # another catalog order
    assert len(calls) == 3 and len(list(tmp_path.glob("*.safetensors"))) == 3
    cached_embeddings(None, "model-a", ["x", "y"], encode)  # no cache dir: always encodes
    assert len(calls) == 4
