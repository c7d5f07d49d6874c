"""`streamrank evaluate search`: full-catalog search quality of the model, BM25 and the zero-shot encoder.

    streamrank evaluate search --data CSV --test-queries FILE [--checkpoint DIR] [--json]

Protocol: shared/data/README.md. Test queries without a judged product of relevance >= 2.5
(or absent from the CSV) are skipped and counted. The model must not have trained on any
test query: a checkpoint (given, or else the latest under model_dir/search) is used only when
its card shows none of the test queries among its training queries. Otherwise the model is
fine-tuned here on the CSV's queries minus the test queries (a few minutes on a CPU), so the
command also works on a fresh machine and on files with queries we never saw; `--no-train`
refuses instead. The last line printed with `--json` is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.plot_dir import add_plots_argument, plot_dir, write_plots
from app.settings import Settings

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("search", help="Home Depot search protocol: nDCG@10, Recall@100")
    parser.add_argument("--data", type=Path, default=None, help="judgments CSV(.gz) (default: data_dir/homedepot/train.csv.gz)")
    parser.add_argument("--test-queries", type=Path, required=True, help="test queries, one a line")
    parser.add_argument("--checkpoint", type=Path, default=None, help="search checkpoint folder (default: latest)")
    parser.add_argument("--no-train", action="store_true", help="refuse instead of fine-tuning when no clean checkpoint exists")
    parser.add_argument("--epochs", type=int, default=None, help="epochs of an in-run fine-tune (default: settings)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line last")
    add_plots_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from app.jobs.finetune import default_csv
    from app.search_pipeline import (
        evaluate_all,
        finetune_search,
        leaked_queries,
        prepare,
    )
    from app.search_model import latest_search_checkpoint, load_search_model
    from models.checkpoint import load_checkpoint
    from models.data.homedepot import eligible_test_queries, load_homedepot, load_test_queries
    from models.errors import DataError, ModelUnavailable

    settings = Settings.from_env()
    started = time.monotonic()
    data_path = (args.data or default_csv(settings)).resolve()
    data = load_homedepot(data_path)
    requested = load_test_queries(args.test_queries)
    tests = eligible_test_queries(data, requested)
    if not tests:
        raise DataError(f"none of the {len(requested)} queries in {args.test_queries} is judged with relevance >= 2.5 in {data_path}")
    skipped = len(requested) - len(tests)

    checkpoint = load_checkpoint(args.checkpoint) if args.checkpoint else latest_search_checkpoint(settings)
    if checkpoint is not None:
        leaked = leaked_queries(checkpoint.card, requested)
        if leaked:
            example = sorted(leaked)[0]
            message = f"checkpoint {checkpoint.path} trained on {len(leaked)} test queries (e.g. {example!r})"
            if args.no_train or args.checkpoint:
                raise ModelUnavailable(f"{message}: evaluate another checkpoint or drop --checkpoint to fine-tune here")
            log.warning("%s: fine-tuning without them instead", message)
            checkpoint = None
    elif args.no_train:
        raise ModelUnavailable(f"no search checkpoint under {settings.runtime.model_dir}: run `streamrank finetune` first")

    assets = prepare(settings, data)
    if checkpoint is None:
        log.info("no clean checkpoint: fine-tuning on %s minus the %d test queries", data_path, len(requested))
        path = finetune_search(settings, data_path, data, requested, epochs=args.epochs, assets=assets, hold_out_dev=False)
        checkpoint = load_checkpoint(path)
        if leaked_queries(checkpoint.card, requested):  # cannot happen; the check is the contract
            raise ModelUnavailable("in-run fine-tune used a test query")
    tower, ranker = load_search_model(settings, checkpoint)
    results = evaluate_all(assets, tower, ranker, tests)
    report = {name: {k: round(v, 4) for k, v in results[name].items()} for name in ("model", "bm25", "zero_shot")}
    seconds = round(time.monotonic() - started, 1)
    print(f"checkpoint {checkpoint.path}; {len(tests)} test queries ({skipped} skipped: not judged or no relevance >= 2.5)")
    for name, values in results.items():
        print(f"{name:12s} nDCG@10 {values['nDCG@10']:.4f}  Recall@100 {values['Recall@100']:.4f}")
    result = {**report, "seconds": seconds}
    write_plots(plot_dir(settings.runtime.state_dir, "evaluate-search", args.plots), result, lambda d: plot_report(result, d))
    if args.json:
        print(json.dumps(result))
    return 0


def plot_report(result: Mapping[str, Any], directory: Path) -> list[Path]:
    """bars.png: the fine-tuned model beside BM25 and the pretrained encoder, nDCG@10 and Recall@100."""
    from models.plots import plot_bars

    names = {"model": "fine-tuned model", "bm25": "BM25", "zero_shot": "pretrained (zero-shot)"}
    systems = {label: result[name] for name, label in names.items() if name in result}
    return [plot_bars(systems, directory / "bars.png", "evaluate search: full catalog, held-out queries", "metric")]
