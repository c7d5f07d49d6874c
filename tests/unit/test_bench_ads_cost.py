"""bench/ads_cost.py on a small catalog: the same answers with and without campaigns."""
from __future__ import annotations

from tests.unit.test_plots import bench, bench_json


def test_the_ads_cost_bench_serves_ads_on_some_answers_and_reports_both_tails(monkeypatch, capsys):
    out = bench_json(bench("ads_cost"), monkeypatch, capsys,
                     "--items", "2000", "--share", "0.2", "--answers", "500", "--rounds", "1")
    assert out["campaigns"] == 400
    assert 0 < out["ads_per_answer"] <= 2  # some answers carry ads, never more than the two slots
    assert 0 < out["without_us"] and 0 < out["with_us"] and 0 < out["cached_with_us"]
    # each figure rounded on its own: the difference of the rounded two may be a unit off
    assert abs(out["extra_us"] - (out["with_us"] - out["without_us"])) <= 0.11
    assert abs(out["cached_extra_us"] - (out["cached_with_us"] - out["without_us"])) <= 0.11
