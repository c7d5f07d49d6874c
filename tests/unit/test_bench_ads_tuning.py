"""bench/ads_tuning.py on a few queries and a small grid: each auction tuned on train, reported on dev."""
from __future__ import annotations

from tests.unit.test_plots import bench, bench_json


def test_each_auction_keeps_its_best_setting_that_holds_page_quality(monkeypatch, capsys):
    module = bench("ads_tuning")
    monkeypatch.setattr(module, "FLOORS", (0.8, 0.9))
    monkeypatch.setattr(module, "RESERVES", (0.05, 0.5))
    monkeypatch.setattr(module, "ECPM_FLOORS", (0.0, 0.1))
    out = bench_json(module, monkeypatch, capsys, "--queries", "100", "--sessions-per-day", "150", "--days", "2", "--warmup-days", "1",
                     "--ndcg-ratio", "0.9", "--processes", "1", "--oracle", "--seeds", "7,8")
    for policy in ("model", "highest_bid", "counts_ctr", "oracle"):
        chosen = out[policy]
        assert chosen["train"]["ndcg_ratio"] >= 0.9  # the page-quality bound held where it was chosen
        assert chosen["config"]["relevance_floor"] in (0.8, 0.9) and chosen["config"]["reserve"] in (0.05, 0.5)
        assert chosen["dev"]["revenue_per_1k"] >= 0 and 0 < chosen["dev"]["ndcg_ratio"] <= 1.5
    assert out["highest_bid"]["config"]["min_expected_revenue"] == 0.0  # bid alone has no pCTR to floor
    ratio = out["model"]["dev"]["revenue_per_1k"] / out["highest_bid"]["dev"]["revenue_per_1k"]
    assert out["dev_revenue_model_over_highest_bid"] == round(ratio, 3) == out["dev_ratio_by_seed"]["7"]
    for policy in ("model", "highest_bid"):
        by_seed = out[policy]["dev_by_seed"]
        assert set(by_seed) == {"7", "8"} and by_seed["7"]["revenue_per_1k"] == out[policy]["dev"]["revenue_per_1k"]
        assert len(by_seed["8"]["by_day"]) == 2  # warm-up day and reported day
        assert by_seed["8"]["by_day"][1][0] == by_seed["8"]["revenue_per_1k"]  # one reported day: the summary
    other = out["model"]["dev_by_seed"]["8"]["revenue_per_1k"] / out["highest_bid"]["dev_by_seed"]["8"]["revenue_per_1k"]
    assert out["dev_ratio_by_seed"]["8"] == round(other, 3)
    ceiling = out["oracle"]["dev"]["revenue_per_1k"] / out["highest_bid"]["dev"]["revenue_per_1k"]
    assert out["dev_revenue_oracle_over_highest_bid"] == round(ceiling, 3)
