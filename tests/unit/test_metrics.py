import math

import pytest
import torch

from models.metrics import batch_ranks, hr_at_k, ndcg_at_k, ndcg_at_k_ranks, rank_metrics, recall_at_k, target_ranks
from models.online.scoring import target_ranks as sharded_ranks


def test_rank_counts_ties_against_target():
    scores = torch.tensor([[0.5, 0.9, 0.5, 0.1], [1.0, 1.0, 1.0, 1.0], [3.0, 2.0, 1.0, 0.0]])
    ranks = target_ranks(scores, torch.tensor([0, 3, 0]))
    # row 0: 0.9 and the tied 0.5 are ahead -> 2; row 1: all tied -> last (3); row 2: best -> 0
    assert ranks.tolist() == [2, 3, 0]


def test_masked_history_cannot_outrank_and_target_is_never_masked():
    scores = torch.tensor([[5.0, 4.0, 3.0, 2.0]])
    ranks = batch_ranks(scores.clone(), torch.tensor([2]), [[0, 1]])
    assert ranks.tolist() == [0]
    # target also in history (repeat consumption): it stays rankable
    ranks = batch_ranks(scores.clone(), torch.tensor([2]), [[0, 2]])
    assert ranks.tolist() == [1]


def test_target_with_minus_inf_ranks_last():
    scores = torch.tensor([[float("-inf"), float("-inf"), 1.0]])
    assert target_ranks(scores, torch.tensor([0])).tolist() == [2]


def test_sharded_ranks_follow_the_flat_rule():
    """The online model scores its catalogue in tables (column blocks, maybe on several devices):
    its ranks are those of the whole matrix, ties, -inf and NaN included; unknown targets None."""
    nan, inf = float("nan"), float("inf")
    scores = torch.tensor([[0.5, 0.9, 0.5, 0.1, 0.5], [1.0, 1.0, 1.0, 1.0, 1.0], [3.0, 2.0, 1.0, 0.0, -1.0],
                           [-inf, -inf, 1.0, 2.0, 0.0], [nan, 1.0, 2.0, 0.0, 0.0]])
    targets = torch.tensor([0, 3, 0, 1, 0])
    flat = target_ranks(scores, targets).tolist()
    assert flat == [3, 4, 0, 4, 4]
    tables = [scores[:, :2], scores[:, 2:3], scores[:, 3:]]
    where = [(0, 0), (2, 0), (0, 0), (0, 1), (0, 0)]
    assert sharded_ranks(tables, where) == flat
    assert sharded_ranks(tables, [None, None, (1, 0), None, None]) == [None, None, 2, None, None]
    assert sharded_ranks(tables, []) == []


def test_hr_and_ndcg_by_hand():
    ranks = torch.tensor([0, 1, 4, 9, 10, 30])
    assert hr_at_k(ranks, 5) == pytest.approx(3 / 6)
    assert hr_at_k(ranks, 10) == pytest.approx(4 / 6)
    expected = (1 + 1 / math.log2(3) + 1 / math.log2(6) + 1 / math.log2(11)) / 6
    assert ndcg_at_k_ranks(ranks, 10) == pytest.approx(expected)
    m = rank_metrics(ranks)
    assert list(m) == ["HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10", "NDCG@20"]
    assert m["HR@20"] == pytest.approx(5 / 6)


def test_graded_ndcg_by_hand():
    gains = {"a": 2.0, "b": 1.0, "c": 0.0, "z": 2.0}  # z judged but not retrieved
    got = ndcg_at_k(["b", "x", "a"], gains, k=3)
    dcg = (2**1 - 1) / math.log2(2) + 0 + (2**2 - 1) / math.log2(4)
    idcg = 3 / math.log2(2) + 3 / math.log2(3) + 1 / math.log2(4)
    assert got == pytest.approx(dcg / idcg)
    assert ndcg_at_k(["z", "a", "b"], gains, k=3) == pytest.approx(1.0)
    assert ndcg_at_k(["a"], {"a": 0.0}, k=10) == 0.0
    # k cuts the ranking
    assert ndcg_at_k(["x", "a"], {"a": 1.0}, k=1) == 0.0


def test_recall_at_k():
    assert recall_at_k(["a", "b", "c", "d"], {"a", "d", "q"}, 3) == pytest.approx(1 / 3)
    assert recall_at_k(["a"], set(), 3) == 0.0
