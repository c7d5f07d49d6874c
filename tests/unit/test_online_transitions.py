import math

import numpy as np
import pytest

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

    rng = random.Random(3)
    counts = _counts_of_random_samples(rng, 300, 5, lambda: f"i{rng.randrange(30)}", lambda: f"i{rng.randrange(30)}")
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


def test_a_delta_in_binary_form_replaces_rows_as_its_json_did(monkeypatch):
    import random

    from models.online import counts as counts_module
    from models.online.counts import TransitionCounts

    monkeypatch.setattr(counts_module, "SLICE", 2)  # ids and successors read in many small slices
    rng = random.Random(7)

    def learned(seed_items, n):
        counts = TransitionCounts(gaps=2, reverse=True)
        for _ in range(n):
            history = [f"é{rng.randrange(seed_items)}" for _ in range(rng.randrange(0, 4))]
            counts.add_sample(history, f"é{rng.randrange(seed_items)}")
        return counts

    before, writer = learned(30, 600), learned(60, 900)
    writer.add("only-reverse", "x", channel=2)  # a row in one channel: the reader's others must go
    before.add_sample(["only-reverse", "y"], "z")
    changed = ["é1", "é2", "é7", "only-reverse", "not-in-writer"]
    assert all(s in before for s in changed[:4])
    for keep in (0, 1, 3):
        by_json, by_arrays = TransitionCounts(gaps=2, reverse=True), TransitionCounts(gaps=2, reverse=True)
        by_json.load_json(before.to_json(), keep=keep)
        by_arrays.load_arrays(before.to_arrays(), keep=keep)
        assert by_arrays.to_json() == by_json.to_json()  # pairs in the same order: ties cut alike
        by_json.load_json(writer.to_json(changed), keep=keep)
        assert by_arrays.upsert_arrays(writer.to_arrays(changed), keep=keep) == [s for s in changed if s in writer]
        assert by_arrays.to_json() == by_json.to_json() and by_arrays.degrees == by_json.degrees
        assert "only-reverse" not in by_arrays.neighbours[0] and "only-reverse" in by_arrays.neighbours[2]
        assert by_arrays.neighbours[0]["é3"] == by_json.neighbours[0]["é3"]  # unchanged rows stay
        if keep:
            assert max(map(len, by_arrays.neighbours[0].values())) == keep
    assert TransitionCounts().to_arrays(["nothing"]) == {}


def _features_by_hand(counts, histories, k, column, per_source):
    """features_among written out: each history item's `per_source` strongest successors
    (by count, ties in the Counter's order) per channel, among the items with a column."""
    import heapq

    out = set()
    for b, history in enumerate(histories):
        recent = history[::-1][:k]
        for ch, (table, degree) in enumerate(zip(counts.neighbours, counts.degrees)):
            for j, a in enumerate(recent):
                neighbours = table.get(a) or {}
                read = heapq.nlargest(per_source, neighbours, key=neighbours.__getitem__) if per_source else neighbours
                for item in read:
                    if item in column:
                        out.add((b, ch * k + j, column[item], round(neighbours[item] / math.sqrt(1 + degree[a]), 12)))
    return out


def test_features_among_read_each_sources_strongest_successors_among_the_columns():
    import random

    from models.online.counts import REMEMBER_FROM, TransitionCounts

    counts = TransitionCounts(gaps=2, reverse=True)
    rng = random.Random(7)
    for _ in range(6000):  # a few items followed by many: past the memo's and the cut's sizes
        history = [f"i{min(rng.randrange(200), rng.randrange(200))}" for _ in range(rng.randrange(1, 5))]
        counts.add_sample(history, f"i{rng.randrange(200)}")
    assert max(len(n) for n in counts.next.values()) > max(REMEMBER_FROM, 50)
    histories = [[f"i{rng.randrange(200)}" for _ in range(rng.randrange(0, 6))] for _ in range(60)] + [["i0", "i0", "i1"]]
    column = {f"i{i}": n for n, i in enumerate(rng.sample(range(200), 120))}
    for per_source in (0, 5, 50, 1000):
        b, f, c, v = counts.features_among(histories, 4, column, per_source)
        got = {(x, y, z, round(w, 12)) for x, y, z, w in zip(b, f, c, v)}
        assert len(got) == len(b)  # no term twice (a popular item's terms are kept, not repeated)
        assert got == _features_by_hand(counts, histories, 4, column, per_source), per_source
    everything = {item: n for n, item in enumerate(sorted({i for t in counts.next.values() for i in t}))}
    full = {(x, y, everything[item], round(w, 12)) for x, y, item, w in counts.features(histories, 4)}
    b, f, c, v = counts.features_among(histories, 4, everything, 0)
    assert {(x, y, z, round(w, 12)) for x, y, z, w in zip(b, f, c, v)} == full


