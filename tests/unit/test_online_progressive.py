import math

import pytest

from models.online.progressive import WindowMetric


def test_ranks_give_hr_and_ndcg_over_the_window_only():
    w = WindowMetric(window=3)
    w.add_ranks([50, 0, 1, None])  # 50 slides out; None is a miss
    assert w.count == 3
    assert w.hr(10) == pytest.approx(2 / 3)
    assert w.ndcg(10) == pytest.approx((1.0 + 1 / math.log2(3)) / 3)


def test_auc_is_exact_with_ties_counted_half():
    w = WindowMetric(window=10)
    w.add_clicks([0.9, 0.8, 0.8, 0.1], [1, 0, 1, 0])
    # positive pairs: (0.9>0.8) 1, (0.9>0.1) 1, (0.8=0.8) .5, (0.8>0.1) 1 -> 3.5 / 4
    assert w.auc() == pytest.approx(3.5 / 4)
    assert w.click_count == 4


def test_log_loss_and_one_class_auc():
    w = WindowMetric(window=2)
    w.add_clicks([0.5, 0.25, 0.8], [0, 1, 1])
    assert w.log_loss() == pytest.approx(-(math.log(0.25) + math.log(0.8)) / 2)
    one = WindowMetric(window=5)
    one.add_clicks([0.3, 0.6], [1, 1])
    assert one.auc() is None
    assert WindowMetric(3).log_loss() is None
