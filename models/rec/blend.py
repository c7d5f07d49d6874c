"""Blending a sequence model with transition counts into one score row per user.

The transition row is normalised per user into a distribution q over items and smoothed;
the blend is log(q + smoothing) + scale * logits, i.e. a product of experts in which
`scale` (tuned on validation) says how much the neural model sharpens or overrides the
counts. Users without any transition evidence get a flat q, so the neural model decides.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

TIE_BREAK = 1e-6


def sum_normalise_rows(scores: torch.Tensor) -> torch.Tensor:
    """[B, N] non-negative scores -> rows summing to 1 (all-zero rows stay zero)."""
    clipped = scores.clamp(min=0)
    return clipped / clipped.sum(dim=1, keepdim=True).clamp(min=1e-12)


@dataclass(frozen=True)
class LogBlend:
    """score = log(q + smoothing) + scale * logits + TIE_BREAK * prior.

    scale=0 ranks by transitions alone (popularity breaking ties); neural_only ignores q.
    """

    scale: float
    smoothing: float = 1e-4
    neural_only: bool = False

    def __call__(self, parts: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """parts: "neural" [B, N] logits, "transition" [B, N] rows of q, "prior" [B or 1, N] in [0, 1]."""
        prior = parts["prior"]
        if self.neural_only:
            return parts["neural"] + TIE_BREAK * prior
        out = torch.log(parts["transition"] + self.smoothing) + TIE_BREAK * prior
        if self.scale:
            out = out + self.scale * parts["neural"]
        return out

    @property
    def name(self) -> str:
        return "neural" if self.neural_only else f"blend(scale={self.scale:g},smoothing={self.smoothing:g})"
