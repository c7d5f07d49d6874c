import math

import numpy as np

from models.rec.baselines import Transition
from models.rec.online_transitions import OnlineTransitions


def test_scores_follow_counts_normalised_by_out_degree():
    m = OnlineTransitions()
    m.learn_sequence(["a", "b", "c"])
    m.learn_sequence(["a", "b"])
    m.learn_sequence(["a", "d"])
    s = m.scores(["a"])
    assert math.isclose(s["b"], 2 / math.sqrt(4)) and math.isclose(s["d"], 1 / math.sqrt(4))
    assert [b for b, _ in m.rank(["a"], 2)] == ["b", "d"]


def test_history_weights_and_exclusion_and_filter():
    m = OnlineTransitions()
    m.learn_sequence(["x", "p"])
    m.learn_sequence(["y", "q"])
    ranked = m.rank(["y", "x"], 5)  # x is the last item: weight 1; y weight 0.5
    assert [b for b, _ in ranked] == ["p", "q"]
    assert [b for b, _ in m.rank(["y", "x"], 5, exclude=["p"])] == ["q"]
    assert [b for b, _ in m.rank(["y", "x"], 5, allow=lambda i: i != "q")] == ["p"]


def test_fallback_fills_cold_histories_below_real_scores():
    m = OnlineTransitions()
    m.learn_sequence(["a", "b"])
    ranked = m.rank(["a"], 3, fallback=[("t1", 9.0), ("b", 8.0), ("t2", 7.0)])
    assert [b for b, _ in ranked] == ["b", "t1", "t2"]
    assert ranked[0][1] > ranked[1][1] > ranked[2][1]
    assert [b for b, _ in m.rank([], 2, fallback=[("t1", 1.0), ("t2", 0.5)])] == ["t1", "t2"]


def test_matches_the_offline_transition_baseline_ranking():
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, 30, size=rng.integers(2, 8)) for _ in range(300)]
    offline = Transition(30).fit(seqs)
    online = OnlineTransitions()
    for s in seqs:
        online.learn_sequence([str(i) for i in s])
    history = seqs[0]
    off = offline.score([history])[0].numpy()
    on = online.scores([str(i) for i in history])
    for item, score in on.items():
        assert math.isclose(score, off[int(item)] - 1e-3 * offline.popularity[int(item)], rel_tol=1e-4, abs_tol=1e-6)


def test_neighbour_lists_stay_bounded():
    from models.rec.online_transitions import OnlineTransitionConfig
    m = OnlineTransitions(OnlineTransitionConfig(max_neighbours=10))
    for i in range(100):
        m.learn_one("hub", f"i{i}")
    assert len(m.next["hub"]) <= 20


def test_copies_share_counts_until_either_side_learns():
    import copy

    from models.online.counts import TransitionCounts

    original = TransitionCounts(gaps=2, reverse=True)
    for history, target in ((["a"], "b"), (["a", "b"], "c"), (["x"], "b")):
        original.add_sample(history, target)
    snapshot = copy.deepcopy(original)
    assert snapshot.next["a"] is original.next["a"]  # shared, not copied
    original.add_sample(["a"], "z")  # the original learns: the snapshot must not see it
    snapshot.add_sample(["a"], "y")  # nor the original what the snapshot learns
    assert original.next["a"] == {"b": 1, "z": 1} and snapshot.next["a"] == {"b": 1, "y": 1}
    assert original.out_degree["a"] == snapshot.out_degree["a"] == 2
    assert original.next["x"] is snapshot.next["x"]  # untouched sources stay shared
    again = copy.deepcopy(snapshot)
    snapshot.drop(["a"])
    again.add_sample(["a"], "y")
    assert "a" not in snapshot.next and again.next["a"] == {"b": 1, "y": 2}
    assert original.next["a"] == {"b": 1, "z": 1}
    kept = original.without(["x"])
    original.add_sample(["a", "b"], "q")
    assert kept.next["a"] == {"b": 1, "z": 1} and kept.neighbours[1]["a"] == {"c": 1}
    assert original.neighbours[1]["a"] == {"c": 1, "q": 1}


def test_weighted_sum_is_the_weighted_feature_list_summed_per_item():
    import random

    from models.online.counts import TransitionCounts

    counts = TransitionCounts(gaps=2, reverse=True)
    rng = random.Random(3)
    for _ in range(300):
        history = [f"i{rng.randrange(30)}" for _ in range(rng.randrange(1, 6))]
        counts.add_sample(history, f"i{rng.randrange(30)}")
    k = 4
    weights = [rng.uniform(-1.0, 2.0) for _ in range(counts.channels * k)]
    history = ["i1", "i7", "i3", "i7", "i12"]
    expected: dict[str, float] = {}
    for _, f, item, value in counts.features([history], k):
        expected[item] = expected.get(item, 0.0) + weights[f] * value
    assert counts.weighted_sum(history, k, weights) == expected  # the same numbers, bit for bit
    assert expected and counts.weighted_sum([], k, weights) == {}


def test_counts_survive_their_binary_form_exactly():
    import copy
    import random

    from models.online.counts import TransitionCounts

    counts = TransitionCounts(gaps=2, reverse=True)
    rng = random.Random(5)
    for _ in range(400):
        history = [f"é{rng.randrange(40)}" for _ in range(rng.randrange(0, 5))]  # non-ASCII ids too
        counts.add_sample(history, f"é{rng.randrange(40)}")
    counts.drop(["é3"])
    back = TransitionCounts(gaps=2, reverse=True)
    back.load_arrays(counts.to_arrays())
    assert back.neighbours == counts.neighbours and back.degrees == counts.degrees and back.edges() > 0
    assert back.to_json() == counts.to_json()
    snapshot = copy.deepcopy(back)  # loaded rows are owned: learning on must not touch a copy
    back.add_sample(["é1"], "new")
    assert "new" not in snapshot.next.get("é1", {}) and back.next["é1"]["new"] == 1
    empty = TransitionCounts()
    empty.load_arrays(TransitionCounts().to_arrays())
    assert empty.edges() == 0
