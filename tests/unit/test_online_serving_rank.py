"""The serving model's sparse ranking (embedding off) equals scoring the whole table."""
import random

import pytest
import torch

from models.online.rec_model import OnlineRecConfig, OnlineRecModel, top_k
from models.online.serving import ServingRecModel


@pytest.mark.parametrize("k", [3, 20, 200])
def test_sparse_rank_equals_full_table_scores(k):
    rng = random.Random(3)
    model = OnlineRecModel(OnlineRecConfig(num_shards=1, capacity=500, dim=8))
    users = {u: [] for u in range(60)}
    stream = []
    for _ in range(3000):  # clustered items so the count channels have structure
        u = rng.randrange(60)
        item = f"i{(len(users[u]) * 7 + u + rng.randrange(3)) % 150}"
        if users[u]:
            stream.append((list(users[u]), item))
        users[u].append(item)
    for start in range(0, len(stream), 256):
        model.learn(stream[start:start + 256])
    serving = ServingRecModel.from_model(model, 1)
    assert float(serving.dense.embed_gate) == 0.0
    allow = lambda item: not item.endswith("7")  # noqa: E731
    for history in [users[u] for u in range(20)] + [["unknown"], []]:
        sparse = serving.rank(history, k, exclude=history[-2:], allow=allow)
        full = top_k(serving._scores([history], [[]], [None])[0], serving.ids, k, history[-2:], allow)
        assert len(sparse) == len(full)
        assert all(abs(a[1] - b[1]) < 1e-5 for a, b in zip(sparse, full)), (sparse[:5], full[:5])
        assert all(not item.endswith("7") and item not in history[-2:] for item, _ in sparse)


def test_a_served_recommendation_sums_only_each_sources_strongest_successors(monkeypatch):
    """Past `features_per_source` successors a source contributes its strongest only, from a memo
    that stays bounded: checked against the sum written out here."""
    import heapq
    import math

    from models.online import serving as serving_module

    monkeypatch.setattr(serving_module, "MAX_TERM_BYTES", 2_000)
    rng = random.Random(5)
    model = OnlineRecModel(OnlineRecConfig(num_shards=1, capacity=500, dim=8, features_per_source=4))
    stream = [([f"i{rng.randrange(40)}" for _ in range(3)], f"i{rng.randrange(40)}") for _ in range(3000)]
    for start in range(0, len(stream), 256):
        model.learn(stream[start:start + 256])
    serving = ServingRecModel.from_model(model, 1)
    weights = serving.dense.trans_weight.detach().tolist()
    gamma = float(serving.dense.pop_weight.detach())
    log_pop = torch.log1p(serving.popularity.float()).tolist()
    cut_any = False
    for history in (["i1", "i2", "i3"], ["i7"], ["i9", "i9", "i30"]):
        want: dict[str, float] = {}
        for f, neighbours, norm in model.counts._sources(history, serving.history):  # the learner's whole rows
            cut_any |= len(neighbours) > 4
            for item, count in heapq.nlargest(4, neighbours.items(), key=lambda kv: kv[1]):
                want[item] = want.get(item, 0.0) + weights[f] * norm * count
        got = dict(serving.rank(history, 40))
        for item, partial in want.items():
            assert math.isclose(got[item], partial + gamma * log_pop[serving.index[item]], rel_tol=1e-6, abs_tol=1e-9)
        assert 0 < serving._term_bytes <= 2_000
        assert serving._term_bytes == sum(r.nbytes + v.nbytes for r, v in filter(None, serving._terms.values()))
        assert got == dict(serving.rank(history, 40))  # again, from the memo
    assert cut_any  # the test exercised the cut
    # what serving does not read it does not hold: each row's 4 strongest, degrees whole
    for held, whole in zip(serving.counts.neighbours, model.counts.neighbours):
        assert held.keys() == whole.keys() and all(len(row) == min(4, len(whole[a])) for a, row in held.items())
    assert serving.counts.degrees == model.counts.degrees


def test_the_learners_scores_over_its_shard_maps_equal_scoring_located_entries():
    """OnlineRecModel scores among each shard's id -> row map (features_among); the generic path
    builds every successor's entry and locates it: the same scores, over two shards."""
    from models.online.scoring import full_scores, target_ranks

    rng = random.Random(11)
    model = OnlineRecModel(OnlineRecConfig(num_shards=2, capacity=300, dim=8))
    stream = [([f"i{rng.randrange(120)}" for _ in range(4)], f"i{rng.randrange(120)}") for _ in range(2500)]
    for start in range(0, len(stream), 256):
        model.learn(stream[start:start + 256])
    histories = [h for h, _ in stream[:40]] + [["unknown", "i3"]]
    targets = [t for _, t in stream[:40]] + ["i3"]
    with torch.no_grad():
        generic = full_scores(model.dense, model.users(histories), model.tables(), model.store.rows_for,
                              model.counts.features(histories, model.config.history), histories, targets)
    for fast, slow in zip(model._scores(histories, histories, targets), generic):
        assert torch.allclose(fast, slow, atol=1e-5), (fast - slow).abs().max()
    assert model.score_batch(histories, targets) == target_ranks(generic, model.store.rows_for(targets))
