"""The leave-one-out protocol: full ranking over all items with the user's history masked."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from models.data.sequences import Split
from models.metrics import DEFAULT_KS, batch_ranks, rank_metrics

Scorer = Callable[[list[np.ndarray]], torch.Tensor]  # histories -> [B, n_items]
Ranker = Callable[[Mapping[str, torch.Tensor]], torch.Tensor]  # component rows -> [B, n_items]


def evaluate_split(
    split: Split,
    components: Mapping[str, Scorer],
    rankers: Mapping[str, Ranker],
    batch_size: int = 1024,
    users: np.ndarray | None = None,
) -> dict[str, torch.Tensor]:
    """Target ranks [E] of every ranker over the evaluated users of `split`.

    Each batch of users is scored once by every component; every ranker then combines the
    component rows. History items (the target excepted) are masked before ranking.
    `users`, if given, restricts evaluation to those positions of split.evaluated.
    """
    positions = np.arange(len(split.evaluated)) if users is None else users
    ranks: dict[str, list[torch.Tensor]] = {name: [] for name in rankers}
    for start in range(0, len(positions), batch_size):
        chunk = positions[start : start + batch_size]
        histories = [split.train[u] for u in split.evaluated[chunk]]
        targets = torch.from_numpy(split.targets[chunk])
        parts = {name: scorer(histories) for name, scorer in components.items()}
        for name, ranker in rankers.items():
            ranks[name].append(batch_ranks(ranker(parts).clone(), targets, histories))
    return {name: torch.cat(r) if r else torch.zeros(0, dtype=torch.long) for name, r in ranks.items()}


def metrics_of(ranks: Mapping[str, torch.Tensor], ks: Sequence[int] = DEFAULT_KS) -> dict[str, dict[str, float]]:
    """HR@k and NDCG@k for each ranker's ranks."""
    return {name: rank_metrics(r, ks) for name, r in ranks.items()}
