import copy
import random

import numpy as np
import pytest
import torch

from models.online.serving import ServingRecModel
from models.online.versions import LearnerConfig, OnlineLearner, Version
from tests.unit.online_streams import batches, chain_stream, rewired_targets, shuffled_targets, small_model


def make_learner(model=None, **config) -> OnlineLearner:
    # Every sample scored: these tests size their windows and thresholds in samples fed.
    config = LearnerConfig(**{"min_samples": 300, "window": 10_000, "validation_share": 1.0, **config})
    return OnlineLearner(model or small_model(), config=config)


def feed(learner, samples, size=64):
    for batch in batches(samples, size):
        learner.step(batch)


def rows_of(model):
    return [s.weights.clone() for s in model.store.shards]


def models_equal(a, b) -> bool:
    rows = all(torch.equal(x.weights, y.weights) and torch.equal(x.accum, y.accum)
               for x, y in zip(a.store.shards, b.store.shards))
    dense = all(torch.equal(p, q) for p, q in zip(a.dense.parameters(), b.dense.parameters()))
    return rows and dense and a.counts.next == b.counts.next


def test_guard_refuses_a_poisoned_version_and_resets_the_live_model():
    # the window holds the latest 300 samples: the guard judges on the traffic after the flood
    learner = make_learner(min_samples=150, window=300)
    feed(learner, chain_stream(60, seed=1))
    assert learner.propose(now=1.0).action == "promote"
    feed(learner, shuffled_targets(chain_stream(1000, seed=2)))  # a flood of shuffled targets
    feed(learner, chain_stream(100, seed=3))  # real traffic again
    decision = learner.propose(now=2.0)
    assert decision.action == "refuse", decision
    assert models_equal(learner.live_rec, learner.serving_rec)
    assert learner.live_rec is not learner.serving_rec
    feed(learner, chain_stream(100, seed=4))
    decision = learner.propose(now=3.0)
    assert decision.action == "promote" and decision.version.number == 2 and decision.version.parent == 1


def test_a_promoted_version_that_degrades_is_rolled_back_to_the_last_good_one():
    learner = make_learner(min_samples=150, window=300)
    feed(learner, chain_stream(60, seed=1))
    assert learner.propose(now=1.0).action == "promote"
    feed(learner, chain_stream(60, seed=2))
    assert learner.propose(now=2.0).action == "promote"  # version 1 passed its probation
    good = copy.deepcopy(learner.serving_rec)
    # A bot floods one window with rewired targets: on that window the live model fits the
    # flood better than serving does, so the guard promotes what it learned from it.
    feed(learner, rewired_targets(chain_stream(1000, seed=3)))
    decision = learner.propose(now=3.0)
    assert decision.action == "promote" and learner.version == 3 and learner.on_probation
    feed(learner, chain_stream(100, seed=4))  # real traffic: version 3 serves it worse than 2
    decision = learner.propose(now=4.0)
    assert decision.action == "rollback", decision
    assert decision.metrics["good"]["version"] == 2
    assert decision.metrics["serving"]["NDCG@10"] < learner.config.guard_ratio * decision.metrics["good"]["NDCG@10"]
    version = decision.version
    assert version.full and version.number == 4 and version.parent == 3
    assert version.metrics["rollback_to"] == 2 and version.metrics["rolled_back"] == 3
    assert models_equal(learner.serving_rec, good) and models_equal(learner.live_rec, good)
    assert not learner.on_probation  # what it rolled back to is the last good version
    # gateways rebuild version 2 from the full version
    rebuilt = ServingRecModel.from_model(good, 0).apply(Version.from_bytes(version.to_bytes()))
    assert [i for i, _ in rebuilt.rank(["x3"], 3)] == [i for i, _ in good.rank(["x3"], 3)]


