"""`streamrank evaluate online --protocol time-split`: checkpoint on the first part, learn the rest online.

    streamrank evaluate online --protocol time-split [--data FILE] [--attributes FILE]
        [--split 0.8] [--max-events N] [--epochs N] [--threads N]

Events are ordered as `replay` sends them (files without timestamps get its interleaving);
the protocol itself is `models.rec.time_split`. The last stdout line is one JSON object:
{"online", "frozen", "counts", "retrained": {"NDCG@10", "HR@10"}, "new_items": {"online", "frozen"},
"neural_only": {...}}: the served blends first (the issue's shape), then the SASRec models alone.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from typing import TYPE_CHECKING

from app.jobs.train import data_paths
from app.settings import Settings

if TYPE_CHECKING:
    from models.rec.time_split import TimeSplitConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("time-split protocol")
    group.add_argument("--split", type=float, default=0.8, help="share of events the checkpoint is trained on")
    group.add_argument("--max-events", type=int, default=0, help="streamed events scored after the split (0: all)")
    group.add_argument("--batch", type=int, default=256, help="events per prequential micro-batch")
    group.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    group.add_argument("--row-lr", type=float, default=None, help="Adagrad step on item rows")
    group.add_argument("--dense-lr", type=float, default=None, help="Adam step on the transformer")
    group.add_argument("--replay-ratio", type=float, default=None, help="replayed sequences per streamed one")
    group.add_argument("--steps", type=int, default=None, help="optimisation steps per micro-batch")
    group.add_argument("--online-negatives", type=int, default=None,
                       help="negatives per online step (0: full softmax over every row)")


def run(args: argparse.Namespace) -> int:
    import torch

    from app.replay_data import sequence_events
    from models.data import load_sequences
    from models.rec.time_split import evaluate_time_split

    started = time.monotonic()
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = Settings.from_env()
    data = load_sequences(*data_paths(settings, args))
    users, items = {u: i for i, u in enumerate(data.users)}, data.item_index()
    named = [(u, [data.items[i] for i in s]) for u, s in zip(data.users, data.sequences)]
    events = [(users[e.user_id], items[str(e.item_id)]) for e in sequence_events(named)]
    print(f"data: {len(data.users)} users, {data.n_items} items, {len(events)} events in replay order")
    result = evaluate_time_split(data, events, _config(settings, args), lambda line: print(line, flush=True))
    print(f"blends chosen on validation: offline {result.blends['offline']}, online {result.blends['online']}")
    _print_table("served (blends)", {**result.served, "new_items": result.new_items})
    _print_table("SASRec alone", result.neural_only)
    _print_table("offline hybrid retrained on everything (its counts hold the targets: no bound)",
                 {"retrained": result.hybrid_retrained})
    print(f"served:  {_ratios(result.served)}; SASRec alone: {_ratios(result.neural_only)}; "
          f"{time.monotonic() - started:.0f}s")
    print(json.dumps(_rounded(result.to_json())))
    return 0


def _print_table(title: str, table: dict[str, dict[str, float]]) -> None:
    print(title)
    for name, metrics in table.items():
        print(f"  {name:10s}" + "".join(f"  {k} {v:.4f}" for k, v in metrics.items()))


def _ratios(table: dict[str, dict[str, float]]) -> str:
    """online / frozen and online / retrained NDCG@10 (nan where the divisor is 0)."""
    online = table["online"]["NDCG@10"]
    return "; ".join(f"online / {name} NDCG@10 {online / d if (d := table[name]['NDCG@10']) else float('nan'):.3f}"
                     for name in ("frozen", "retrained"))


def _rounded(value: object) -> object:
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return round(value, 6) if isinstance(value, float) else value


def _config(settings: Settings, args: argparse.Namespace) -> TimeSplitConfig:
    from models.rec.time_split import TimeSplitConfig
    from models.rec.training import TrainConfig

    base, rec = TimeSplitConfig(), settings.rec
    # the offline recipe of `streamrank train`, fewer epochs by default: the protocol trains three times
    train = TrainConfig(epochs=args.epochs or base.offline.train.epochs, batch_size=rec.batch_size, lr=rec.lr,
                        negatives=rec.negatives, time_budget_s=args.time_budget or rec.time_budget_s)
    knobs = {"row_lr": args.row_lr, "dense_lr": args.dense_lr, "replay_ratio": args.replay_ratio, "steps": args.steps,
             "negatives": args.online_negatives}
    online = dataclasses.replace(base.online, **{k: v for k, v in knobs.items() if v is not None})
    offline = dataclasses.replace(base.offline, dim=rec.dim, train=train)
    return dataclasses.replace(base, split=args.split, max_events=args.max_events, batch=args.batch,
                               offline=offline, online=online)
