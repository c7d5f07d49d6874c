"""SASRec that keeps learning from the stream: warm-started offline, then micro-batch updates.

The offline SASRec's item vectors (id embedding plus mean attribute embedding, folded into
one row per item) go into a sharded `EmbeddingStore`; its transformer is copied as the dense
part. `learn(sequences)` then trains both on each micro-batch, with the sampled softmax of
a softmax over every row (or sampled negatives):
- item rows: row-wise Adagrad on the rows the batch touched only (the store's
  `apply_gradients`), so one step costs what the batch touches, not the catalogue;
- dense weights: Adam with a small learning rate, plus an optional L2 pull towards the
  warm-start weights;
- forgetting: each step mixes in sequences drawn from a reservoir of what was learned
  before (offline sequences included), so the stream's recent items do not overwrite
  what the checkpoint knew.
Items never seen offline get a row on first sight (admission through the store): the mean of
the rows of the items they co-occur with, or a projection of their text vector when one is
given. One code path for CPU and CUDA: the dense part lives on the store's first shard device,
each shard scores its own rows on its device.
"""
from __future__ import annotations

import copy
import random
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from models.embedding_store import EmbeddingStore, StoreConfig, gradient_of
from models.rec.sasrec import SASRec, SASRecConfig
from models.sharding import available_devices

Id = Hashable
Ranking = list[tuple[Id, float]]


@dataclass(frozen=True)
class OnlineSASRecConfig:
    """Knobs of online learning (the shape comes from the offline model)."""

    row_lr: float = 0.02  # Adagrad step on item rows (0.05 and up: NDCG falls below the checkpoint's)
    row_accum0: float = 1e-4  # Adagrad accumulator of warm-started rows: damps their first steps
    dense_lr: float = 1e-4  # Adam on the transformer: small, the checkpoint is already good
    l2_pull: float = 0.0  # weight of sum((w - w_checkpoint)^2) in the loss
    # 0: full softmax over every row (Beauty, time split, first 10k events: NDCG@10 0.0420 against
    # 0.0354 with 512 sampled); a catalogue of millions needs a sample (shared uniform negatives)
    negatives: int = 0
    replay_capacity: int = 50_000  # sequences kept for replay (reservoir sampling)
    replay_ratio: float = 0.25  # replayed sequences per streamed one (Beauty: NDCG 0.0668, 0.0660 without)
    steps: int = 1  # optimisation steps per micro-batch
    chunk: int = 64  # sequences per forward pass, grouped by length
    loss_positions: int = 0  # 0: loss on every position of a sequence; n: on its last n only
    num_shards: int = 0  # 0: one per device present
    capacity: int = 0  # rows per shard; 0: room for the checkpoint's items twice over
    seed: int = 0


class DenseTransformer(nn.Module):
    """SASRec's transformer without its item table: embedded items [B, L, dim] -> hidden [B, L, dim]."""

    def __init__(self, sasrec: SASRec) -> None:
        super().__init__()
        self.scale = sasrec.config.dim ** 0.5
        self.positions = copy.deepcopy(sasrec.positions)
        self.dropout = copy.deepcopy(sasrec.dropout)
        self.blocks = copy.deepcopy(sasrec.blocks)
        self.norm = copy.deepcopy(sasrec.norm)

    @classmethod
    def of_shape(cls, dim: int, layers: int, heads: int, max_len: int) -> "DenseTransformer":
        """An untrained one of this shape (to load a saved state into)."""
        return cls(SASRec(SASRecConfig(n_items=1, dim=dim, layers=layers, heads=heads, max_len=max_len)))

    def copy(self) -> "DenseTransformer":
        """A detached CPU copy of this transformer's weights (a version's, or a warm start's)."""
        twin = DenseTransformer.of_shape(**self.shape())
        twin.load_state_dict({k: v.detach().cpu() for k, v in self.state_dict().items()})
        return twin

    def shape(self) -> dict[str, int]:
        """What `of_shape` takes to build one like it."""
        first = self.blocks.layers[0]
        return {"dim": int(self.positions.weight.shape[1]), "layers": len(self.blocks.layers),
                "heads": int(first.self_attn.num_heads), "max_len": int(self.positions.weight.shape[0])}

    def last_states(self, embedded: torch.Tensor, lengths: Sequence[int]) -> torch.Tensor:
        """[B, dim] hidden state at each sequence's last item, of right-padded `embedded` [B, L, dim]."""
        hidden = self(embedded)
        last = torch.tensor([n - 1 for n in lengths], device=embedded.device)
        return hidden[torch.arange(len(lengths), device=embedded.device), last]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        x = self.dropout(x * self.scale + self.positions.weight[:length])
        causal = torch.triu(torch.full((length, length), float("-inf"), device=x.device), diagonal=1)
        out: torch.Tensor = self.norm(self.blocks(x, mask=causal, is_causal=True))
        return out


