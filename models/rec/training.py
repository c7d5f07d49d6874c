"""Training loop for sequence models: every prefix of every training sequence is a sample."""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from models.rec.sasrec import SASRec, pad_right


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation knobs; training stops at `epochs` or after `time_budget_s` seconds."""

    epochs: int = 60
    batch_size: int = 256
    lr: float = 1e-3
    negatives: int = 512  # shared sampled negatives per batch; 0 = full softmax
    weight_decay: float = 0.0
    time_budget_s: float = math.inf
    seed: int = 0


@dataclass
class TrainHistory:
    """Per-epoch mean loss and optional evaluation metrics (epoch numbers start at 1)."""

    loss: list[float] = field(default_factory=list)
    evals: dict[int, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0


def length_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Batches of indices of similar length (little padding), in random order."""
    order = np.argsort(lengths + rng.random(len(lengths)), kind="stable")
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def train_sasrec(
    model: SASRec,
    sequences: Sequence[np.ndarray],
    config: TrainConfig,
    on_epoch: Callable[[int, float], dict[str, float] | None] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> TrainHistory:
    """Train in place on every prefix of `sequences` (item indices, oldest first).

    Each sequence is cut to its last max_len + 1 items; input = seq[:-1], target = seq[1:].
    `on_epoch(epoch, loss)` may return metrics to record; `progress(epoch, epochs, loss)`
    is called after each epoch (for a progress bar).
    """
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    pad = model.config.n_items
    seqs = [s[-(model.config.max_len + 1) :] for s in sequences if len(s) >= 2]
    history = TrainHistory()
    if not seqs:
        return history
    lengths = np.asarray([len(s) for s in seqs])
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    start = time.monotonic()
    model.train()
    for epoch in range(1, config.epochs + 1):
        total, count = 0.0, 0
        for batch in length_batches(lengths, config.batch_size, rng):
            x, _ = pad_right([seqs[i][:-1] for i in batch], pad)
            y, _ = pad_right([seqs[i][1:] for i in batch], pad)
            loss = model.loss(x, y, config.negatives)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(batch)
            count += len(batch)
        history.loss.append(total / count)
        if on_epoch is not None:
            metrics = on_epoch(epoch, history.loss[-1])
            if metrics:
                history.evals[epoch] = metrics
        if progress is not None:
            progress(epoch, config.epochs, history.loss[-1])
        if time.monotonic() - start > config.time_budget_s:
            break
    history.seconds = time.monotonic() - start
    model.eval()
    return history
