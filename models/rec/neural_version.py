"""A servable version of the SASRec that learns online: item rows and the transformer, frozen.

What the learner hands the gateways (`<model_dir>/rec-neural/vNNNN`): the item rows and the
transformer's weights of one promoted state, and `blend`, the weight of this model in the
served blend (picked on samples the model had not learned; 0 leaves it out). `streamrank
train` writes the first one from the offline model; the online learner warm-starts from the
newest and writes each version it promotes. Immutable once built: a gateway swaps whole
versions by replacing one reference (copy-on-write), and ranks many users in one forward pass.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from models.ranker import RankRequest, Ranking
from models.rec.embedding_version import rank_by_users
from models.rec.online_neural import DenseTransformer, OnlineSASRec, OnlineSASRecConfig

NAME = "rec-neural"
_DENSE = "dense."


@dataclass(frozen=True)
class NeuralRecVersion:
    version: str
    item_ids: tuple[str, ...]
    rows: torch.Tensor  # [N, dim] float32: logits are dot products with these (not normalised)
    dense: DenseTransformer  # eval mode, never trained here
    blend: float = 0.0  # weight in the served blend; 0: the gateway leaves this model out
    index: dict[str, int] = field(default_factory=dict, compare=False)
    _matrix: np.ndarray = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.rows.shape[0] != len(self.item_ids):
            raise ValueError(f"{len(self.item_ids)} ids for {self.rows.shape[0]} rows")
        if not 0.0 <= self.blend <= 1.0:
            raise ValueError(f"blend weight {self.blend} is not in [0, 1]")
        self.dense.eval()
        self.index.update({item: row for row, item in enumerate(self.item_ids)})
        object.__setattr__(self, "_matrix", self.rows.numpy())  # the same memory, for numpy's BLAS

    @property
    def max_len(self) -> int:
        return int(self.dense.positions.weight.shape[0])

    @classmethod
    def from_model(cls, model: OnlineSASRec, version: str, blend: float) -> "NeuralRecVersion":
        """A frozen copy of `model`'s rows and transformer (the model learns on unchanged)."""
        items = [str(key) for key in model.catalogue()]
        with torch.no_grad():
            rows = model.store.lookup(list(model.catalogue()), admit=False).detach().float().cpu().clone()
        return cls(version, tuple(items), rows, model.dense.copy(), blend)

    def to_online(self, config: OnlineSASRecConfig | None = None,
                  devices: list[torch.device] | None = None) -> OnlineSASRec:
        """A model that learns on from this version (the learner's warm start)."""
        return OnlineSASRec.from_rows(self.dense.copy(), self.item_ids, self.rows.clone(), self.max_len, config, devices)

    def save(self, model_dir: Path | str, card: dict[str, Any]) -> Path:
        tensors = {"item_rows": self.rows, **{_DENSE + k: v for k, v in self.dense.state_dict().items()}}
        return save_checkpoint(model_dir, NAME, tensors, {**card, "item_ids": list(self.item_ids), "blend": self.blend,
                                                          "shape": self.dense.shape()})

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint | Path | str) -> "NeuralRecVersion":
        ck = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
        dense = DenseTransformer.of_shape(**ck.card["shape"])
        dense.load_state_dict({k[len(_DENSE):]: v for k, v in ck.tensors.items() if k.startswith(_DENSE)})
        return cls(f"{NAME}-v{ck.version}", tuple(ck.card["item_ids"]), ck.tensors["item_rows"].float().contiguous(),
                   dense, float(ck.card.get("blend", 0.0)))

    # ---- serving ------------------------------------------------------------------------
    def rank(self, history: Sequence[str], k: int, exclude: Iterable[str] = (),
             allow: Callable[[str], bool] | None = None) -> Ranking:
        """Top `k` (item, probability of being next) after `history`; [] when no item of it has a row."""
        return self.rank_many([(history, k, exclude, allow)])[0]

    def rank_many(self, requests: Sequence[RankRequest]) -> list[Ranking]:
        """`rank` of each request: one transformer pass over every history, one product with the rows."""
        found = [[row for item in history if (row := self.index.get(item)) is not None][-self.max_len:]
                 for history, *_ in requests]
        known = [b for b, rows in enumerate(found) if rows]
        if not known:
            return [[] for _ in requests]
        histories = [found[b] for b in known]
        width = max(len(h) for h in histories)
        padded = torch.zeros(len(histories), width, self.rows.shape[1])
        for j, rows in enumerate(histories):
            padded[j, : len(rows)] = self.rows[rows]
        with torch.no_grad():
            users = self.dense.last_states(padded, [len(h) for h in histories]).numpy()
        ranked = rank_by_users(self.item_ids, self.index, self._matrix, requests, known, users, log_softmax=True)
        # probabilities, not logits: the served blend scales each ranking by its largest score,
        # and a logit's sign says nothing (a negative one would push an item below absent ones)
        return [[(item, math.exp(s)) for item, s in r] for r in ranked]
