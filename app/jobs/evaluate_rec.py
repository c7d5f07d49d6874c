"""`streamrank evaluate rec`: the leave-one-out protocol of the data README, baselines included.

    streamrank evaluate rec --data FILE [--attributes FILE] [--epochs N] [--time-budget S] --json

Full ranking over all items, the user's history masked (a target that also occurs earlier in
the history stays rankable: masking it would make a repeat purchase unrankable). The model
learns from every item but each user's last; popularity and transition baselines are fitted
on the same items in the same run. The last stdout line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from app.jobs.train import add_data_arguments, fit
from app.plot_dir import add_plots_argument, plot_dir, write_plots
from app.settings import Settings

REPORTED = ("model", "popularity", "transition")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("rec", help="leave-one-out full-ranking HR/NDCG@5/10/20 vs popularity and transitions")
    add_data_arguments(parser)
    parser.add_argument("--json", action="store_true", help="end with one JSON line (always printed; kept for scripts)")
    add_plots_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from models.rec.protocol import evaluate_test

    started = time.monotonic()
    settings = Settings.from_env()
    data, model, report, _ = fit(settings, args)
    test = evaluate_test(data, model)
    print(f"data: {len(data.users)} users, {data.n_items} items, {data.n_interactions} interactions")
    print(f"epochs per run: {len(report.history.loss)}; blend chosen on validation: {report.blend.name}")
    print(f"validation NDCG@10: chosen {report.validation[report.blend.name]['NDCG@10']:.4f}, "
          f"neural alone {report.validation['neural']['NDCG@10']:.4f}")
    print(f"{'test':16s}" + "".join(f"{k:>9s}" for k in test["model"]))
    for name, metrics in test.items():
        print(f"{name:16s}" + "".join(f"{v:9.4f}" for v in metrics.values()))
    base = test["transition"]["NDCG@10"]
    if base > 0:
        print(f"model / transition NDCG@10: {test['model']['NDCG@10'] / base:.3f}")
    out = {name: {k: round(v, 6) for k, v in test[name].items()} for name in REPORTED}
    result = {**out, "seconds": round(time.monotonic() - started, 1)}
    curves = {"validation run": report.validation_history.loss, "final run": report.history.loss}
    evals = {**{f"validation run {k}": v for k, v in _eval_curves(report.validation_history.evals).items()},
             **{f"final run {k}": v for k, v in _eval_curves(report.history.evals).items()}}
    write_plots(plot_dir(settings.runtime.state_dir, "evaluate-rec", args.plots), result,
                lambda d: plot_report(result, d, curves, evals))
    print(json.dumps(result))
    return 0


def plot_report(result: Mapping[str, Any], directory: Path, curves: Mapping[str, Sequence[float]] | None = None,
                evals: Mapping[str, tuple[list[int], list[float]]] | None = None) -> list[Path]:
    """bars.png: the model beside each baseline on every test metric; training.png: the loss
    per epoch of each run (and, when epochs were evaluated, their validation NDCG@10)."""
    from models.plots import Panel, plot_bars, plot_panels

    systems = {name: result[name] for name in REPORTED if name in result}
    paths = [plot_bars(systems, directory / "bars.png", "evaluate rec: leave-one-out test, full ranking", "metric")]
    if curves and any(curves.values()):
        panels = [Panel({k: v for k, v in curves.items() if v}, "sampled-softmax loss per epoch", "epoch", "loss")]
        if evals:
            panels.append(Panel({k: ys for k, (_, ys) in evals.items()}, "validation during training", "epoch", "NDCG@10",
                                {k: xs for k, (xs, _) in evals.items()}))
        paths.append(plot_panels(panels, directory / "training.png", dpi=100))
    return paths


def _eval_curves(evals: Mapping[int, Mapping[str, float]]) -> dict[str, tuple[list[int], list[float]]]:
    """NDCG@10 per evaluated epoch, when training evaluated any (epochs, values)."""
    epochs = [e for e in sorted(evals) if "NDCG@10" in evals[e]]
    return {"NDCG@10": (epochs, [evals[e]["NDCG@10"] for e in epochs])} if epochs else {}
