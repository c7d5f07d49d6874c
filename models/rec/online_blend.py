"""The online models as parts of the served blend, on a fixed item index.

The offline hybrid blends SASRec logits with a per-user distribution q over items drawn from
transition counts (`blend.LogBlend`: log(q + smoothing) + scale * logits). Online, the same
blend takes the online SASRec's logits and the count model's transitions; these functions lay
both out as rows over an item index [B, n_items] so the offline and online parts line up.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from models.embedding_store import EmbeddingStore
from models.online.rec_model import OnlineRecModel
from models.rec.blend import sum_normalise_rows
from models.rec.online_neural import OnlineSASRec

Id = Hashable
Index = Mapping[Any, int]  # item id -> column (Mapping is invariant in its keys: str ids must fit)


def count_parts(model: OnlineRecModel, histories: Sequence[Sequence[Id]], index: Index,
                n_items: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The count model's scores [B, n_items] (-inf for items without a row) and its rows of q [B, n_items].

    The model's own `DenseScorer` (transitions, then scores), over the item index at once rather
    than per shard as `scoring.full_scores` goes (a test holds them to the model's own scores).
    q leaves out the popularity term: spread over the whole catalogue it would outweigh the
    transitions once normalised; the blend's prior breaks ties instead.
    """
    dense, batch, dim = model.dense, len(histories), model.config.dim
    device = dense.trans_weight.device  # the scorer's (the store's output device)

    def on_device(values: object, dtype: type[np.generic]) -> torch.Tensor:
        # through numpy: torch.tensor of a long tuple of Python numbers is several times slower
        return torch.from_numpy(np.asarray(values, dtype=dtype)).to(device)

    with torch.no_grad():
        # the features the model itself reads (each history item's strongest successors), among the index
        samples, features, cols, values = model.counts.features_among(histories, model.config.history, index,
                                                                      model.config.features_per_source)
        transitions = dense.transitions(on_device(samples, np.int64), on_device(features, np.int64),
                                        on_device(cols, np.int64), on_device(values, np.float32), (batch, n_items))
        tables = model.tables()
        columns = _columns(model.store, index)
        if model.embedding_trained():
            user = model.users(histories).to(device)
            rows = _by_index([t.rows.T.float() for t in tables], columns, dim, n_items, 0.0).T.to(device)
        else:  # the gate is fixed at 0: the embedding term is 0 whatever the rows
            user, rows = torch.zeros(batch, dim, device=device), torch.zeros(n_items, dim, device=device)
        popularity = _by_index([t.popularity.unsqueeze(0) for t in tables], columns, 1, n_items, float("nan"))
        scores = dense.scores(user, rows, transitions, popularity[0].to(device)).cpu()
        transitions = transitions.cpu()
    return scores.nan_to_num(nan=float("-inf")), sum_normalise_rows(transitions)


def neural_logits(model: OnlineSASRec, histories: Sequence[Sequence[Id]], index: Index,
                  n_items: int) -> torch.Tensor:
    """[B, n_items] the online SASRec's logits (-inf for items without a row)."""
    scores = model.scores(histories)
    cols = torch.tensor([index[key] for key in model.catalogue()], dtype=torch.long)
    out = torch.full((len(histories), n_items), float("-inf"))
    out[:, cols] = scores
    return out


def abstain_when_blind(logits: torch.Tensor) -> torch.Tensor:
    """Rows with no finite logit (a history of items without rows) become 0: q alone decides."""
    blind = torch.isinf(logits).all(dim=1)
    if not bool(blind.any()):
        return logits
    out = logits.clone()
    out[blind] = 0.0
    return out


def _columns(store: EmbeddingStore, index: Index) -> list[torch.Tensor]:
    """Per shard: the item index of each used row (-1 for ids outside `index`)."""
    return [torch.tensor([index.get(key, -1) for key in store.row_ids(s)[: store.used_rows(s)]], dtype=torch.long)
            for s in range(len(store.shards))]


def _by_index(scores: Sequence[torch.Tensor], columns: Sequence[torch.Tensor], batch: int, n_items: int,
              fill: float) -> torch.Tensor:
    """Per-shard score blocks [B, n_s] scattered into [B, n_items] by item index (others `fill`)."""
    out = torch.full((batch, n_items), fill)
    for block, cols in zip(scores, columns):
        keep = cols >= 0
        out[:, cols[keep]] = block.cpu()[:, keep]
    return out
