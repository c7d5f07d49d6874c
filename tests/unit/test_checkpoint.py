import json

import pytest
import torch

from models.checkpoint import load_checkpoint, latest_version, save_checkpoint


def test_round_trip_and_versions(tmp_path):
    assert latest_version(tmp_path, "rec") is None
    t = {"w": torch.randn(3, 4), "b": torch.arange(5)}
    p1 = save_checkpoint(tmp_path, "rec", t, {"metrics": {"NDCG@10": 0.05}, "settings": {"dim": 4}})
    p2 = save_checkpoint(tmp_path, "rec", {"w": torch.zeros(2)}, {"metrics": {}})
    assert p1 == tmp_path / "rec" / "v0001" and p2.name == "v0002"
    assert latest_version(tmp_path, "rec") == 2
    ck = load_checkpoint(p1)
    assert ck.version == 1 and torch.equal(ck.tensors["w"], t["w"]) and torch.equal(ck.tensors["b"], t["b"])
    assert ck.card["metrics"]["NDCG@10"] == 0.05 and "created" in ck.card
    card = json.loads((p1 / "card.json").read_text())
    assert card["tensors"]["w"] == [3, 4]
    assert load_checkpoint(tmp_path / "rec").version == 2  # a name folder means its latest


def test_missing_checkpoint_and_bad_name(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nothing")
    with pytest.raises(ValueError):
        save_checkpoint(tmp_path, "../x", {}, {})