def test_a_version_that_serves_as_well_as_the_last_good_one_leaves_probation():
    learner = make_learner(min_samples=150, window=300)
    feed(learner, chain_stream(60, seed=1))
    learner.propose(now=1.0)
    assert learner.on_probation and learner.good[0] == 0
    feed(learner, chain_stream(60, seed=2))
    decision = learner.propose(now=2.0)
    assert decision.action == "promote" and learner.good[0] == 1  # 1 confirmed, 2 now on probation
    assert decision.metrics["good"]["samples"] == decision.metrics["serving"]["samples"] == 180


def test_probation_survives_a_checkpoint(tmp_path):
    learner = make_learner(min_samples=150, window=300)
    feed(learner, chain_stream(60, seed=1))
    learner.propose(now=1.0)
    feed(learner, chain_stream(60, seed=2))
    learner.propose(now=2.0)
    feed(learner, rewired_targets(chain_stream(1000, seed=3)))
    learner.propose(now=3.0)
    feed(learner, chain_stream(40, seed=4))
    learner.save(tmp_path / "ckpt", offsets={})
    restored, _ = OnlineLearner.load(tmp_path / "ckpt")
    assert restored.on_probation and restored.good[0] == learner.good[0] == 2
    assert models_equal(restored.good[1], learner.good[1])
    for a in (learner, restored):
        feed(a, chain_stream(60, seed=5))
    assert [a.propose(now=4.0).action for a in (learner, restored)] == ["rollback", "rollback"]


def test_wait_below_min_samples():
    learner = make_learner(min_samples=10_000)
    feed(learner, chain_stream(50))
    assert learner.propose(now=1.0).action == "wait"
    assert learner.version == 0


def test_fusion_blends_changed_rows_and_dense_weights():
    learner = make_learner(fusion_alpha=0.25)
    feed(learner, chain_stream(200, seed=1))
    learner.propose(now=1.0)
    feed(learner, chain_stream(200, seed=2))
    live, serving = copy.deepcopy(learner.live_rec), copy.deepcopy(learner.serving_rec)
    version = learner.propose(now=2.0).version
    assert version is not None and version.row_ids
    ids, new, _ = live.store.export_rows(version.row_ids)
    _, old, _ = serving.store.export_rows(ids)
    _, fused, _ = learner.serving_rec.store.export_rows(ids)
    assert torch.allclose(fused, 0.25 * new + 0.75 * old, atol=1e-6)
    for p, q, f in zip(live.dense.parameters(), serving.dense.parameters(), learner.serving_rec.dense.parameters()):
        assert torch.allclose(f, 0.25 * p + 0.75 * q, atol=1e-6)
    assert models_equal(learner.live_rec, learner.serving_rec)  # live continues from the fused state
    assert learner.serving_rec.counts.next == live.counts.next  # counts: live's


def test_version_bytes_round_trip():
    learner = make_learner()
    feed(learner, chain_stream(200))
    version = learner.propose(now=5.0).version
    back = Version.from_bytes(version.to_bytes())
    assert (back.number, back.parent, back.created, back.row_ids) == (1, 0, 5.0, version.row_ids)
    assert torch.equal(back.rows, version.rows) and torch.equal(back.popularity, version.popularity)
    assert back.transitions.keys() == version.transitions.keys() and back.metrics == version.metrics
    assert all(np.array_equal(back.transitions[k], v) and back.transitions[k].dtype == v.dtype
               for k, v in version.transitions.items())
    assert version.transitions["c0.targets"].size > 0
    assert all(torch.equal(back.dense[k], v) for k, v in version.dense.items())


