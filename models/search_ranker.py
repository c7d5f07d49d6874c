"""The learned ranker of hybrid search and the features it scores.

Candidates (chosen by `models/hybrid_search.py:HybridSearcher`: the union of the top-N of word
BM25, character 3-gram BM25 and the dense retriever) are re-scored by a small ranker. Each
(query, item, user) candidate gets the features in FEATURES:

- dense: cosine of the fine-tuned query embedding and the item embedding
- dense_zero_shot: cosine of the pretrained query embedding and the item embedding
- bm25_rel: BM25 score / the best BM25 score of this query over the catalog (0..1)
- bm25_log: log1p(BM25 score)
- coverage: share of the query's (stemmed) terms found in the item text (0..1)
- chars_rel, chars_log: the same two for BM25 over character 3-grams (robust to misspellings)
- query_terms: log1p(number of query terms), the same for every candidate: lets the MLP trust
  the lexical features more on long queries
- title_terms: log1p(number of terms in the item text)
- popularity_log: log1p(item popularity), e.g. a decayed event count (0 offline)
- ctr: item click-through rate (0 offline)
- personal: user affinity vector . item embedding (0 without a user)

The last three are 0 in offline training, so their weights stay at 0 until a model is fitted
on logged traffic that carries them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

FEATURES = (
    "dense", "dense_zero_shot", "bm25_rel", "bm25_log", "coverage", "chars_rel", "chars_log",
    "query_terms", "title_terms", "popularity_log", "ctr", "personal",
)
TENSOR_PREFIX = "ranker."


class SearchRanker(nn.Module):
    """Score candidates from features: linear part plus a small ReLU MLP.

    forward(features [..., F]) -> scores [...]; inputs are standardised with buffers `mean`
    and `std` fitted on training candidates (see `fit_scaling`).
    """

    mean: torch.Tensor  # buffers [F], registered in __init__
    std: torch.Tensor

    def __init__(self, n_features: int = len(FEATURES), hidden: int = 16):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        self.linear = nn.Linear(n_features, 1)
        hidden_layer, out = nn.Linear(n_features, hidden), nn.Linear(hidden, 1)
        self.mlp = nn.Sequential(hidden_layer, nn.ReLU(), out)
        nn.init.zeros_(self.linear.weight)
        with torch.no_grad():
            self.linear.weight[0, FEATURES.index("dense")] = 1.0  # start as the dense ranker
        nn.init.zeros_(out.weight)

    def fit_scaling(self, features: torch.Tensor) -> None:
        """Set mean/std from training features [M, F]; constant features keep std 1."""
        std = features.std(dim=0)
        self.mean.copy_(features.mean(dim=0))
        self.std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = (features - self.mean) / self.std
        return (self.linear(x) + self.mlp(x)).squeeze(-1)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {TENSOR_PREFIX + k: v.detach().cpu() for k, v in self.state_dict().items()}

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> "SearchRanker":
        self.load_state_dict({k[len(TENSOR_PREFIX):]: v for k, v in tensors.items() if k.startswith(TENSOR_PREFIX)})
        return self


@dataclass
class Candidates:
    """Candidates of one query: slots idx [C] int64 (catalog rows for a searcher built
    `from_catalog`), features [C, F] float32 and their item ids."""

    idx: np.ndarray
    features: torch.Tensor
    ids: list[str] = field(default_factory=list)


def top_positive(scores: np.ndarray, n: int) -> np.ndarray:
    """Rows of the n highest positive scores (unordered), [<= n] int64.

    Partitions only the positive scores: most items share no term with a query, and a
    partition of the whole catalog cost a millisecond per query for two indexes.
    """
    if n <= 0 or not len(scores):
        return np.zeros(0, np.int64)
    positive = np.flatnonzero(scores > 0)
    if len(positive) <= n:
        return positive
    return positive[np.argpartition(-scores[positive], n - 1)[:n]]


@dataclass(frozen=True)
class LexicalFeatures:
    """What BM25 knows of C candidates: word and char scores of the whole catalog [S] (their
    best scales the relative features) and where the candidates sit in them, [C] `at`."""

    words: np.ndarray
    chars: np.ndarray
    at: np.ndarray
    coverage: np.ndarray  # [C] share of query terms in each candidate
    query_terms: int
    lengths: np.ndarray  # [C] terms in each candidate's text


def candidate_features(vecs: torch.Tensor, q_tuned: torch.Tensor, q_zero: torch.Tensor, user_vec: torch.Tensor | None,
                       lexical: LexicalFeatures, popularity: torch.Tensor | np.ndarray,
                       ctr: torch.Tensor | np.ndarray) -> torch.Tensor:
    """The FEATURES of C candidates, [C, F] float32 (one function: a ranker fitted on candidates
    of a training searcher scores those of a live one exactly alike).

    vecs: [C, D] item vectors (zeros where none); q_tuned, q_zero, user_vec: [D]; popularity, ctr: [C].
    """
    n = len(lexical.at)
    return torch.stack(
        [
            vecs @ q_tuned,
            vecs @ q_zero,
            *_relative_and_log(lexical.words, lexical.at),
            torch.from_numpy(lexical.coverage),
            *_relative_and_log(lexical.chars, lexical.at),
            torch.full((n,), float(np.log1p(lexical.query_terms))),
            torch.from_numpy(np.log1p(lexical.lengths)),
            torch.log1p(torch.as_tensor(popularity, dtype=torch.float32).clamp(min=0)),
            torch.as_tensor(ctr, dtype=torch.float32),
            vecs @ user_vec if user_vec is not None else torch.zeros(n),
        ],
        dim=1,
    ).float()


def _relative_and_log(scores: np.ndarray, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(score / best score of the catalog, log1p(score)) of rows idx, [C] each."""
    best = float(scores.max()) if len(scores) else 0.0
    picked = torch.from_numpy(scores[idx])
    return (picked / best if best > 0 else torch.zeros(len(idx))), torch.log1p(picked)


def dense_search(item_vecs: torch.Tensor, queries: torch.Tensor, k: int, chunk: int = 256) -> torch.Tensor:
    """Top-k catalog rows per query by cosine: queries [Q, D], item_vecs [N, D] -> [Q, k] long."""
    out = []
    for start in range(0, queries.shape[0], chunk):
        out.append(torch.topk(queries[start : start + chunk] @ item_vecs.T, min(k, item_vecs.shape[0]), dim=1).indices)
    return torch.cat(out) if out else torch.zeros(0, k, dtype=torch.long)
