"""The served recommender: a SASRec model blended with extended item transitions.

`fit_hybrid` trains both parts on a set of training sequences; `tune_blend` picks the
blend on a validation split; `HybridRecommender.score` ranks all items for a batch of
histories. Tensors round-trip through `to_tensors` / `from_tensors` for checkpoints.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from models.data.sequences import Dataset, Split
from models.rec.baselines import Transition, TransitionConfig, item_counts
from models.rec.blend import LogBlend, sum_normalise_rows
from models.rec.evaluation import PartsFn, evaluate_split, metrics_of
from models.rec.sasrec import SASRec, SASRecConfig
from models.rec.training import TrainConfig, TrainHistory, train_sasrec


def _extended_transitions() -> TransitionConfig:
    # tuned on the Beauty validation split: more history, skip-one transitions and a
    # little reverse evidence each add a few percent NDCG over the README baseline
    return TransitionConfig(weights=(1.0, 0.5, 0.25, 0.125, 0.0625), gaps=2, gap_decay=0.5, reverse=0.3)


@dataclass(frozen=True)
class HybridConfig:
    """Everything needed to rebuild and retrain the hybrid model."""

    dim: int = 64
    layers: int = 2
    heads: int = 2
    max_len: int = 50
    dropout: float = 0.5
    use_attributes: bool = True
    train: TrainConfig = field(default_factory=TrainConfig)
    transition: TransitionConfig = field(default_factory=_extended_transitions)
    # on Beauty the best scale is 0.2-0.3 and the smoothing barely matters (1e-4..1e-2)
    scales: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.5, 1.0)
    smoothings: tuple[float, ...] = (1e-3,)
    tune_users: int = 10000  # validation users used to pick the blend (a random subset if more)

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


class HybridRecommender:
    """Scores all items for histories of item indices: blend(SASRec logits, transitions)."""

    def __init__(self, sasrec: SASRec, transition: Transition, prior: np.ndarray, blend: LogBlend) -> None:
        self.sasrec = sasrec
        self.transition = transition
        self.prior = torch.from_numpy(prior.astype(np.float32))  # [n_items] popularity in [0, 1]
        self.blend = blend

    @property
    def n_items(self) -> int:
        return self.sasrec.config.n_items

    def parts(self, histories: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
        """Component rows: "neural" logits, "transition" distribution, "prior": each [B, N] or [1, N]."""
        raw = self.transition.score(histories) - self.transition.config.popularity_weight * self.transition.popularity_tensor()
        return {
            "neural": self.sasrec.score(histories),
            "transition": sum_normalise_rows(raw),
            "prior": self.prior.unsqueeze(0),
        }

    def score(self, histories: Sequence[np.ndarray]) -> torch.Tensor:
        """[B, n_items] blended scores (history not masked)."""
        return self.blend(self.parts(histories))

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """Flat tensors for safetensors: SASRec weights, transition CSR matrix, popularity."""
        out = {f"sasrec.{k}": v for k, v in self.sasrec.state_dict().items()}
        m = self.transition.matrix.tocsr()
        out["transition.indptr"] = torch.from_numpy(m.indptr.astype(np.int64))
        out["transition.indices"] = torch.from_numpy(m.indices.astype(np.int64))
        out["transition.data"] = torch.from_numpy(m.data.astype(np.float32))
        out["transition.popularity"] = torch.from_numpy(self.transition.popularity.astype(np.float32))
        out["prior"] = self.prior
        return out

    @classmethod
    def from_tensors(
        cls,
        tensors: dict[str, torch.Tensor],
        model_config: SASRecConfig,
        transition_config: TransitionConfig,
        blend: LogBlend,
        attributes: Sequence[np.ndarray] | None = None,
    ) -> "HybridRecommender":
        sasrec = SASRec(model_config, attributes)
        sasrec.load_state_dict({k[len("sasrec.") :]: v for k, v in tensors.items() if k.startswith("sasrec.")})
        sasrec.eval()
        n = model_config.n_items
        transition = Transition(n, transition_config)
        transition.matrix = sp.csr_matrix(
            (tensors["transition.data"].numpy(), tensors["transition.indices"].numpy(), tensors["transition.indptr"].numpy()),
            shape=(n, n),
        )
        transition.popularity = tensors["transition.popularity"].double().numpy()
        return cls(sasrec, transition, tensors["prior"].numpy(), blend)


def model_config(data: Dataset, config: HybridConfig) -> SASRecConfig:
    n_attr = data.n_attributes if config.use_attributes and data.item_attributes else 0
    return SASRecConfig(
        n_items=data.n_items, n_attributes=n_attr, dim=config.dim, layers=config.layers,
        heads=config.heads, max_len=config.max_len, dropout=config.dropout,
    )


def fit_hybrid(
    data: Dataset,
    sequences: Sequence[np.ndarray],
    config: HybridConfig,
    blend: LogBlend | None = None,
    epochs: int | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> tuple[HybridRecommender, TrainHistory]:
    """Train SASRec and count transitions on `sequences` (nothing else is seen)."""
    torch.manual_seed(config.train.seed)
    mc = model_config(data, config)
    sasrec = SASRec(mc, data.item_attributes if mc.n_attributes else None)
    train_cfg = config.train if epochs is None else dataclasses.replace(config.train, epochs=epochs, time_budget_s=math.inf)
    history = train_sasrec(sasrec, sequences, train_cfg, progress=progress)
    transition = Transition(data.n_items, config.transition).fit(sequences)
    counts = item_counts(sequences, data.n_items)
    prior = counts / max(counts.max(initial=0.0), 1.0)
    return HybridRecommender(sasrec, transition, prior, blend or LogBlend(0.0)), history


def candidate_blends(config: HybridConfig) -> list[LogBlend]:
    """Every blend tried on validation, plus the neural model alone."""
    blends = [LogBlend(s, e) for e in config.smoothings for s in config.scales if s or e == config.smoothings[0]]
    return blends + [LogBlend(0.0, neural_only=True)]


def tune_blend(
    model: HybridRecommender, split: Split, config: HybridConfig, key: str = "NDCG@10"
) -> tuple[LogBlend, dict[str, dict[str, float]]]:
    """Pick the blend with the best validation `key`; returns it and every candidate's metrics."""
    return tune_blend_of(model.parts, split, config, key)


def tune_blend_of(
    parts: PartsFn, split: Split, config: HybridConfig, key: str = "NDCG@10"
) -> tuple[LogBlend, dict[str, dict[str, float]]]:
    """`tune_blend` for any parts ("neural", "transition", "prior" rows), e.g. an online model's."""
    users = None
    if len(split.evaluated) > config.tune_users:
        rng = np.random.default_rng(config.train.seed)
        users = np.sort(rng.choice(len(split.evaluated), config.tune_users, replace=False))
    blends = candidate_blends(config)
    ranks = evaluate_split(split, parts, {b.name: b for b in blends}, users=users)
    table = metrics_of(ranks)
    best = max(blends, key=lambda b: table[b.name][key])
    return best, table

