import pytest
import torch

from models.rec.embedding_version import RECENCY_WEIGHTS, EmbeddingRecVersion


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


def test_rank_many_gives_each_user_what_rank_alone_gives():
    gen = torch.Generator().manual_seed(0)
    ids = [f"i{n}" for n in range(400)]
    m = EmbeddingRecVersion.build("t", ids, torch.randn(400, 8, generator=gen))
    rare = set(ids[::97])  # a filter that leaves 5 items: found only by searching deeper
    requests = [(["i1", "i2"], 10, ["i1", "i2"], None), (["i3"], 3, [], None), (["nope"], 5, [], None),
                (["i4", "i5", "i6", "i7", "i8", "i9"], 20, ["i9"], lambda i: i in rare),
                ([], 4, [], None), (["i10"], 60, [], lambda i: i != "i11")]
    batched = m.rank_many(requests)
    alone = [m.rank(*r) for r in requests]
    assert [[i for i, _ in b] for b in batched] == [[i for i, _ in a] for a in alone]
    for b, a in zip(batched, alone):
        assert torch.allclose(torch.tensor([s for _, s in b]), torch.tensor([s for _, s in a]), atol=1e-6)
    assert batched[2] == [] and batched[4] == [] and len(batched[5]) == 60
    assert {i for i, _ in batched[3]} == rare and len(batched[3]) == 5
    # and what rank gives is the exact top by cosine to the history (one item: its own vector)
    exact = torch.topk(m.vectors @ m.vectors[3], 3).indices.tolist()
    assert [i for i, _ in batched[1]] == [ids[r] for r in exact]


def test_the_numpy_pass_returns_the_torch_brute_force_ranking():
    """At a serving-sized table the ranking served is torch's brute force (same items, same
    scores) for every user, alone or batched, with exclusions."""
    gen = torch.Generator().manual_seed(1)
    ids = [f"i{n}" for n in range(2048)]
    m = EmbeddingRecVersion.build("t", ids, torch.randn(len(ids), 32, generator=gen))
    histories = [[ids[int(r)] for r in torch.randint(len(ids), (3,), generator=gen)] for _ in range(40)]
    batched = m.rank_many([(h, 10, h[:2], None) for h in histories])
    for history, got in zip(histories, batched):
        user = m.vectors[[m.index[i] for i in reversed(history)]]
        weights = torch.tensor(RECENCY_WEIGHTS[:3]).unsqueeze(1)
        scores = m.vectors @ ((user * weights).sum(0) / weights.sum())
        scores[[m.index[i] for i in history[:2]]] = float("-inf")
        top = torch.topk(scores, 10)
        assert [i for i, _ in got] == [ids[r] for r in top.indices.tolist()]
        assert [s for _, s in got] == pytest.approx(top.values.tolist(), abs=1e-5)
        alone = m.rank(history, 10, history[:2])
        assert [i for i, _ in alone] == [i for i, _ in got] and [s for _, s in alone] == pytest.approx([s for _, s in got])