def test_a_version_published_with_json_counts_still_serves_the_same():
    """An SRV1 record (its counts in the JSON header) on the topic from before the counts were arrays."""
    import json
    import struct

    from safetensors.torch import save as save_tensors

    from models.online.counts import TransitionCounts
    from models.online.serving import serving_for
    from models.online.versions import MAGIC_V1

    learner = make_learner()
    feed(learner, chain_stream(200))
    version = learner.propose(now=5.0).version
    counts = TransitionCounts(gaps=learner.live_rec.counts.gaps, reverse=learner.live_rec.counts.reverse)
    counts.load_arrays(version.transitions)
    header = {k: v for k, v in version.__dict__.items() if k not in Version._TENSORS + Version._DICTS}
    header["transitions"] = counts.to_json()
    tensors = {name: getattr(version, name).contiguous() for name in Version._TENSORS}
    tensors |= {f"{d}.{k}": v.contiguous() for d in ("dense", "click_dense") for k, v in getattr(version, d).items()}
    blob = json.dumps(header).encode("utf-8")
    old = Version.from_bytes(MAGIC_V1 + struct.pack("<Q", len(blob)) + blob + save_tensors(tensors))
    assert isinstance(old.transitions, list) and old.transitions
    with pytest.raises(ValueError, match="read, never written"):
        old.to_bytes()
    new, legacy = serving_for(None, version), serving_for(None, old)
    assert new.counts.to_json() == legacy.counts.to_json() and new.counts.edges() > 0
    assert new.rank(["i0", "i1"], 10) == legacy.rank(["i0", "i1"], 10)


def test_serving_model_applies_versions_copy_on_write_and_ranks_like_live():
    # in-batch negatives only, so rows touched = items seen; the guard is off: this is about deltas
    learner = make_learner(small_model(negatives=0), guard_ratio=0.0)
    reader = learner.serving_model()
    sizes, rows = [], []
    for seed, chains in ((1, 12), (2, 3)):
        feed(learner, chain_stream(200, chains=chains, seed=seed))
        version = learner.propose(now=float(seed)).version
        wire = version.to_bytes()
        sizes.append(len(wire))
        rows.append(len(version.row_ids))
        old_rows = reader.rows.clone()
        new = reader.apply(Version.from_bytes(wire))
        assert torch.equal(reader.rows, old_rows) and reader.version == seed - 1  # old reader untouched
        reader = new
        assert reader.version == seed
        for history in (["x3"], ["x5", "y5"], ["z1", "x2"]):
            served = reader.rank(history, 5)
            live = learner.live_rec.rank(history, 5)
            assert [i for i, _ in served] == [i for i, _ in live]
            assert torch.allclose(torch.tensor([s for _, s in served]), torch.tensor([s for _, s in live]), atol=1e-5)
    # the second delta holds only the rows of the 3 chains seen since the first
    assert rows == [36, 9] and sizes[1] < sizes[0]
    half = learner.serving_model(fp16=True)
    assert half.memory_bytes() < reader.memory_bytes()
    assert [i for i, _ in half.rank(["x3"], 3)] == [i for i, _ in reader.rank(["x3"], 3)]


def test_rollback_pins_a_kept_version():
    learner = make_learner()
    feed(learner, chain_stream(200, seed=1))
    learner.propose(now=1.0)
    v1 = copy.deepcopy(learner.serving_rec)
    feed(learner, chain_stream(200, seed=2))
    learner.propose(now=2.0)
    full = learner.rollback(1, now=3.0)
    assert full.full and full.number == 3 and full.metrics == {"rollback_to": 1}
    assert models_equal(learner.live_rec, v1) and models_equal(learner.serving_rec, v1)
    rebuilt = ServingRecModel.from_model(v1, 0).apply(Version.from_bytes(full.to_bytes()))
    assert [i for i, _ in rebuilt.rank(["x3"], 3)] == [i for i, _ in v1.rank(["x3"], 3)]


def test_save_and_load_resume_exactly(tmp_path):
    learner = make_learner()
    feed(learner, chain_stream(200, seed=1))
    learner.propose(now=1.0)
    feed(learner, chain_stream(100, seed=2))
    learner.save(tmp_path / "learner", offsets={"events-0": 1234})
    restored, offsets = OnlineLearner.load(tmp_path / "learner")
    assert offsets == {"events-0": 1234}
    nxt = chain_stream(100, seed=5) + [(["x1"], "brand-new"), ([], "other")]
    for a in (learner, restored):
        feed(a, nxt)
    assert models_equal(learner.live_rec, restored.live_rec)
    assert learner.live_rec.rank(["x1"], 5) == restored.live_rec.rank(["x1"], 5)
    assert learner.propose(now=2.0).metrics == restored.propose(now=2.0).metrics


