"""bench/learner_shop.py on a small shop: the worker's samples through two learners, same stream."""
from __future__ import annotations

from tests.unit.test_plots import bench, bench_json


def test_the_shop_learner_bench_runs_both_learners_on_one_stream(monkeypatch, capsys):
    out = bench_json(bench("learner_shop"), monkeypatch, capsys,
                     "--events", "6000", "--items", "300", "--shoppers", "400", "--batch", "256")
    cut, every = out["learner"], out["all_successors"]
    assert out["rec_samples"] > 1000 and out["click_samples"] > 0  # searches make impressions and clicks
    # the same samples reached both, and both scored the same share of them
    assert cut["scored_samples"] == every["scored_samples"] > 0 and cut["items"] == every["items"] > 0
    assert cut["count_edges"] == every["count_edges"] > 0  # reading fewer successors counts the same
    assert 0 < cut["progressive_NDCG@10"] <= 1 and cut["late_samples_per_cpu_s"] > 0
    assert out["features_per_source"] == 100 and out["late_ratio"] > 0
    counts = out["gateway_counts_mb"]
    assert counts["reader_counts_mb"] <= counts["whole_counts_mb"]  # a reader's rows are cut, never grown
