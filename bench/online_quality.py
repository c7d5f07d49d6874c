"""One-pass quality of the online recommender under the leave-one-out protocol.

Replays every item but each user's last in the replay's order (users interleaved in time as
`app/replay_data.sequence_events` sends them), learns it once in micro-batches, then ranks
each user's last item over all items with the history masked. The transition and popularity
baselines are fitted on the same items in the same run.
Prints one line, JSON: {"online": {...}, "transition": {...}, "popularity": {...}, "seconds": s,
"config": {...}, "dense": {...}, "probes": [...], ...}. Model options default to OnlineRecConfig's.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.replay_data import sequence_events
from app.threads import limit_threads
from models.data.sequences import Dataset, load_sequences, split_leave_one_out
from models.metrics import rank_metrics
from models.rec.baselines import Popularity, Transition
from models.rec.evaluation import evaluate_split, metrics_of
from models.online.rec_model import OnlineRecConfig, OnlineRecModel

DEFAULTS = OnlineRecConfig()

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon-beauty" / "Beauty.txt"


def training_stream(data: Dataset) -> list[tuple[list[str], str]]:
    """(history, target) for every item but each user's last, in the replay's time order."""
    sequences = [(u, [data.items[i] for i in seq]) for u, seq in zip(data.users, data.sequences)]
    lengths = {u: len(items) for u, items in sequences}
    so_far: dict[str, list[str]] = {u: [] for u in lengths}
    out = []
    for event in sequence_events(sequences):
        history = so_far[event.user_id]
        if len(history) + 1 < lengths[event.user_id]:  # the last item is the test target
            out.append((list(history), event.item_id))
        history.append(event.item_id)
    return out


def learn_stream(model: OnlineRecModel, stream: list[tuple[list[str], str]], batch: int,
                 probe_every: int = 0) -> list[float]:
    """Learn the stream once; every `probe_every` batches record progressive NDCG@10 first."""
    probes = []
    for n, start in enumerate(range(0, len(stream), batch)):
        chunk = stream[start : start + batch]
        if probe_every and n % probe_every == 0:
            ranks = model.score_batch([h for h, _ in chunk], [t for _, t in chunk])
            probes.append(rank_metrics(ranks, ks=(10,))["NDCG@10"])
        model.learn(chunk)
    return probes


def test_online(model: OnlineRecModel, data: Dataset, users: list[int], batch: int = 1024) -> dict[str, float]:
    ranks: list[int | None] = []
    for start in range(0, len(users), batch):
        chunk = users[start : start + batch]
        histories = [[data.items[i] for i in data.sequences[u][:-1]] for u in chunk]
        targets = [data.items[data.sequences[u][-1]] for u in chunk]
        ranks += model.score_batch(histories, targets)
    return rank_metrics(ranks, ks=(10,))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit-users", type=int, default=0)
    parser.add_argument("--batch", type=int, default=512)
    for name in ("dim", "history", "negatives", "row_lr", "dense_lr", "init_std", "user_scale", "gaps",
                 "gap_init", "reverse_init", "embed_gate", "sample_power", "pop_weight", "features_per_source"):
        default = getattr(DEFAULTS, name)
        parser.add_argument("--" + name.replace("_", "-"), type=type(default), default=default)
    for name in ("reverse", "learn_popularity", "learn_embedding", "logq"):
        parser.add_argument("--" + name.replace("_", "-"), action=argparse.BooleanOptionalAction,
                            default=getattr(DEFAULTS, name))
    parser.add_argument("--probe-every", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    limit_threads(2)
    data = load_sequences(args.data)
    if args.limit_users:
        data = Dataset(data.users[: args.limit_users], data.items, data.sequences[: args.limit_users])
    started = time.perf_counter()
    options = {k: v for k, v in vars(args).items() if hasattr(DEFAULTS, k)}
    config = OnlineRecConfig(**options | {"num_shards": 1, "capacity": max(1, data.n_items)})
    model = OnlineRecModel(config)
    stream = training_stream(data)
    probes = learn_stream(model, stream, args.batch, args.probe_every)
    learned = time.perf_counter() - started
    test = split_leave_one_out(data.sequences, holdout=1)
    online = test_online(model, data, [int(u) for u in test.evaluated])
    popularity = Popularity(data.n_items).fit(test.train)
    transition = Transition(data.n_items).fit(test.train)
    baselines = metrics_of(evaluate_split(test, lambda h: {"p": popularity.score(h[:1]), "t": transition.score(h)},
                                          {"popularity": lambda p: p["p"], "transition": lambda p: p["t"]}), ks=(10,))
    dense = {name: [round(x, 4) for x in p.detach().flatten().tolist()[:16]]
             for name, p in model.dense.named_parameters() if name != "project"}
    print(json.dumps({
        "online": online,
        "transition": baselines["transition"],
        "popularity": baselines["popularity"],
        "users": len(test.evaluated),
        "events_learned": len(stream),
        "learn_seconds": round(learned, 1),
        "seconds": round(time.perf_counter() - started, 1),
        "ratio": round(online["NDCG@10"] / max(baselines["transition"]["NDCG@10"], 1e-12), 3),
        "config": vars(args) | {"data": str(args.data)},
        "dense": dense,
        "probes": [round(p, 4) for p in probes],
    }))


if __name__ == "__main__":
    main()
