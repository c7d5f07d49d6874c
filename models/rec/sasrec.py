"""SASRec-style next-item transformer trained with softmax cross-entropy on every position.

The loss is the eSASRec recipe: cross-entropy against all items (full softmax) or against
a large set of shared sampled negatives (much cheaper on CPU, close in quality).

Items are indices 0..n_items-1; index n_items is padding. An item's vector is its own
embedding plus the mean of its attribute embeddings (when attributes are given), and the
same table scores the output (tied weights). Sequences are right-padded, so a causal mask
alone keeps every real position away from padding.

The offline model uses a plain nn.Embedding rather than models.embedding_store: the whole
catalogue fits in one table, training needs dense autograd over it for the full softmax, and
rows never need admission or eviction here. The trained table can be imported into an
EmbeddingStore for online serving.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class SASRecConfig:
    """Shape and regularisation of the model."""

    n_items: int
    n_attributes: int = 0
    dim: int = 64
    layers: int = 2
    heads: int = 2
    max_len: int = 50
    dropout: float = 0.3


class ItemEncoder(nn.Module):
    """Item vectors: id embedding + mean attribute embedding.

    forward(ids [...] long) -> [..., dim]; all() -> [n_items, dim] (padding excluded).
    """

    attr_table: torch.Tensor  # buffers, registered when there are attributes
    attr_scale: torch.Tensor

    def __init__(self, config: SASRecConfig, attributes: Sequence[np.ndarray] | None = None) -> None:
        super().__init__()
        self.n_items = config.n_items
        self.items = nn.Embedding(config.n_items + 1, config.dim, padding_idx=config.n_items)
        nn.init.normal_(self.items.weight, std=0.02)
        with torch.no_grad():
            self.items.weight[config.n_items].zero_()
        self.attributes: nn.Embedding | None = None
        if attributes is not None and config.n_attributes > 0:
            width = max(1, max((len(a) for a in attributes), default=1))
            table = np.full((config.n_items + 1, width), config.n_attributes, dtype=np.int64)
            for i, a in enumerate(attributes):
                table[i, : len(a)] = a
            counts = np.asarray([len(a) for a in attributes] + [0], dtype=np.float32)
            # a fixed [n_items + 1, width] table of attribute indices, padded with an all-zero row
            self.register_buffer("attr_table", torch.from_numpy(table), persistent=False)
            self.register_buffer("attr_scale", torch.from_numpy(1.0 / np.maximum(counts, 1.0)), persistent=False)
            self.attributes = nn.Embedding(config.n_attributes + 1, config.dim, padding_idx=config.n_attributes)
            nn.init.normal_(self.attributes.weight, std=0.02)
            with torch.no_grad():
                self.attributes.weight[config.n_attributes].zero_()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out = self.items(ids)
        if self.attributes is not None:
            out = out + self.attributes(self.attr_table[ids]).sum(-2) * self.attr_scale[ids].unsqueeze(-1)
        return out

    def all(self) -> torch.Tensor:
        return self(torch.arange(self.n_items, device=self.items.weight.device))


class SASRec(nn.Module):
    """Causal transformer over item sequences.

    forward(seq [B, L] long, padded with n_items) -> hidden states [B, L, dim];
    hidden[b, t] predicts the item that follows seq[b, t].
    """

    def __init__(self, config: SASRecConfig, attributes: Sequence[np.ndarray] | None = None) -> None:
        super().__init__()
        self.config = config
        self.encoder = ItemEncoder(config, attributes)
        self.positions = nn.Embedding(config.max_len, config.dim)
        nn.init.normal_(self.positions.weight, std=0.02)
        self.dropout = nn.Dropout(config.dropout)
        layer = nn.TransformerEncoderLayer(
            d_model=config.dim,
            nhead=config.heads,
            dim_feedforward=config.dim,
            dropout=config.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.dim)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """seq [B, L] -> hidden states [B, L, dim]."""
        length = seq.shape[1]
        x = self.encoder(seq) * (self.config.dim**0.5) + self.positions.weight[:length]
        x = self.dropout(x)
        causal = torch.triu(torch.full((length, length), float("-inf"), device=seq.device), diagonal=1)
        return self.norm(self.blocks(x, mask=causal, is_causal=True))

    def loss(self, seq: torch.Tensor, target: torch.Tensor, negatives: int = 0) -> torch.Tensor:
        """Mean softmax cross-entropy over real positions. seq, target: [B, L] (pad = n_items).

        negatives=0: full softmax over all items. Otherwise a sampled softmax: the target
        against `negatives` items drawn uniformly and shared by the batch (a negative equal
        to the target is masked out).
        """
        h = self(seq)
        valid = target != self.config.n_items
        h, pos = h[valid], target[valid]  # [M, dim], [M]
        if negatives <= 0 or negatives >= self.config.n_items:
            logits = h @ self.encoder.all().T  # [M, n_items]
            return nn.functional.cross_entropy(logits, pos)
        neg = torch.randint(0, self.config.n_items, (negatives,), device=seq.device)
        pos_logit = (h * self.encoder(pos)).sum(-1, keepdim=True)  # [M, 1]
        neg_logits = h @ self.encoder(neg).T  # [M, negatives]
        neg_logits = neg_logits.masked_fill(pos.unsqueeze(1) == neg.unsqueeze(0), float("-inf"))
        logits = torch.cat([pos_logit, neg_logits], dim=1)
        return nn.functional.cross_entropy(logits, torch.zeros_like(pos))

    @torch.no_grad()
    def score(self, histories: Sequence[np.ndarray], batch_size: int = 512) -> torch.Tensor:
        """[B, n_items] logits of the next item after each history (empty history: zeros)."""
        was_training = self.training
        self.eval()
        table = self.encoder.all()
        out = torch.zeros(len(histories), self.config.n_items)
        for start in range(0, len(histories), batch_size):
            chunk = histories[start : start + batch_size]
            seq, last = pad_right([h[-self.config.max_len :] for h in chunk], self.config.n_items)
            h = self(seq)
            rows = torch.arange(len(chunk))
            final = h[rows, last.clamp(min=0)]  # [b, dim]
            scores = final @ table.T
            scores[last < 0] = 0.0
            out[start : start + len(chunk)] = scores
        self.train(was_training)
        return out


def pad_right(seqs: Sequence[np.ndarray], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack sequences right-padded with `pad`. Returns ([B, L] long, [B] index of last real item, -1 if empty)."""
    length = max(1, max((len(s) for s in seqs), default=1))
    out = np.full((len(seqs), length), pad, dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    last = torch.tensor([len(s) - 1 for s in seqs], dtype=torch.long)
    return torch.from_numpy(out), last
