"""The serving model's sparse ranking (embedding off) equals scoring the whole table."""
import random

import pytest

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