def test_a_checkpoint_keeps_its_counts_binary_and_old_json_checkpoints_still_load(tmp_path):
    import orjson

    from models.online import state

    learner = make_learner()
    feed(learner, chain_stream(200, seed=1))
    path = learner.save(tmp_path / "learner", offsets={})
    tensors, card = state.read_state_dir(path)
    assert card["models"]["live_rec"]["counts"] == state.COUNTS_FORMAT  # no count in the JSON card
    assert any(k.startswith("live_rec.counts.") for k in tensors)
    assert card["models"]["live_rec"]["store"]["shards"] == len(learner.live_rec.store.shards)  # row maps too
    binary, _ = OnlineLearner.load(path)
    for x, y in zip(binary.live_rec.store.shards, learner.live_rec.store.shards):
        assert (list(x.rows.items()), x.free, x.ids) == (list(y.rows.items()), y.free, y.ids)
    assert binary.live_rec.store.counts == learner.live_rec.store.counts
    # The JSON form older checkpoints hold: the counts in the card, none in the tensors.
    for name, meta in card["models"].items():
        if "counts" in meta:
            model = getattr(learner, name)
            meta["counts"] = model.counts.to_json()
        meta["store"] = getattr(learner, name).store.state()[1]
    old = {k: v for k, v in tensors.items() if ".counts." not in k and ".store_meta." not in k}
    state.write_state_dir(tmp_path / "old", old, card)
    restored, _ = OnlineLearner.load(tmp_path / "old")
    assert restored.live_rec.counts.neighbours == learner.live_rec.counts.neighbours
    assert models_equal(restored.live_rec, learner.live_rec)
    assert len(orjson.dumps(card)) > len((path / state.CARD_FILE).read_bytes())


def test_numbers_go_above_the_floor_and_a_republished_state_takes_a_new_one():
    learner = make_learner(min_samples=10)
    learner.floor = 7  # an earlier run published up to 7
    feed(learner, chain_stream(20, seed=1))
    first = learner.propose(now=1.0).version
    assert (first.number, first.parent) == (8, 0)
    whole = learner.republish(now=2.0, metrics={"republished": True})
    assert whole.full and (whole.number, whole.parent) == (9, 8) and learner.version == 9
    assert 9 in learner.held() and 8 not in learner.held()
    rebuilt = ServingRecModel.from_model(learner.serving_rec, 0).apply(Version.from_bytes(whole.to_bytes()))
    assert [i for i, _ in rebuilt.rank(["x3"], 3)] == [i for i, _ in learner.serving_rec.rank(["x3"], 3)]
    learner.floor = 20
    assert learner.rollback(0, now=3.0).number == 21  # rollbacks too


def test_a_reader_holds_each_rows_strongest_successors_and_ranks_as_a_fresh_snapshot():
    """A reader keeps the `features_per_source` strongest successors of each row it is sent (all
    that serving reads); a delta resends a changed row whole, so a reader moved through deltas
    holds and ranks what a snapshot of the same learner does."""
    rng = random.Random(3)

    def stream(n):
        return [([f"i{min(rng.randrange(30), rng.randrange(30))}" for _ in range(3)], f"i{rng.randrange(30)}")
                for _ in range(n)]

    learner = make_learner(small_model(negatives=0, features_per_source=3), guard_ratio=0.0)
    reader = learner.serving_model()
    for now in (1.0, 2.0, 3.0):
        feed(learner, stream(400))
        reader = reader.apply(Version.from_bytes(learner.propose(now=now).version.to_bytes()))
    snapshot = learner.serving_model()
    whole = learner.serving_rec.counts
    assert reader.counts.neighbours == snapshot.counts.neighbours and reader.counts.degrees == whole.degrees
    assert any(len(row) > 3 for row in whole.next.values())  # rows were cut
    assert all(len(row) <= 3 for table in reader.counts.neighbours for row in table.values())
    for history in (["i1", "i2", "i3"], ["i0"], ["i4", "i0"]):
        assert reader.rank(history, 10) == snapshot.rank(history, 10)
