"""`streamrank finetune`: fit the search model on a judgments CSV and save a versioned checkpoint.

    streamrank finetune --data ../shared/data/homedepot/train.csv.gz [--test-queries FILE]
    streamrank finetune --max-items 4000 --max-steps 200    # minutes on 2 cores (the demo's)

Holds out a dev split (hash of the normalised query) and writes it, filtered to eligible test
queries, as `dev_queries.txt` in the checkpoint folder: pass it to `streamrank evaluate search
--test-queries`. Queries in `--test-queries` never train. The card lists the training queries.
Catalog vectors come from the item encoder process's cache where it has them (same frozen item
tower); `--max-items` fits on a slice of the catalog (app/search_slice.py). A running gateway
hot-swaps to the new checkpoint within STREAMRANK_MODEL_POLL_S.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from app.settings import Settings


def default_csv(settings: Settings) -> Path:
    return settings.runtime.data_dir / "homedepot" / "train.csv.gz"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("finetune", help="fine-tune the search model (query tower + ranker) on judgments")
    parser.add_argument("--data", type=Path, default=None, help="judgments CSV(.gz) (default: data_dir/homedepot/train.csv.gz)")
    parser.add_argument("--test-queries", type=Path, default=None, help="queries (one a line) never to train on")
    parser.add_argument("--epochs", type=int, default=None, help="passes over the training queries (default: settings)")
    parser.add_argument("--encoder-epochs", type=int, default=None, help="also fine-tune the MiniLM query encoder (slow on CPU; default: settings)")
    parser.add_argument("--max-steps", type=int, default=None, help="cap each query-tower stage at this many steps")
    parser.add_argument("--write-test-queries", type=Path, default=None, help="also copy dev_queries.txt here")
    parser.add_argument("--max-items", type=_positive, default=None,
                        help="fit on the first N products and the queries judged on them (a quick fine-tune)")
    parser.set_defaults(run=run)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    from app.search_pipeline import DEV_QUERIES_FILE, finetune_search
    from app.search_slice import catalog_slice, shared_assets
    from models.data.homedepot import load_homedepot, load_test_queries, write_queries

    settings = Settings.from_env()
    started = time.monotonic()
    data_path = (args.data or default_csv(settings)).resolve()
    data = load_homedepot(data_path)
    if args.max_items is not None:
        data = catalog_slice(data, args.max_items)
    exclude = load_test_queries(args.test_queries) if args.test_queries else []
    path = finetune_search(
        settings, data_path, data, exclude, epochs=args.epochs, max_steps=args.max_steps,
        assets=shared_assets(settings, data), encoder_epochs=args.encoder_epochs,
    )
    dev_file = path / DEV_QUERIES_FILE
    if args.write_test_queries:
        write_queries(args.write_test_queries, dev_file.read_text(encoding="utf-8").splitlines())
    card = json.loads((path / "card.json").read_text())
    print(f"checkpoint: {path}")
    print(f"dev queries: {dev_file} ({card['metrics']['dev_queries']})")
    print(json.dumps({"checkpoint": str(path), "dev": card["metrics"]["dev"], "seconds": round(time.monotonic() - started, 1)}))
    return 0
