"""NeuralRecVersion: a frozen, servable copy of the online SASRec that ranks as the model does."""
from __future__ import annotations

import pytest
import torch

from models.rec.neural_version import NeuralRecVersion
from models.rec.online_neural import OnlineSASRec, OnlineSASRecConfig
from models.rec.sasrec import SASRec, SASRecConfig

ITEMS = [f"i{i}" for i in range(40)]


def _model() -> OnlineSASRec:
    torch.manual_seed(0)
    sasrec = SASRec(SASRecConfig(n_items=len(ITEMS), dim=16, layers=2, heads=2, max_len=8, dropout=0.0)).eval()
    return OnlineSASRec.warm_start(sasrec, ITEMS, OnlineSASRecConfig(num_shards=2, negatives=16, seed=1))


def test_a_version_ranks_as_the_model_it_was_taken_from():
    model = _model()
    version = NeuralRecVersion.from_model(model, "t", blend=0.3)
    for history in (["i3"], ["i3", "i7", "i1"], [f"i{i}" for i in range(12)], ["i5", "unknown", "i9"]):
        expected = model.rank(history, 10, exclude=history)
        got = version.rank(history, 10, exclude=history)
        assert [i for i, _ in got] == [i for i, _ in expected]
        # scores: the model's softmax over every item (history included), at the ranked items
        probability = dict(zip(model.catalogue(), torch.softmax(model.scores([history])[0], 0).tolist()))
        assert [s for _, s in got] == pytest.approx([probability[i] for i, _ in got], rel=1e-4)
    assert version.rank(["unknown"], 10) == []


def test_ranking_many_at_once_equals_ranking_each_with_its_filter_and_exclusions():
    version = NeuralRecVersion.from_model(_model(), "t", blend=0.3)
    requests = [(["i1", "i2"], 5, ["i2"], None), (["nothing"], 5, [], None),
                (["i4"], 3, [], lambda item: item.endswith("7")), (["i9", "i8", "i7"], 8, ["i9", "i8", "i7"], None)]
    together, alone = version.rank_many(requests), [version.rank(*r) for r in requests]
    assert [[i for i, _ in r] for r in together] == [[i for i, _ in r] for r in alone]
    for a, b in zip(together, alone):  # padded to the longest history in the batch: float noise only
        assert [s for _, s in a] == pytest.approx([s for _, s in b], abs=1e-5)
    assert together[1] == [] and len(together[2]) == 3 and all(item.endswith("7") for item, _ in together[2])


def test_a_version_is_frozen_while_the_model_learns_on():
    model = _model()
    version = NeuralRecVersion.from_model(model, "t", blend=0.3)
    before = version.rank(["i1", "i2"], 10)
    for _ in range(5):
        model.learn([["i1", "i2", "i30"], ["i2", "i30"]] * 4)
    assert version.rank(["i1", "i2"], 10) == before
    assert model.rank(["i1", "i2"], 10) != before


def test_saved_and_loaded_it_ranks_the_same_and_the_learner_can_learn_on_from_it(tmp_path):
    model = _model()
    version = NeuralRecVersion.from_model(model, "t", blend=0.25)
    path = version.save(tmp_path, {"kind": "test"})
    loaded = NeuralRecVersion.from_checkpoint(path)
    assert loaded.blend == 0.25 and loaded.item_ids == version.item_ids and loaded.version == "rec-neural-v1"
    assert loaded.rank(["i3", "i4"], 10) == version.rank(["i3", "i4"], 10)
    again = loaded.to_online(OnlineSASRecConfig(num_shards=1, negatives=16))
    assert [i for i, _ in again.rank(["i3", "i4"], 10)] == [i for i, _ in version.rank(["i3", "i4"], 10)]
    again.learn([["i3", "i4", "i5"]] * 8)
    assert loaded.rank(["i3", "i4"], 10) == version.rank(["i3", "i4"], 10)  # the loaded version did not move


def test_a_blend_weight_outside_0_to_1_is_refused():
    version = NeuralRecVersion.from_model(_model(), "t", blend=0.0)
    with pytest.raises(ValueError, match="blend"):
        NeuralRecVersion("x", version.item_ids, version.rows, version.dense, blend=1.5)
