"""The leave-one-out protocol for a model that learned online: rank each user's last item.

Any model with `score_batch(histories, targets) -> 0-based ranks` (the live OnlineRecModel
or a ServingRecModel) is scored the same way: full ranking over every item it knows, the
user's history masked (the target excepted), an unknown target a miss.
"""
from __future__ import annotations

from typing import Any

from models.data.sequences import Dataset, Split, split_leave_one_out
from models.metrics import rank_metrics
from models.rec.baselines import Popularity, Transition
from models.rec.evaluation import evaluate_split, metrics_of


def leave_one_out_metrics(model: Any, data: Dataset, test: Split, batch: int = 1024) -> dict[str, float]:
    """HR@10 and NDCG@10 of `model` on the held-out last items of `test`."""
    ranks: list[int | None] = []
    users = [int(u) for u in test.evaluated]
    for start in range(0, len(users), batch):
        chunk = users[start:start + batch]
        histories = [[data.items[i] for i in test.train[u]] for u in chunk]
        targets = [data.items[int(t)] for t in test.targets[start:start + batch]]
        ranks += model.score_batch(histories, targets)
    return rank_metrics(ranks, ks=(10,))


def baseline_metrics(data: Dataset) -> dict[str, dict[str, float]]:
    """Popularity and item transitions fitted on all but each user's last item (same protocol)."""
    test = split_leave_one_out(data.sequences, holdout=1)
    popularity = Popularity(data.n_items).fit(test.train)
    transition = Transition(data.n_items).fit(test.train)
    scores = lambda h: {"p": popularity.score(h[:1]), "t": transition.score(h)}  # noqa: E731
    return metrics_of(evaluate_split(test, scores, {"popularity": lambda p: p["p"], "transition": lambda p: p["t"]}),
                      ks=(10,))
