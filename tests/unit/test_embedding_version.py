import pytest
import torch

from models.rec.embedding_version import EmbeddingRecVersion


def model():
    vecs = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    return EmbeddingRecVersion.build("t", ["a", "b", "c", "d"], vecs)


def test_ranks_by_cosine_to_the_recency_weighted_history():
    m = model()
    assert [i for i, _ in m.rank(["a"], 2, exclude=["a"])] == ["b", "d"]
    assert [i for i, _ in m.rank(["a", "c"], 1, exclude=["a", "c"])] == ["d"]  # c is the newest
    assert m.rank(["unknown"], 3) == []


def test_filters_and_exclusions_never_leak():
    m = model()
    ranked = m.rank(["a"], 3, exclude=["a", "b"], allow=lambda i: i != "d")
    assert [i for i, _ in ranked] == ["c"]


def test_checkpoint_round_trip(tmp_path):
    path = model().save(tmp_path, {"data": "unit"})
    again = EmbeddingRecVersion.from_checkpoint(path)
    assert again.version == "rec-embeddings-v1" and again.item_ids == ("a", "b", "c", "d")
    assert torch.allclose(again.vectors, model().vectors)


def test_ids_and_rows_must_agree():
    with pytest.raises(ValueError, match="2 ids for 4 vectors"):
        EmbeddingRecVersion.build("t", ["a", "b"], torch.ones(4, 2))
