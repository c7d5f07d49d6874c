"""The serving model's sparse ranking (embedding off) equals scoring the whole table."""
import random

import pytest
import numpy as np
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
        assert serving._term_bytes == sum(t[0].nbytes + t[1].nbytes for t, _ in serving._terms.values() if t is not None)
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


def _learned_versions():
    """A learner on clustered walks: its first version, then a delta that changes some sources'
    counts and adds rows for items never seen before."""
    from models.online.config import LearnerConfig
    from models.online.versions import OnlineLearner

    rng = random.Random(11)
    learner = OnlineLearner(OnlineRecModel(OnlineRecConfig(num_shards=1, capacity=2000, dim=8)),
                            config=LearnerConfig(min_samples=1, guard_ratio=0.0))

    def walks(prefix, n):
        out = []
        for _ in range(n):
            start = rng.randrange(40)
            walk = [f"{prefix}{(start + step * 3) % 60}" for step in range(4)]
            out += [(walk[:j], walk[j]) for j in range(1, 4)]
        return out

    learner.step(walks("i", 400))
    first = learner.propose(1.0).version
    learner.step(walks("i", 30) + [(["i1"], f"new{n}") for n in range(5)] + walks("new", 40))
    second = learner.propose(2.0).version
    assert first is not None and second is not None and not second.evicted
    return first, second


def test_a_version_keeps_the_terms_of_items_whose_counts_it_does_not_change():
    from models.online.counts import TransitionCounts
    from models.online.serving import serving_for

    first, second = _learned_versions()
    reader = serving_for(None, first)
    histories = [[f"i{n}"] for n in range(0, 60, 2)] + [["i1", "i4", "i7"], ["i3", "i9"]]
    for history in histories:
        reader.rank(history, 10)
    changed = TransitionCounts(gaps=reader.counts.gaps)
    changed.upsert_arrays(second.transitions)
    upserted = set(changed.neighbours[0]) | {a for t in changed.neighbours for a in t}
    carried = reader.apply(second)
    same = {item for item in reader._terms if carried._terms[item][0] is reader._terms[item][0]}
    assert same and upserted & set(reader._terms)  # some entries stay, some must be found again
    assert not same & upserted
    fresh = reader.apply(second)
    fresh._terms, fresh._term_bytes = {}, 0
    # The others were found again while the version was built, as a model without a memo finds them.
    for item in set(reader._terms) - same:
        terms, missing = carried._terms[item]
        want = fresh._item_terms(item)
        assert missing == fresh._terms[item][1]
        assert (terms is None and want is None) or all(np.array_equal(a, b) for a, b in zip(terms, want))
    fresh._terms, fresh._term_bytes = {}, 0
    assert carried._term_bytes == sum(t[0].nbytes + t[1].nbytes for t, _ in carried._terms.values() if t is not None)
    for history in histories + [["i1"], ["new3"]]:
        assert carried.rank(history, 20) == fresh.rank(history, 20)  # the same lists, bit for bit


def test_a_terms_entry_goes_when_a_successor_without_a_row_gets_one():
    from models.online.serving import serving_for
    from models.online.versions import Version

    first, _ = _learned_versions()
    reader = serving_for(None, first)
    source, other = "i1", "i4"
    counts = reader.counts.empty_like()
    for c, (table, degree) in enumerate(zip(reader.counts.neighbours, reader.counts.degrees)):
        if source in table:
            counts.neighbours[c][source] = type(table[source])({**table[source], "zz": 50})
            counts.degrees[c][source] = degree[source] + 50
    only_counts = Version(number=first.number + 1, parent=first.number, created=2.0, dense=first.dense,
                          transitions=counts.to_arrays([source]))
    before = reader.apply(only_counts)  # "zz" is a successor of source, with no row yet
    assert "zz" not in dict(before.rank([source], 50))
    before.rank([other], 10)
    assert before._terms[source][1] == ("zz",) and before._terms[other][1] == ()
    row = Version(number=first.number + 2, parent=first.number + 1, created=3.0, dense=first.dense, row_ids=["zz"],
                  rows=torch.zeros(1, first.rows.shape[1]), pop_ids=["zz"], popularity=torch.tensor([1.0]))
    after = before.apply(row)
    assert after._terms[other][0] is before._terms[other][0]  # carried over
    assert after._terms[source][0] is not before._terms[source][0] and after._terms[source][1] == ()  # found again
    assert "zz" in dict(after.rank([source], 50))  # found again, with the new row


def test_a_version_is_built_while_requests_add_to_its_parents_memo():
    """The build runs in a thread; a collection during it runs the gc callbacks (Python), and
    the loop may then add an entry to the parent's memo. Iterating the memo itself failed
    ("dictionary changed size during iteration") and the gateway refused the version."""
    import gc
    from models.online.serving import serving_for

    first, second = _learned_versions()
    reader = serving_for(None, first)
    for n in range(0, 60, 2):
        reader.rank([f"i{n}"], 10)
    # Entries of items without counts: more than the 2-tuple free list holds (2,000), so that
    # iterating the memo's items allocates, as a busy gateway's memo does.
    reader._terms.update({f"cold{n}": (None, ()) for n in range(5000)})
    added = iter(range(10**6))

    def a_request_meanwhile(phase, info):  # stands for the loop, given the GIL by a callback
        if phase == "start":
            reader._terms[f"late{next(added)}"] = (None, ())

    threshold = gc.get_threshold()
    gc.callbacks.append(a_request_meanwhile)
    gc.set_threshold(1)  # a collection at (almost) every allocation
    try:
        built = reader.apply(second)
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(a_request_meanwhile)
    assert next(added) > 0  # the memo did grow during the build
    assert built.rank(["i2"], 10) == serving_for(None, first).apply(second).rank(["i2"], 10)


def test_emptying_a_replaced_version_leaves_the_next_one_whole():
    """The next version shares the replaced one's rows (copy-on-write): emptying the replaced
    one's tables and memo drops only its own references."""
    from models.online.serving import serving_for
    from models.online.versions import LearnerConfig, OnlineLearner
    from models.online.click_model import OnlineClickModel
    from models.steps import run_steps

    rng = random.Random(5)
    learner = OnlineLearner(OnlineRecModel(OnlineRecConfig(num_shards=1, capacity=500, dim=8)), OnlineClickModel(),
                            LearnerConfig(min_samples=1, guard_ratio=0.01))
    found = []
    for v in range(1, 4):
        learner.step([([f"i{rng.randrange(40)}" for _ in range(3)], f"i{rng.randrange(40)}") for _ in range(300)])
        decision = learner.propose(float(v))
        assert decision.action == "promote", decision.reason
        found.append(decision.version)
    old = serving_for(serving_for(None, found[0]), found[1])
    histories = [[f"i{n}", f"i{(n * 7) % 40}"] for n in range(40)]
    for history in histories:
        old.rank(history, 10)  # fills the memo the next version carries
    new = serving_for(old, found[2])
    expected = [new.rank(h, 10) for h in histories]
    run_steps(old.emptied_in_steps())
    assert not any(old.counts.neighbours) and not old._terms
    assert [new.rank(h, 10) for h in histories] == expected
    fresh = serving_for(serving_for(serving_for(None, found[0]), found[1]), found[2])
    assert [fresh.rank(h, 10) for h in histories] == expected
