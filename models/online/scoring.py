"""The scoring function shared by the live model and its serving copies.

score(i) = g * u . E[i] + sum_{c,j} w_cj trans_cj(i) + gamma * log(1 + pop(i)),
u = W sum_j softmax(a)_j E[h_j] over the user's last k items (h_0 the most recent),
trans_cj(i) = count_c(h_j -> i) / sqrt(1 + degree_c(h_j)) for each count channel c (see counts).
At the start (w_0j = 1, .5, .25, ...; other channels smaller; gamma tiny) it ranks like the
transition baseline widened by the extra channels; the gate g decides how much the embedding adds.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from models.metrics import ranks_among

Id = Hashable
# (sample, feature f = channel * k + history position j, item, count_c(h_j -> item) / sqrt(1 + deg_c(h_j)))
TransitionEntry = tuple[int, int, Id, float]


class DenseScorer(nn.Module):
    """The dense weights: position attention a [k], W [d, d], transition weights w [channels * k],
    gamma, and the embedding gate g."""

    def __init__(self, dim: int, history: int, user_scale: float, pop_weight: float,
                 channel_init: Sequence[float] = (1.0,), embed_gate: float = 1.0) -> None:
        super().__init__()
        self.position = nn.Parameter(torch.zeros(history))
        self.project = nn.Parameter(torch.eye(dim) * user_scale)
        decay = 0.5 ** torch.arange(history, dtype=torch.float32)
        self.trans_weight = nn.Parameter(torch.cat([w * decay for w in channel_init]))
        self.pop_weight = nn.Parameter(torch.tensor(pop_weight))
        self.embed_gate = nn.Parameter(torch.tensor(embed_gate))

    def user(self, history: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, d] user vectors from history rows [B, k, d] and mask [B, k] (True = a real item)."""
        logits = self.position.expand_as(mask).masked_fill(~mask, -1e9)
        attention = torch.softmax(logits, dim=1) * mask  # a user with no history gets u = 0
        return (attention.unsqueeze(-1) * history).sum(dim=1) @ self.project.T

    def scores(self, user: torch.Tensor, rows: torch.Tensor, transitions: torch.Tensor,
               popularity: torch.Tensor) -> torch.Tensor:
        """[B, n]: user [B, d], rows [n, d], weighted transitions [B, n], popularity counts [n]."""
        return self.embed_gate * (user @ rows.T) + transitions + self.pop_weight * torch.log1p(popularity)

    def transitions(self, samples: torch.Tensor, positions: torch.Tensor, columns: torch.Tensor,
                    values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        """[B, n] = sum_f w_f trans_f from sparse entries (all [m]); differentiable in w."""
        out = torch.zeros(shape, device=values.device)
        weighted = values * self.trans_weight.to(values.device)[positions]
        return out.index_put((samples, columns), weighted, accumulate=True)


class Table(NamedTuple):
    """Rows scored together on one device: embeddings [n, d] and popularity counts [n]."""

    rows: torch.Tensor
    popularity: torch.Tensor


# ids -> (table, column) of each id, or None when it is in no table
Locate = Callable[[Sequence[Id]], list[tuple[int, int] | None]]


# The transition features among a table's columns, as (samples, f, columns, values) lists.
FeaturesAmong = Callable[[Mapping[Id, int]], tuple[list[int], list[int], list[int], list[float]]]


def full_scores(dense: DenseScorer, users: torch.Tensor, tables: Sequence[Table], locate: Locate,
                entries: Sequence[TransitionEntry], histories: Sequence[Sequence[Id]],
                keep: Sequence[Id | None]) -> list[torch.Tensor]:
    """Scores [B, n_t] of every row of every table; history items masked to -inf except `keep[b]`.

    Each table is scored on its own device; python only loops over transition entries and
    history items, never over the catalogue.
    """
    items = list({item for _, _, item, _ in entries} | {i for h in histories for i in h})
    where = dict(zip(items, locate(items)))
    columns = [{item: loc[1] for item, loc in where.items() if loc is not None and loc[0] == t}
               for t in range(len(tables))]
    return scores_in_columns(dense, users, tables, columns, lambda column: entries_among(entries, column),
                             histories, keep)


def scores_in_columns(dense: DenseScorer, users: torch.Tensor, tables: Sequence[Table],
                      columns: Sequence[Mapping[Id, int]], features_among: FeaturesAmong,
                      histories: Sequence[Sequence[Id]], keep: Sequence[Id | None]) -> list[torch.Tensor]:
    """`full_scores` with each table's id -> column map given (`columns[t]`, at least every id
    the features or histories name that has a column there) and the features asked for per
    table: a model that holds those maps skips building a tuple for every successor of every
    history item and locating each (most of the learner's validation on a Zipf-shaped shop)."""
    out = []
    for table, column in zip(tables, columns):
        device = table.rows.device
        shape = (users.shape[0], table.rows.shape[0])
        trans = dense.transitions(*feature_tensors(features_among(column), device), shape)
        scores = dense.scores(users.to(device), table.rows.float(), trans, table.popularity)
        rows, cols = history_mask_pairs(histories, keep, column)
        if rows:
            scores[torch.tensor(rows, device=device), torch.tensor(cols, device=device)] = float("-inf")
        out.append(scores)
    return out


def target_ranks(scores: Sequence[torch.Tensor], targets: Sequence[tuple[int, int] | None]) -> list[int | None]:
    """0-based rank of each target over all tables (`models.metrics.ranks_among`: ties count against
    it, a -inf or NaN score ranks last); None if it has no row."""
    batch = len(targets)
    if batch == 0:
        return []
    target_score = torch.full((batch,), float("nan"))
    for t, table_scores in enumerate(scores):
        picks = [(b, loc[1]) for b, loc in enumerate(targets) if loc is not None and loc[0] == t]
        if picks:
            b, c = (torch.tensor(x) for x in zip(*picks))
            target_score[b] = table_scores[b.to(table_scores.device), c.to(table_scores.device)].float().cpu()
    ranks = ranks_among(target_score, scores)  # the tables are column blocks of one score matrix
    return [None if loc is None else int(ranks[b]) for b, loc in enumerate(targets)]


def entries_among(entries: Sequence[TransitionEntry], column: Mapping[Id, int]
                  ) -> tuple[list[int], list[int], list[int], list[float]]:
    """The entries whose item has a column, as (samples, positions, columns, values) lists."""
    kept = [(b, j, column[item], v) for b, j, item, v in entries if item in column]
    if not kept:
        return [], [], [], []
    b, j, c, v = (list(x) for x in zip(*kept))
    return b, j, c, v


def feature_tensors(features: tuple[Sequence[int], Sequence[int], Sequence[int], Sequence[float]],
                    device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(samples, positions, columns, values) lists as tensors on `device`; through numpy, which
    reads a list of Python numbers 3-4x faster than torch.tensor does."""
    b, j, c, v = features

    def as_long(x: Sequence[int]) -> torch.Tensor:
        return torch.from_numpy(np.fromiter(x, np.int64, len(x))).to(device)

    return as_long(b), as_long(j), as_long(c), torch.from_numpy(np.array(v, dtype=np.float32)).to(device)


def last_items(histories: Sequence[Sequence[Id]], k: int) -> list[list[Id]]:
    """Each history's last k items, most recent first."""
    return [list(reversed(h[-k:])) if k else [] for h in histories]


def history_mask_pairs(histories: Sequence[Sequence[Id]], targets: Sequence[Id | None],
                       column: Mapping[Id, int]) -> tuple[list[int], list[int]]:
    """(samples, columns) of every history item that has a column, the sample's target excepted."""
    rows: list[int] = []
    cols: list[int] = []
    for b, (history, target) in enumerate(zip(histories, targets)):
        for item in set(history):
            c = column.get(item)
            if c is not None and item != target:
                rows.append(b)
                cols.append(c)
    return rows, cols
