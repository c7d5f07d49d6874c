"""The leave-one-out protocol: full ranking over all items with the user's history masked."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from models.data.sequences import Split
from models.metrics import DEFAULT_KS, batch_ranks, rank_metrics

Parts = Mapping[str, torch.Tensor]
PartsFn = Callable[[list[np.ndarray]], Parts]  # histories -> named [B, n_items] (or [1, n_items]) rows
Ranker = Callable[[Parts], torch.Tensor]  # named rows -> [B, n_items] scores


def evaluate_split(
    split: Split,
    parts: PartsFn,
    rankers: Mapping[str, Ranker],
    batch_size: int = 1024,
    users: np.ndarray | None = None,
) -> dict[str, torch.Tensor]:
    """Target ranks [E] of every ranker over the evaluated users of `split`.

    Each batch of users is scored once by `parts`; every ranker then combines those rows.
    History items (the target excepted) are masked before ranking; ties count against the
    target. `users`, if given, restricts evaluation to those positions of split.evaluated.
    """
    positions = np.arange(len(split.evaluated)) if users is None else users
    ranks: dict[str, list[torch.Tensor]] = {name: [] for name in rankers}
    for start in range(0, len(positions), batch_size):
        chunk = positions[start : start + batch_size]
        histories = [split.train[u] for u in split.evaluated[chunk]]
        targets = torch.from_numpy(split.targets[chunk])
        rows = parts(histories)
        for name, ranker in rankers.items():
            scores = ranker(rows).expand(len(histories), -1).clone()
            ranks[name].append(batch_ranks(scores, targets, histories))
    return {name: torch.cat(r) if r else torch.zeros(0, dtype=torch.long) for name, r in ranks.items()}


def metrics_of(ranks: Mapping[str, torch.Tensor], ks: Sequence[int] = DEFAULT_KS) -> dict[str, dict[str, float]]:
    """HR@k and NDCG@k for each ranker's ranks."""
    return {name: rank_metrics(r, ks) for name, r in ranks.items()}
