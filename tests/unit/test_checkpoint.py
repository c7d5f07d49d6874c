import json

import pytest
import torch

from models.checkpoint import load_checkpoint, latest_version, save_checkpoint, version_dirs


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


def test_version_folders_are_ordered_by_number_past_v9999(tmp_path):
    for name in ("v9998", "v10000", "v9999", "v0002", "vx", ".v10001-tmp", "v10001.old"):
        (tmp_path / "rec" / name).mkdir(parents=True)
    assert [p.name for p in version_dirs(tmp_path / "rec")] == ["v0002", "v9998", "v9999", "v10000"]
    assert latest_version(tmp_path, "rec") == 10000
    assert save_checkpoint(tmp_path, "rec", {"w": torch.zeros(1)}, {}).name == "v10001"
    assert load_checkpoint(tmp_path / "rec").version == 10001
    assert version_dirs(tmp_path / "missing") == []


async def test_the_learner_resumes_from_v10000_and_prunes_the_oldest(tmp_path):
    """As text, v10000 sorts before v9996: the learner resumed from v9999 and pruned v10000."""
    from app.learner import KEEP_CHECKPOINTS, LearnerService, checkpoints, load_latest
    from app.metrics import Metrics
    from app.settings import Settings
    from models.online.versions import LearnerConfig, OnlineLearner
    from tests.unit.online_streams import chain_stream, small_model

    settings = Settings().replace(state_dir=tmp_path)
    directory = settings.runtime.online_model_dir
    for number in range(9995, 9999):
        (directory / f"v{number:04d}").mkdir(parents=True)
    service = LearnerService(settings, Metrics())
    service.learner = OnlineLearner(small_model(), config=LearnerConfig(min_samples=1, guard_ratio=0.01))
    service.learner.floor = 9998  # published before: the next versions are 9999 and 10000
    for seed in (1, 2):
        service.learner.step(chain_stream(10, seed=seed))
        assert service.learner.propose(float(seed)).action == "promote"
        await service._checkpoint()
    assert [p.name for p in checkpoints(directory)] == [f"v{n}" for n in range(10000 - KEEP_CHECKPOINTS + 1, 10001)]
    learner, offsets = load_latest(settings)
    assert learner.version == 10000 and "samples" in offsets
