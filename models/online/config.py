"""The learner's decision knobs, with the one set of defaults the product runs with.

Torch-free, so `app/settings.py` takes its defaults for these fields from here without
loading the models (models/ may not import app/: tests/unit/test_layering.py).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from models.errors import SettingsError

# LearnerConfig field -> the settings key (its STREAMRANK_ variable, lower case) that sets it.
SETTINGS_FIELDS = {"min_samples": "guard_min_samples", "guard_ratio": "guard_ratio", "fusion_alpha": "fusion_alpha",
                   "validation_share": "learner_validation_share"}


@dataclass(frozen=True)
class LearnerConfig:
    min_samples: int = 200  # rank (or click) samples since the last version before deciding
    guard_ratio: float = 0.9  # live must reach this share of serving's quality on the same samples
    fusion_alpha: float = 0.8  # new serving = alpha * live + (1 - alpha) * serving
    window: int = 100_000
    keep: int = 3  # promoted snapshots kept for rollback
    # Share of rank samples scored for progressive validation (every one is learned). Scoring
    # ranks the whole catalog with two or three models, four fifths of a step when all are
    # scored; an evenly spread share keeps the comparison paired (the same samples for every
    # model) and min_samples counts scored samples, so the guard still waits for significance.
    # At least one sample of every micro-batch is scored (see OnlineLearner._validation_picks).
    validation_share: float = 0.1

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not _RULES[f.name](value):
                raise SettingsError(f"learner config {f.name} must be {_TEXT[f.name]}; got {value!r}")


def _share(v: float) -> bool:
    return 0 < v <= 1


# The settings refuse a guard ratio of 0; a learner built in code may use it to promote always.
_RULES = {"min_samples": lambda v: v >= 1, "guard_ratio": lambda v: 0 <= v <= 1, "fusion_alpha": _share,
          "window": lambda v: v >= 1, "keep": lambda v: v >= 1, "validation_share": _share}
_TEXT = {"min_samples": "at least 1", "guard_ratio": "between 0 and 1", "fusion_alpha": "above 0 and at most 1",
         "window": "at least 1", "keep": "at least 1", "validation_share": "above 0 and at most 1"}