def test_a_sources_strongest_successors_are_found_again_as_it_grows_or_changes():
    import copy

    from models.online.counts import TransitionCounts

    counts = TransitionCounts(max_neighbours=8)
    for item, n in (("a", 5), ("b", 4), ("c", 3), ("d", 2), ("e", 1)):
        for _ in range(n):
            counts.add("s", item)
    assert counts.strongest(0, "s", 2) == ("a", "b")
    for _ in range(3):  # degree 15 -> 18, under a quarter more: the kept answer stands
        counts.add("s", "e")
    assert counts.strongest(0, "s", 2) == ("a", "b")
    for _ in range(2):  # 20 >= 15 * 1.25: found again, "e" (6) now leads
        counts.add("s", "e")
    assert counts.strongest(0, "s", 2) == ("e", "a")
    snapshot = copy.deepcopy(counts)
    counts.add("s", "d")  # copy-on-write: a new Counter, so found again from it
    assert "s" not in counts._strongest[0]  # the kept answer went with the Counter it was for
    assert snapshot.strongest(0, "s", 3) == ("e", "a", "b")
    for item in "fghijklmnopq":  # past 2 * max_neighbours successors: pruned to the strongest 8
        counts.add("s", item)
    assert counts.strongest(0, "s", 3) == ("e", "a", "b") and all(i in counts.next["s"] for i in counts.strongest(0, "s", 8))
    counts.load_json([["s", 3, [["z", 3]]]])  # a replaced row is read afresh
    assert counts.strongest(0, "s", 2) == ("z",)
    counts.drop(["s"])
    assert counts._strongest == [{}]  # nothing kept for a dropped row


def test_a_readers_rows_are_compact_and_read_as_the_writers_counters():
    import random
    import tracemalloc

    from models.online.counts import Successors, TransitionCounts

    rng = random.Random(11)
    writer = _counts_of_random_samples(rng, 3000, 3, lambda: f"i{min(rng.randrange(300), rng.randrange(300))}",
                                       lambda: f"i{rng.randrange(300)}")
    whole = max(len(n) for t in writer.neighbours for n in t.values())
    reader = TransitionCounts(gaps=2, reverse=True)
    reader.load_arrays(writer.to_arrays(), keep=whole)  # every row whole: the same numbers
    assert all(type(n) is Successors for t in reader.neighbours for n in t.values())
    assert reader.neighbours == writer.neighbours and reader.to_json() == writer.to_json()
    histories = [[f"i{rng.randrange(300)}" for _ in range(rng.randrange(0, 5))] for _ in range(80)]
    column = {f"i{i}": n for n, i in enumerate(rng.sample(range(300), 200))}
    weights = [rng.random() for _ in range(3 * writer.channels)]
    for history in histories:
        assert reader.weighted_sum(history, 3, weights) == writer.weighted_sum(history, 3, weights)
    for per_source in (0, whole):
        mine, theirs = (set(zip(*c.features_among(histories, 3, column, per_source))) for c in (reader, writer))
        assert mine == theirs and mine

    learner = TransitionCounts(gaps=2, reverse=True)
    learner.load_arrays(writer.to_arrays(), keep=whole)
    row = learner.next["i0"]
    first = next(iter(row))
    learner.add("i0", first)  # writing to a read row makes it a Counter; the reader's stays
    assert learner.next["i0"][first] == row[first] + 1 and reader.next["i0"][first] == row[first]

    ints = Successors([(1, 2), (2, 1), (5, 1)])  # ids that equal counts: found only as ids
    assert (ints[1], ints[2], ints[5], len(ints), list(ints), 3 in ints, 2 in ints) == (2, 1, 1, 3, [1, 2, 5], False, True)
    assert dict(ints.items()) == {1: 2, 2: 1, 5: 1} and ints.keys() == (1, 2, 5) and ints.values() == (2, 1, 1)
    with pytest.raises(KeyError):
        ints[3]

    def held(keep):  # bytes of the counts loaded, as a reader (keep) or as a learner (0)
        out = TransitionCounts(gaps=2, reverse=True)
        arrays = writer.to_arrays()
        tracemalloc.start()
        out.load_arrays(arrays, keep=keep)
        size = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return size

    assert held(whole) < 0.75 * held(0)  # rows of about ten here; a shop's are mostly one or two (about half)


def _counts_of_random_samples(rng, samples, longest, history_item, target):  # type: ignore[no-untyped-def]
    """Counts (2 gaps, reverse) of `samples` samples: 1 to `longest` history items, then a target."""
    from models.online.counts import TransitionCounts

    counts = TransitionCounts(gaps=2, reverse=True)
    for _ in range(samples):
        history = [history_item() for _ in range(rng.randrange(1, longest + 1))]
        counts.add_sample(history, target())
    return counts
