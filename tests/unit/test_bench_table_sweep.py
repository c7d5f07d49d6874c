"""bench/table_sweep.py on a small table: the sweep drops a row per row written, with a tombstone each."""
from __future__ import annotations

from tests.unit.test_plots import bench, bench_json


def test_the_sweep_bench_drops_about_a_row_per_event_and_reports_both_costs(monkeypatch, capsys):
    out = bench_json(bench("table_sweep"), monkeypatch, capsys,
                     "--rows", "20000", "--batch", "100", "--batches", "20", "--rounds", "1")
    # 64 + 2 x 100 rows visited per batch of 100, about half of them past the window
    assert out["dropped_per_event"] == out["tombstones_per_event"]
    assert abs(out["dropped_per_event"] - (64 + 2 * 100) / 2 / 100) < 0.05
    assert out["baseline_us_per_event"] > 0 and out["sweep_us_per_event"] > 0
    # each figure rounded on its own: the difference of the rounded two may be a unit off
    assert abs(out["extra_us_per_event"] - (out["sweep_us_per_event"] - out["baseline_us_per_event"])) <= 0.011
