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

from app.jobs.train import add_data_arguments, fit
from app.settings import Settings

REPORTED = ("model", "popularity", "transition")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("rec", help="leave-one-out full-ranking HR/NDCG@5/10/20 vs popularity and transitions")
    add_data_arguments(parser)
    parser.add_argument("--json", action="store_true", help="end with one JSON line (always printed; kept for scripts)")
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
    print(json.dumps({**out, "seconds": round(time.monotonic() - started, 1)}))
    return 0