class Reservoir:
    """A uniform sample of at most `capacity` sequences out of every one offered (Algorithm R)."""

    def __init__(self, capacity: int, rng: random.Random) -> None:
        self.capacity = capacity
        self.items: list[list[Id]] = []
        self.offered = 0
        self.rng = rng

    def offer(self, sequence: list[Id]) -> None:
        self.offered += 1
        if len(self.items) < self.capacity:
            self.items.append(sequence)
            return
        slot = self.rng.randrange(self.offered)
        if slot < self.capacity:
            self.items[slot] = sequence

    def sample(self, n: int) -> list[list[Id]]:
        if not self.items or n <= 0:
            return []
        return [self.items[self.rng.randrange(len(self.items))] for _ in range(n)]


class OnlineSASRec:
    """A warm-started SASRec whose item rows and transformer learn from micro-batches."""

    def __init__(self, dense: DenseTransformer, store: EmbeddingStore, max_len: int, config: OnlineSASRecConfig) -> None:
        self.config = config
        self.store = store
        self.max_len = max_len
        self.device = store.output_device
        self.dense = dense.to(self.device)
        self.anchor = [p.detach().clone() for p in self.dense.parameters()]
        self.optimizer = torch.optim.Adam(self.dense.parameters(), lr=config.dense_lr)
        self.rng = random.Random(config.seed)
        self.replay = Reservoir(config.replay_capacity, self.rng)
        self.projection: torch.Tensor | None = None  # [text_dim, dim], see fit_text_projection
        self.samples_learned = 0
        self._catalogue: tuple[tuple[int, int, int], list[Id]] | None = None

    @classmethod
    def warm_start(cls, sasrec: SASRec, items: Sequence[Id], config: OnlineSASRecConfig | None = None,
                   devices: list[torch.device] | None = None, known: Sequence[bool] | None = None) -> "OnlineSASRec":
        """Rows of `items` (index i = the checkpoint's item i) and the transformer of `sasrec`.

        `known[i]` False leaves item i out: the checkpoint never saw it, so its row is noise.
        """
        with torch.no_grad():
            vectors = sasrec.encoder.all().detach().cpu()  # [n_items, dim], attributes folded in
        keep = [i for i in range(len(items)) if known is None or known[i]]
        return cls.from_rows(DenseTransformer(sasrec), [items[i] for i in keep], vectors[keep], sasrec.config.max_len,
                             config, devices)

    @classmethod
    def from_rows(cls, dense: DenseTransformer, items: Sequence[Id], rows: torch.Tensor, max_len: int,
                  config: OnlineSASRecConfig | None = None, devices: list[torch.device] | None = None) -> "OnlineSASRec":
        """A model that starts from item `rows` [n, dim] and the transformer `dense` (warm start,
        or a served version taken up again by a restarted learner)."""
        config = config or OnlineSASRecConfig()
        shards = config.num_shards or len(devices or available_devices())
        capacity = config.capacity or max(64, 2 * len(items) // shards + 1)
        store = EmbeddingStore(StoreConfig(dim=rows.shape[1], num_shards=config.num_shards, capacity=capacity,
                                           seed=config.seed), devices)
        store.import_rows(list(items), rows.float().cpu(), torch.full((len(items),), config.row_accum0))
        return cls(dense, store, max_len, config)

    def remember(self, sequences: Sequence[Sequence[Id]]) -> None:
        """Offer sequences (e.g. the offline training set) to the replay reservoir."""
        for seq in sequences:
            if len(seq) >= 2:
                self.replay.offer(list(seq[-(self.max_len + 1):]))

    def fit_text_projection(self, texts: Mapping[Id, torch.Tensor]) -> None:
        """Least-squares map from text vectors to rows, fitted on items that have both.

        New items with a text vector then start at their projection instead of a co-occurrence mean.
        """
        ids = [key for key in texts if key in self.store]
        if not ids:
            return
        x = torch.stack([texts[key].float().cpu() for key in ids])  # [n, text_dim]
        y = self.store.lookup(ids, admit=False).cpu()  # [n, dim]
        self.projection = torch.linalg.lstsq(x, y, driver="gelsd").solution

    # ---- learning -----------------------------------------------------------------------
    def learn(self, sequences: Sequence[Sequence[Id]], texts: Mapping[Id, torch.Tensor] | None = None) -> float:
        """Learn one micro-batch of sequences (oldest first, each ending with the new event).

        Returns the mean loss of the last step (0.0 if nothing was trainable).
        """
        fresh = [list(seq[-(self.max_len + 1):]) for seq in sequences if len(seq) >= 1]
        self._admit(fresh, texts or {})
        fresh = [seq for seq in fresh if len(seq) >= 2]
        loss = 0.0
        for _ in range(self.config.steps):
            batch = fresh + self.replay.sample(round(self.config.replay_ratio * len(fresh)))
            loss = self._step(batch)
        for seq in fresh:
            self.replay.offer(seq)
        self.samples_learned += len(fresh)
        return loss

    def _admit(self, sequences: list[list[Id]], texts: Mapping[Id, torch.Tensor]) -> None:
        """Rows for ids seen for the first time: text projection, else the co-occurrence mean."""
        new: dict[Id, list[Id]] = {}
        for seq in sequences:
            for key in seq:
                if key not in self.store:
                    new.setdefault(key, []).extend(k for k in seq if k != key)
        if not new:
            return
        ids = list(new)
        vectors = torch.stack([self._initial_row(new[key], texts.get(key)) for key in ids])
        self.store.import_rows(ids, vectors, torch.zeros(len(ids)))
        for key in ids:
            self.store.observe(key)  # counts as a sighting: recency for eviction

    def _initial_row(self, neighbours: list[Id], text: torch.Tensor | None) -> torch.Tensor:
        if text is not None and self.projection is not None:
            return text.float().cpu() @ self.projection
        known = [k for k in neighbours if k in self.store]
        if known:
            return self.store.lookup(known, admit=False).mean(0).cpu()
        seed = torch.Generator().manual_seed(self.rng.randrange(1 << 31))
        return torch.randn(self.store.config.dim, generator=seed) * self.store.config.init_std

    def _step(self, batch: list[list[Id]]) -> float:
        if not batch:
            return 0.0
        negatives = self._negatives(self.config.negatives)
        vocab = list(dict.fromkeys([k for seq in batch for k in seq] + negatives))
        column = {key: i for i, key in enumerate(vocab)}
        rows = self.store.lookup(vocab, admit=False).requires_grad_()  # [V, dim] leaf
        padded = torch.cat([rows, torch.zeros(1, rows.shape[1], device=rows.device)])
        neg = torch.tensor([column[k] for k in negatives], dtype=torch.long, device=self.device)
        self.dense.train()
        total, positions = torch.zeros((), device=self.device), 0
        # sequences of like length go through together: one padded block of mixed lengths
        # costs as if every sequence were the longest (Beauty's are mostly short)
        ordered = sorted(batch, key=len)
        for start in range(0, len(ordered), self.config.chunk):
            chunk = [[column[k] for k in seq] for seq in ordered[start:start + self.config.chunk]]
            loss_sum, count = self._chunk_loss(padded, chunk, neg)
            total, positions = total + loss_sum, positions + count
        loss = total / max(positions, 1)
        if self.config.l2_pull > 0:
            pull = sum(((p - a) ** 2).sum() for p, a in zip(self.dense.parameters(), self.anchor))
            loss = loss + self.config.l2_pull * pull
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.store.apply_gradients(vocab, gradient_of(rows), self.config.row_lr)
        self.dense.eval()
        return float(loss.detach())

    def _chunk_loss(self, padded: torch.Tensor, chunk: list[list[int]], neg: torch.Tensor) -> tuple[torch.Tensor, int]:
        """(summed sampled-softmax loss, positions) of sequences given as rows of `padded` [V + 1, dim]."""
        pad = padded.shape[0] - 1
        inputs = _pad([seq[:-1] for seq in chunk], pad, self.device)  # [B, L]
        last = self.config.loss_positions
        # earlier positions are context only: a user's history was learned when it streamed by
        targets = _pad([[pad] * max(0, len(seq) - 1 - last) + seq[1:][-last:] if last else seq[1:] for seq in chunk],
                       pad, self.device)
        hidden = self.dense(padded[inputs])  # [B, L, dim]
        valid = targets != pad
        h, pos = hidden[valid], targets[valid]  # [M, dim], [M]
        pos_logit = (h * padded[pos]).sum(-1, keepdim=True)
        neg_logits = (h @ padded[neg].T).masked_fill(pos.unsqueeze(1) == neg.unsqueeze(0), float("-inf"))
        logits = torch.cat([pos_logit, neg_logits], 1)
        return nn.functional.cross_entropy(logits, torch.zeros_like(pos), reduction="sum"), int(pos.numel())

    def _negatives(self, n: int) -> list[Id]:
        ids = self.catalogue()
        if n <= 0 or n >= len(ids):
            return list(ids)  # every item: the full softmax
        return [ids[self.rng.randrange(len(ids))] for _ in range(n)]

    # ---- scoring ------------------------------------------------------------------------
    def catalogue(self) -> list[Id]:
        """Every item with a row, in the column order of `scores` (shard by shard)."""
        key = (len(self.store), self.store.admissions, self.store.evictions)
        if self._catalogue is None or self._catalogue[0] != key:
            ids = [k for s in range(len(self.store.shards))
                   for k in self.store.row_ids(s)[: self.store.used_rows(s)]]
            self._catalogue = (key, ids)
        return self._catalogue[1]

    @torch.no_grad()
    def scores(self, histories: Sequence[Sequence[Id]]) -> torch.Tensor:
        """[B, n] logits over `catalogue()` (CPU); a history with no known item gets a row of -inf."""
        known = [[k for k in h if k in self.store][-self.max_len:] for h in histories]
        out = torch.full((len(histories), len(self.catalogue())), float("-inf"))
        live = [b for b, h in enumerate(known) if h]
        if not live:
            return out
        users = self._users([known[b] for b in live])  # [b, dim]
        cols = [shard.weights[: self.store.used_rows(s)] @ users.to(shard.device).T
                for s, shard in enumerate(self.store.shards)]
        out[live] = torch.cat([c.T.cpu() for c in cols], dim=1)
        return out

    def _users(self, histories: list[list[Id]]) -> torch.Tensor:
        """[B, dim] last hidden state of each (non-empty, all known) history."""
        vocab = list(dict.fromkeys(k for h in histories for k in h))
        column = {key: i for i, key in enumerate(vocab)}
        rows = self.store.lookup(vocab, admit=False)
        padded = torch.cat([rows, torch.zeros(1, rows.shape[1], device=rows.device)])
        seq = _pad([[column[k] for k in h] for h in histories], len(vocab), self.device)
        self.dense.eval()
        return self.dense.last_states(padded[seq], [len(h) for h in histories])

    def rank(self, history: Sequence[Id], k: int, exclude: Sequence[Id] = (),
             allow: Callable[[Id], bool] | None = None) -> Ranking:
        """Top `k` (item, score) over every item with a row; `history` is not excluded unless passed."""
        row = self.scores([history])[0]
        ids = self.catalogue()
        excluded = set(exclude)
        out: Ranking = []
        for i in torch.argsort(row, descending=True, stable=True).tolist():
            if len(out) >= k or row[i] == float("-inf"):
                break
            if ids[i] not in excluded and (allow is None or allow(ids[i])):
                out.append((ids[i], float(row[i])))
        return out


def _pad(seqs: list[list[int]], pad: int, device: torch.device) -> torch.Tensor:
    """[B, L] long, right-padded with `pad`."""
    length = max(1, max(len(s) for s in seqs))
    out = torch.full((len(seqs), length), pad, dtype=torch.long)
    for b, s in enumerate(seqs):
        out[b, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out.to(device)
