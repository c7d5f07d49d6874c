"""Blending per-user score rows of several recommenders into one ranking.

Each component's row is first turned into a distribution over items (softmax for model
logits, sum-normalisation for non-negative count scores), so weights mean the same for every
user; the blend is the weighted mixture, plus a tiny popularity prior that breaks ties.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

TIE_BREAK = 1e-6


def softmax_rows(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """[B, N] logits -> [B, N] probabilities per row."""
    return torch.softmax(logits / temperature, dim=1)


def sum_normalise_rows(scores: torch.Tensor) -> torch.Tensor:
    """[B, N] non-negative scores -> rows summing to 1 (all-zero rows stay zero)."""
    total = scores.clamp(min=0).sum(dim=1, keepdim=True)
    return scores.clamp(min=0) / total.clamp(min=1e-12)


@dataclass(frozen=True)
class Blend:
    """Weights per component name (they need not sum to 1) and the neural temperature."""

    weights: Mapping[str, float]
    temperature: float = 1.0

    def __call__(self, parts: Mapping[str, torch.Tensor], prior: torch.Tensor) -> torch.Tensor:
        """parts: name -> [B, N] normalised rows; prior: [N] in [0, 1]. Returns [B, N]."""
        out = TIE_BREAK * prior.unsqueeze(0).expand_as(next(iter(parts.values()))).clone()
        for name, w in self.weights.items():
            if w:
                out += w * parts[name]
        return out


def weight_grid(names: Sequence[str], steps: int = 10) -> list[Blend]:
    """Blends of two components with weights (w, 1 - w), w in 0, 1/steps, ..., 1."""
    if len(names) != 2:
        raise ValueError("weight_grid blends exactly two components")
    a, b = names
    return [Blend({a: i / steps, b: 1 - i / steps}) for i in range(steps + 1)]
