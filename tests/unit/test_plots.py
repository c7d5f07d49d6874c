"""The PNG charts: plot functions, the plot folder, and each command's report -> PNGs."""
from __future__ import annotations

import importlib.util
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from app.jobs import evaluate_online, evaluate_rec, evaluate_search
from app.plot_dir import RESULT, add_plots_argument, plot_dir, write_plots
from models.plots import percentile, plot_bars, plot_distribution

ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert len(data) > 1000, path  # a drawn chart, not an empty canvas header


def pngs(directory: Path) -> set[str]:
    return {p.name for p in directory.glob("*.png")}


def bench(name: str):
    """A bench script as a module (they are scripts, not a package); it imports its siblings as a
    script run from bench/ does."""
    if str(ROOT / "bench") not in sys.path:
        sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def bench_json(module, monkeypatch, capsys, *args: str) -> dict:
    """Run a bench module's `main` with `args` on its command line; its last line, the JSON figures."""
    monkeypatch.setattr(sys, "argv", [Path(module.__file__).name, *args])
    module.main()
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_grouped_bars_write_a_png(tmp_path):
    path = plot_bars({"model": {"HR@10": 0.3, "NDCG@10": 0.2}, "popularity": {"HR@10": 0.05, "NDCG@10": 0.02},
                      "transition": {"HR@10": 0.25}}, tmp_path / "sub" / "bars.png", "t", "metric")
    assert path == tmp_path / "sub" / "bars.png"
    assert_png(path)


def test_distribution_writes_a_png_with_long_tails_and_empty_series(tmp_path):
    tail = [1.0] * 95 + [50.0, 80.0, 200.0, 400.0, 900.0]  # log x axis
    assert_png(plot_distribution({"a": tail, "b": [2.0, 3.0, 4.0], "empty": []}, tmp_path / "lat.png", "t"))
    assert_png(plot_distribution({"flat": [5.0, 6.0, 7.0]}, tmp_path / "flat.png"))


def test_percentile_is_a_measured_value():
    values = list(range(1, 101))
    assert percentile(values, 0.5) in (50, 51)
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert percentile([7.0], 0.95) == 7.0


def test_plot_dir_default_is_a_fresh_timestamped_folder(tmp_path):
    now = datetime(2026, 12, 3, 18, 5, 9, tzinfo=timezone.utc)
    first = plot_dir(tmp_path, "evaluate-rec", now=now)
    second = plot_dir(tmp_path, "evaluate-rec", now=now)
    assert first == tmp_path / "plots" / "evaluate-rec-20261203T180509Z" and first.is_dir()
    assert second != first and second.is_dir()  # the same second: a folder of its own


def test_plot_dir_requested_folder_is_created(tmp_path):
    parser = __import__("argparse").ArgumentParser()
    add_plots_argument(parser)
    args = parser.parse_args(["--plots", str(tmp_path / "a" / "b")])
    assert plot_dir(tmp_path / "state", "x", args.plots) == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir() and not (tmp_path / "state").exists()


def test_write_plots_writes_the_result_and_prints_the_folder(tmp_path, capsys):
    made = write_plots(tmp_path, {"x": 1}, lambda d: [plot_bars({"s": {"m": 1.0}}, d / "b.png")])
    assert made == [tmp_path / "b.png"]
    assert json.loads((tmp_path / RESULT).read_text()) == {"x": 1}
    assert capsys.readouterr().out.strip() == f"plots: {tmp_path}"


def test_a_failing_chart_keeps_the_result(tmp_path, capsys, caplog):
    def broken(directory: Path) -> list[Path]:
        raise ValueError("no")

    assert write_plots(tmp_path, {"x": 1}, broken) == []
    assert (tmp_path / RESULT).exists()
    assert "plots:" in capsys.readouterr().out
    assert "failed" in caplog.text


REC = {name: {"HR@5": 0.1, "HR@10": 0.2, "HR@20": 0.3, "NDCG@5": 0.05, "NDCG@10": 0.08, "NDCG@20": 0.1}
       for name in ("model", "popularity", "transition")}


def test_evaluate_rec_report_to_pngs(tmp_path):
    made = evaluate_rec.plot_report({**REC, "seconds": 3.0}, tmp_path, {"validation run": [3.0, 2.5], "final run": [3.1, 2.4]},
                                    {"final run NDCG@10": ([1, 2], [0.05, 0.07])})
    assert pngs(tmp_path) == {"bars.png", "training.png"} and len(made) == 2
    for path in made:
        assert_png(path)
    only_bars = tmp_path / "no-history"
    evaluate_rec.plot_report(REC, only_bars)
    assert pngs(only_bars) == {"bars.png"}


def test_evaluate_search_report_to_pngs(tmp_path):
    report = {name: {"nDCG@10": 0.4, "Recall@100": 0.8} for name in ("model", "bm25", "zero_shot")}
    made = evaluate_search.plot_report({**report, "seconds": 1.0}, tmp_path)
    assert pngs(tmp_path) == {"bars.png"}
    assert_png(made[0])


def test_evaluate_online_report_to_pngs(tmp_path):
    result = {"online": {"HR@10": 0.2, "NDCG@10": 0.1}, "popularity": {"HR@10": 0.05, "NDCG@10": 0.02},
              "transition": {"HR@10": 0.18, "NDCG@10": 0.09},
              "progressive": [{"samples": 100, "decision": "version", "NDCG@10": 0.05},
                              {"samples": 250, "decision": "decision", "NDCG@10": 0.08}],
              "learner_seconds": 4.0, "seconds": 9.0}
    made = evaluate_online.plot_report(result, tmp_path)
    assert pngs(tmp_path) == {"bars.png", "progressive.png"}
    for path in made:
        assert_png(path)
    no_curve = tmp_path / "no-curve"
    evaluate_online.plot_report({**result, "progressive": []}, no_curve)
    assert pngs(no_curve) == {"bars.png"}


@pytest.mark.parametrize("script", ["ingest", "learner"])
def test_rate_benches_plot_pipeline_beside_baseline(tmp_path, script):
    out = {"pipeline_eps": 900.0, "raw_eps": 20000.0, "workers": 1,
           "learner_samples_per_cpu_s": 5000.0, "counting_samples_per_cpu_s": 90000.0, "device": "cpu"}
    made = bench(script).plot_rates(out, tmp_path)
    assert [p.name for p in made] == ["rate.png"]
    assert_png(made[0])


def test_serve_bench_plots_latency_per_pass_and_throughput(tmp_path):
    latencies = {"recommend cold": [1.0, 2.0, 3.0, 40.0], "recommend": [0.5, 0.6, 0.9], "search": [], "fixed body": [0.2, 0.3]}
    results = {name: {"rps": rps} for name, rps in (("recommend", 3000.0), ("search", 60.0), ("fixed_body", 9000.0))}
    made = bench("serve").plot_latencies(latencies, results, tmp_path)
    assert pngs(tmp_path) == {"latency.png", "rps.png"}
    for path in made:
        assert_png(path)


def test_freshness_bench_plots_both_delays(tmp_path):
    made = bench("freshness").plot_freshness([12.0, 15.0, 30.0], [900.0, 1100.0, 1500.0], 1.0, tmp_path)
    assert [p.name for p in made] == ["freshness.png"]
    assert_png(made[0])
