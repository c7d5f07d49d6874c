"""Synthetic streams for the online-learner tests: users walk short fixed chains x_i -> y_i -> z_i."""
from __future__ import annotations

import random

from models.online.rec_model import OnlineRecConfig, OnlineRecModel


def small_config(**overrides) -> OnlineRecConfig:
    # the embedding is on here (it is off by default) so that rows, deltas and fusion are exercised
    base = dict(dim=8, num_shards=2, capacity=64, negatives=16, history=2, seed=3, embed_gate=1.0,
                learn_embedding=True)
    return OnlineRecConfig(**{**base, **overrides})


def small_model(**overrides) -> OnlineRecModel:
    return OnlineRecModel(small_config(**overrides))


def chain_stream(users: int, chains: int = 12, seed: int = 0, prefix: str = "") -> list[tuple[list[str], str]]:
    """Samples (history, target) of `users` walks, users interleaved step by step."""
    rng = random.Random(seed)
    walks = [[f"{prefix}{c}{i}" for c in "xyz"] for i in (rng.randrange(chains) for _ in range(users))]
    return [(walk[:step], walk[step]) for step in range(3) for walk in walks]


def shuffled_targets(samples: list[tuple[list[str], str]], seed: int = 0) -> list[tuple[list[str], str]]:
    """The same histories with targets shuffled among the samples (a poisoned feed)."""
    targets = [t for _, t in samples]
    random.Random(seed).shuffle(targets)
    return [(h, t) for (h, _), t in zip(samples, targets)]


def batches(samples: list, size: int) -> list[list]:
    return [samples[i : i + size] for i in range(0, len(samples), size)]


def rewired_targets(samples: list[tuple[list[str], str]], shift: int = 1) -> list[tuple[list[str], str]]:
    """The same histories with each target swapped for another fixed item (a bot pushing
    items): unlike shuffled targets, a model learns this and then serves real users worse."""
    targets = sorted({t for _, t in samples})
    moved = {t: targets[(i + shift) % len(targets)] for i, t in enumerate(targets)}
    return [(h, moved[t]) for h, t in samples]
