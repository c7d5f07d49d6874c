"""`streamrank evaluate rec|search|online|ads`: the published protocols, baselines in the same run."""
from __future__ import annotations

import argparse
import importlib

PROTOCOLS = {
    "rec": "app.jobs.evaluate_rec",
    "search": "app.jobs.evaluate_search",
    "online": "app.jobs.evaluate_online",
    "ads": "app.jobs.evaluate_ads",
}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("evaluate", help="evaluate a model against baselines on a protocol")
    protocols = parser.add_subparsers(dest="protocol", required=True, metavar="PROTOCOL")
    for module in PROTOCOLS.values():
        importlib.import_module(module).register(protocols)
