"""The time-split protocol: checkpoint on the first part, then score-before-learn on the rest."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from app.cli import main
from models.data.sequences import Dataset
from models.data.synthetic_shop import ShopConfig, SyntheticShop
from models.rec.hybrid import HybridConfig
from models.rec.online_neural import OnlineSASRecConfig
from models.rec.time_split import TimeSplitConfig, evaluate_time_split, split_events
from models.rec.training import TrainConfig

SMALL = TimeSplitConfig(batch=64, offline=HybridConfig(dim=16, layers=1, heads=1, max_len=10, dropout=0.1,
                                                       train=TrainConfig(epochs=8, negatives=64)),
                        online=OnlineSASRecConfig(negatives=64, row_lr=0.05, dense_lr=1e-3))


def _views(seed: int, n: int) -> list[tuple[str, str]]:
    shop = SyntheticShop(ShopConfig(shoppers=200, items=120, seed=seed))
    return [(e["user_id"], e["item_id"]) for e in shop.events(n, 0.0, 1.0) if e["type"] == "view"]


def shifted_shop(before: int, after: int) -> tuple[Dataset, list[tuple[int, int]]]:
    """Views of one shop, then of another with the same ids but new successors and popularity."""
    users: dict[str, int] = {}
    items: dict[str, int] = {}
    events = [(users.setdefault(u, len(users)), items.setdefault(i, len(items)))
              for u, i in _views(0, before) + _views(1, after)]
    sequences: list[list[int]] = [[] for _ in users]
    for u, i in events:
        sequences[u].append(i)
    return Dataset(list(users), list(items), [np.asarray(s, dtype=np.int64) for s in sequences]), events


def test_split_keeps_time_order_and_marks_what_the_checkpoint_knew():
    events = [(0, 0), (1, 1), (0, 2), (1, 3), (0, 4)]
    stream = split_events(2, 6, events, TimeSplitConfig(split=0.6, max_events=1))
    assert stream.train == [[0, 2], [1]] and stream.streamed == [(1, 3)]
    assert stream.known.tolist() == [True, True, True, False, False, False]


def test_online_learning_beats_the_frozen_checkpoint_after_the_shop_changes():
    data, events = shifted_shop(4000, 1000)
    cut = sum(1 for _ in _views(0, 4000))
    result = evaluate_time_split(data, events, replace(SMALL, split=cut / len(events)))
    for table in (result.served, result.neural_only):
        for name in ("online", "frozen", "retrained"):
            assert set(table[name]) == {"HR@10", "NDCG@10"} and 0.0 <= table[name]["NDCG@10"] <= 1.0
    assert set(result.served) == {"online", "frozen", "counts", "retrained"}
    assert set(result.new_items) == set(result.neural_only["new_items"]) == {"online", "frozen"}
    served, neural = result.served, result.neural_only
    # the checkpoint learned the old successors: only learning from the stream finds the new ones,
    # served as a blend with the count model, and by the neural model alone
    assert served["online"]["NDCG@10"] > 1.5 * served["frozen"]["NDCG@10"]
    assert neural["online"]["NDCG@10"] > 1.5 * neural["frozen"]["NDCG@10"]
    assert served["retrained"]["NDCG@10"] > served["frozen"]["NDCG@10"]
    # the served blend is not one of its parts under another name
    assert served["online"] != neural["online"] and served["online"] != served["counts"]


@pytest.fixture
def small_file(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMRANK_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("STREAMRANK_REC_DIM", "16")
    monkeypatch.setenv("STREAMRANK_REC_NEGATIVES", "32")
    data, _ = shifted_shop(1500, 300)
    path = tmp_path / "shop.txt"
    path.write_text("".join(f"{u} {' '.join(data.items[i] for i in s)}\n" for u, s in zip(data.users, data.sequences)))
    return path


def test_the_command_ends_with_the_issues_json_line(small_file, capsys):
    code = main(["evaluate", "online", "--protocol", "time-split", "--data", str(small_file), "--epochs", "2",
                 "--max-events", "200", "--batch", "50", "--threads", "1"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(result) == ["online", "frozen", "counts", "retrained", "new_items", "neural_only"]
    assert all(set(result[name]) == {"HR@10", "NDCG@10"} for name in ("online", "frozen", "counts", "retrained"))
    assert set(result["new_items"]) == {"online", "frozen"}
    assert set(result["neural_only"]) == {"online", "frozen", "retrained", "new_items"}
