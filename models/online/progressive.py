"""Progressive-validation metrics over a sliding window of the most recent samples.

Ranks are 0-based (None = the target was unknown: a miss). Clicks are (probability, label).
"""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

import torch

LOG_LOSS_CLIP = 1e-7


class WindowMetric:
    """HR@k / NDCG@k over the last `window` ranks, AUC / log-loss over the last `window` clicks."""

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.window = window
        self.ranks: deque[float] = deque(maxlen=window)
        self.clicks: deque[tuple[float, int]] = deque(maxlen=window)

    @property
    def count(self) -> int:
        """Rank samples in the window."""
        return len(self.ranks)

    @property
    def click_count(self) -> int:
        return len(self.clicks)

    def add_ranks(self, ranks: Iterable[int | None]) -> None:
        self.ranks.extend(math.inf if r is None else float(r) for r in ranks)

    def add_clicks(self, probabilities: Iterable[float], labels: Iterable[int | float]) -> None:
        self.clicks.extend((float(p), int(y)) for p, y in zip(probabilities, labels, strict=True))

    def hr(self, k: int = 10) -> float:
        return sum(r < k for r in self.ranks) / len(self.ranks) if self.ranks else 0.0

    def ndcg(self, k: int = 10) -> float:
        gains = (1.0 / math.log2(r + 2.0) for r in self.ranks if r < k)
        return sum(gains) / len(self.ranks) if self.ranks else 0.0

    def ndcg_se(self, k: int = 10) -> float | None:
        """Standard error of `ndcg` (per-sample gains over the window); None below 2 samples.
        With a validation share below 1 this says how much the figure can be trusted."""
        n = len(self.ranks)
        if n < 2:
            return None
        gains = [1.0 / math.log2(r + 2.0) if r < k else 0.0 for r in self.ranks]
        mean = sum(gains) / n
        var = sum((g - mean) ** 2 for g in gains) / (n - 1)
        return math.sqrt(var / n)

    def log_loss(self) -> float | None:
        """Mean binary cross-entropy (natural log), probabilities clipped to [1e-7, 1 - 1e-7]."""
        if not self.clicks:
            return None
        total = 0.0
        for p, y in self.clicks:
            p = min(max(p, LOG_LOSS_CLIP), 1.0 - LOG_LOSS_CLIP)
            total -= math.log(p) if y else math.log(1.0 - p)
        return total / len(self.clicks)

    def auc(self) -> float | None:
        """Exact ROC AUC (ties count one half); None unless both labels occur in the window."""
        if not self.clicks:
            return None
        scores = torch.tensor([p for p, _ in self.clicks], dtype=torch.float64)
        labels = torch.tensor([y for _, y in self.clicks], dtype=torch.bool)
        positives, negatives = int(labels.sum()), int((~labels).sum())
        if positives == 0 or negatives == 0:
            return None
        ranks = average_ranks(scores)
        return (float(ranks[labels].sum()) - positives * (positives + 1) / 2) / (positives * negatives)

    def summary(self, k: int = 10) -> dict[str, float | int | None]:
        return {f"HR@{k}": self.hr(k), f"NDCG@{k}": self.ndcg(k), f"NDCG@{k}_se": self.ndcg_se(k),
                "samples": self.count,
                "AUC": self.auc(), "log_loss": self.log_loss(), "clicks": self.click_count}


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """1-based ranks of `values` [n], tied values sharing the mean of their ranks."""
    order = torch.argsort(values, stable=True)
    sorted_values = values[order]
    _, inverse, counts = torch.unique_consecutive(sorted_values, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    mean_rank = ends - (counts.double() - 1) / 2  # mean of ranks (end - count + 1 .. end)
    ranks = torch.empty_like(values, dtype=torch.float64)
    ranks[order] = mean_rank[inverse]
    return ranks
