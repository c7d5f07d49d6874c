import torch

from models.metrics import rank_metrics
from models.online.click_model import ClickSample, OnlineClickConfig, OnlineClickModel
from tests.unit.online_streams import batches, chain_stream, small_model


def learn_all(model, samples, size=32):
    for batch in batches(samples, size):
        model.learn(batch)


def test_learning_a_pattern_moves_the_true_next_item_up():
    model = small_model()
    learn_all(model, [([], f"{c}{i}") for i in range(12) for c in "xyz"])  # every item known, no pattern
    probes = [(["x3"], "y3"), (["x3", "y3"], "z3"), (["x7", "y7"], "z7")]
    before = model.score_batch([h for h, _ in probes], [t for _, t in probes])
    learn_all(model, chain_stream(300))
    after = model.score_batch([h for h, _ in probes], [t for _, t in probes])
    assert after == [0, 0, 0] and sum(before) >= 5, before
    assert model.rank(["x3", "y3"], 1)[0][0] == "z3"


def test_progressive_scoring_comes_before_learning():
    model = small_model()
    learn_all(model, chain_stream(200))
    assert model.score_batch([["x1", "y1"]], ["new-item"]) == [None]  # unknown target: a miss
    model.learn([([], "p")])
    assert model.score_batch([["p"]], ["q"]) == [None]  # q is new: its first sample is a miss
    model.learn([(["p"], "q")])
    assert model.score_batch([["p"]], ["q"]) == [0]  # learned once: now it is p's top successor
    assert rank_metrics([0, None, 20], ks=(10,)) == {"HR@10": 1 / 3, "NDCG@10": 1 / 3}


def test_learning_is_deterministic_for_a_seed():
    a, b = small_model(), small_model()
    stream = chain_stream(100)
    learn_all(a, stream)
    learn_all(b, stream)
    for sa, sb in zip(a.store.shards, b.store.shards):
        assert torch.equal(sa.weights, sb.weights)
    for pa, pb in zip(a.dense.parameters(), b.dense.parameters()):
        assert torch.equal(pa, pb)


def test_rows_stay_within_capacity_with_endless_new_ids():
    model = small_model(capacity=8, negatives=4)
    for n in range(40):
        model.learn([([f"id{n}-{i}"], f"id{n}-{i + 1}") for i in range(6)])
    assert all(model.store.used_rows(s) <= 8 for s in range(2))
    assert len(model.store) <= 16
    assert len(model.store.evicted) >= 40 * 6 - 16
    assert set(model.counts.next) <= {k for s in model.store.shards for k in s.rows}


def test_click_model_separates_position_from_attractiveness():
    model = OnlineClickModel(OnlineClickConfig(positions=4, num_shards=1, capacity=32, row_lr=0.1, dense_lr=0.05))
    gen = torch.Generator().manual_seed(0)
    attractive = {"good": 0.6, "bad": 0.2}
    look = [1.0, 0.6, 0.3, 0.1]  # chance a position is looked at
    first = None
    for _ in range(300):
        batch = []
        for item, p in attractive.items():
            for pos in range(4):
                # "good" is mostly shown low, "bad" mostly high: raw CTR would mislead
                if (item == "good") == (pos >= 2) or torch.rand(1, generator=gen) < 0.2:
                    click = int(torch.rand(1, generator=gen) < p * look[pos])
                    batch.append(ClickSample("u", item, pos, click))
        probs = model.score_batch(batch)
        first = probs if first is None else first
        model.learn(batch)
    assert torch.allclose(first, first[0].expand_as(first))  # nothing known before learning
    good, bad = model.relevance(["good", "bad"]).tolist()
    assert good > bad
    bias = model.dense.position_bias.detach()
    assert bias[0] > bias[3]


def test_count_channels_skip_gaps_and_reverse():
    model = small_model(embed_gate=0.0, learn_embedding=False, gaps=2, reverse=True)
    learn_all(model, [([], "a"), (["a"], "b"), (["a", "b"], "c")])
    counts = model.counts
    assert counts.channels == 3 and counts.next == {"a": {"b": 1}, "b": {"c": 1}}
    assert counts.neighbours[1] == {"a": {"c": 1}}  # c came 2 steps after a
    assert counts.neighbours[2] == {"b": {"a": 1}, "c": {"b": 1}}  # what came right before
    assert model.rank(["c"], 1)[0][0] == "b"  # only the reverse channel knows c's neighbours
    # a is 2 back: a -> b (next, at position 1) leads, a -> c (gap 2) follows
    assert [i for i, _ in model.rank(["a", "x"], 2)] == ["b", "c"]
    back = counts.empty_like()
    back.load_json(counts.to_json())
    assert back.neighbours == counts.neighbours and back.degrees == counts.degrees
