"""One-pass next-item recommender that learns from a stream, one micro-batch at a time.

Three parts, all updated by every batch (see `scoring` for the score):
- item rows in a sharded EmbeddingStore (admission, eviction by age, row-wise Adagrad on
  the rows the batch touched only);
- bounded co-occurrence counts in several channels (next item, skip gaps, previous item; see
  `counts`) and per-row popularity (updated AFTER the batch was learned, so a sample never
  sees its own transition, as at test time);
- dense weights (position attention, W, per channel and position transition weights, gamma,
  embedding gate) trained with AdamW.
Each sample's loss is weighted by (1 + len(history)) ** -sample_power, so that users with long
sequences (many samples) do not dominate the gradients.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from models.embedding_store import EmbeddingStore, StoreConfig, gradient_of
from models.online.counts import TransitionCounts
from models.online.row_stats import RowStats
from models.online.scoring import (
    DenseScorer, Table, feature_tensors, history_mask_pairs, last_items, scores_in_columns, target_ranks,
)

Id = Hashable
Sample = tuple[Sequence[Id], Id]  # (history, most recent last; target)


def channel_init(config: "OnlineRecConfig") -> list[float]:
    """Initial weight of each count channel (times 0.5 ** j for history position j)."""
    gaps = [config.gap_init ** g for g in range(max(1, config.gaps))]
    return gaps + ([config.reverse_init] if config.reverse else [])


# Successors of a history item (per channel) the count features read: its strongest by count.
# A popular item of a 100k-item Zipf shop has a thousand; reading all of them for every history
# position was most of the learner's step there (bench/learner_shop.py) and of a served cache
# miss, for items that lose to the strongest anyway. A reader of versions serves with this one.
FEATURES_PER_SOURCE = 100


@dataclass(frozen=True)
class OnlineRecConfig:
    dim: int = 64
    history: int = 4  # k: last items read by the user vector and the transition features
    num_shards: int = 0  # 0: one per device present
    capacity: int = 100_000  # rows per shard
    min_count: int = 1
    negatives: int = 1024  # uniform negatives per batch, besides the in-batch targets
    row_lr: float = 0.05  # Adagrad
    dense_lr: float = 0.001  # AdamW (faster rates flatten the channel weights: NDCG drops)
    weight_decay: float = 0.0
    init_std: float = 0.1
    user_scale: float = 0.1  # W = user_scale * I at the start: transitions lead
    pop_weight: float = 1e-3  # gamma at the start: popularity only breaks ties
    max_neighbours: int = 500
    features_per_source: int = FEATURES_PER_SOURCE  # 0 reads all
    gaps: int = 4  # count channels for items 1..gaps steps after a history item
    gap_init: float = 0.5  # initial weight of gap channel g: gap_init ** (g - 1)
    reverse: bool = True  # a channel of what came right BEFORE a history item
    reverse_init: float = 0.25
    embed_gate: float = 0.0  # initial weight of the embedding term u . E[i] (it hurt on Beauty: off)
    learn_embedding: bool = False  # False: the gate stays at embed_gate (0: rows are not trained)
    sample_power: float = 0.5  # sample weight (1 + len(history)) ** -sample_power
    learn_popularity: bool = False  # False keeps gamma at pop_weight (popularity only breaks ties)
    logq: bool = False  # correct the sampled softmax for how often each candidate is drawn
    seed: int = 0

    def store_config(self) -> StoreConfig:
        return StoreConfig(dim=self.dim, num_shards=self.num_shards, capacity=self.capacity,
                           min_count=self.min_count, init_std=self.init_std, seed=self.seed)


class OnlineRecModel:
    """Next-item model trained by sampled softmax; scores by full ranking over admitted items.

    Training scheme: for a micro-batch, the candidates are the batch's distinct targets
    (in-batch negatives, popularity-skewed) plus `negatives` items drawn uniformly from the
    admitted rows; each sample's history items (its target excepted) are masked out, and the
    loss is cross-entropy with the target. Samples whose target has no row yet, or whose
    history has no known item, only update the counts.
    """

    def __init__(self, config: OnlineRecConfig | None = None, devices: list[torch.device] | None = None) -> None:
        self.config = config or OnlineRecConfig()
        c = self.config
        self.store = EmbeddingStore(c.store_config(), devices)
        self.popularity = RowStats(self.store, 1)
        self.counts = TransitionCounts(c.max_neighbours, c.gaps, c.reverse)
        self.dense = DenseScorer(c.dim, c.history, c.user_scale, c.pop_weight, channel_init(c),
                                 c.embed_gate).to(self.store.output_device)
        self.dense.pop_weight.requires_grad_(c.learn_popularity)
        self.dense.embed_gate.requires_grad_(c.learn_embedding)
        trained = [p for p in self.dense.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trained, lr=c.dense_lr, weight_decay=c.weight_decay)
        self.generator = torch.Generator().manual_seed(c.seed + 1)
        self.seen_evictions = 0  # store version up to which evictions were taken into account
        # what changed since the last published version (read and cleared by the learner)
        self.changed_sources: set[Id] = set()
        self.changed_popularity: set[Id] = set()
        self.samples_learned = 0

    # ---- learning -----------------------------------------------------------------------
    def learn(self, samples: Sequence[Sample]) -> float:
        """Learn one micro-batch; returns the sampled-softmax loss (0.0 if nothing was trainable)."""
        samples = list(samples)
        # Targets get rows, and so does a user's first item (never a target of theirs):
        # without it the pair first -> second would be counted nowhere.
        self.popularity.admit([t for _, t in samples] + [h[0] for h, _ in samples if len(h) == 1])
        self._forget_evicted()
        loss = self._train_step(samples)
        self._count(samples)
        self.samples_learned += len(samples)
        return loss

    def _train_step(self, samples: list[Sample]) -> float:
        c = self.config
        recent = last_items([h for h, _ in samples], c.history)
        trainable = [b for b, (_, t) in enumerate(samples) if t in self.store
                     and any(i in self.store for i in recent[b])]
        if not trainable:
            return 0.0
        histories = [samples[b][0] for b in trainable]
        targets = [samples[b][1] for b in trainable]
        candidates = list(dict.fromkeys(targets + self._negatives(c.negatives)))
        column = {item: i for i, item in enumerate(candidates)}
        device = self.store.output_device
        embedding = self.embedding_trained()
        if embedding:
            cand_rows = self.store.lookup(candidates, admit=False).requires_grad_()
            hist_ids, hist_rows, mask, index = self._history_rows([recent[b] for b in trainable])
            hist_rows.requires_grad_()
            padded = torch.cat([hist_rows, torch.zeros(1, c.dim, device=device)])
            users = self.dense.user(padded[index], mask)
        else:  # the gate is fixed at 0: the embedding term is 0 and teaches nothing
            cand_rows = torch.zeros(len(candidates), c.dim, device=device)
            users = torch.zeros(len(trainable), c.dim, device=device)
        features = self.counts.features_among(histories, c.history, column, c.features_per_source)
        trans = self.dense.transitions(*feature_tensors(features, device), (len(trainable), len(candidates)))
        pop = self.popularity.get(candidates)[:, 0]
        logits = self.dense.scores(users, cand_rows, trans, pop)
        rows, cols = history_mask_pairs(histories, targets, column)
        if rows:
            logits = logits.index_put((torch.tensor(rows, device=device), torch.tensor(cols, device=device)),
                                      torch.tensor(float("-inf"), device=device))
        if c.logq:
            logits = logits - torch.log(self._sampling_rate(pop, len(trainable)))
        labels = torch.tensor([column[t] for t in targets], device=device)
        if c.sample_power:
            lengths = torch.tensor([len(h) for h in histories], dtype=torch.float32, device=device)
            weights = (1.0 + lengths) ** -c.sample_power
            loss = (F.cross_entropy(logits, labels, reduction="none") * weights).sum() / weights.sum()
        else:
            loss = F.cross_entropy(logits, labels)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        if embedding:
            grads = torch.cat([gradient_of(cand_rows), gradient_of(hist_rows)])
            self.store.apply_gradients(candidates + hist_ids, grads, c.row_lr)
        return float(loss.detach())

    def embedding_trained(self) -> bool:
        """Whether the embedding term takes part in learning (not when its gate is fixed at 0)."""
        return self.config.learn_embedding or self.config.embed_gate != 0.0

    def _sampling_rate(self, popularity: torch.Tensor, batch: int) -> torch.Tensor:
        """Expected times each candidate [C] is drawn: as a batch target (~ popularity) plus
        uniformly; subtracting its log (logQ correction) makes the sampled softmax estimate
        the full one, so gamma is not learned against a skewed candidate set."""
        total_pop = sum(float(v[: self.store.used_rows(s)].sum()) for s, v in enumerate(self.popularity.values))
        uniform = self.config.negatives / max(1, len(self.store))
        in_batch = batch * popularity / max(total_pop, 1.0)
        return (in_batch + uniform).clamp(min=1e-6)

    def _negatives(self, n: int) -> list[Id]:
        """`n` ids drawn uniformly (with replacement) from all admitted rows."""
        used = torch.tensor([self.store.used_rows(s) for s in range(len(self.store.shards))])
        total = int(used.sum())
        if n == 0 or total == 0:
            return []
        draws = torch.randint(total, (n,), generator=self.generator)
        ends = used.cumsum(0)
        shards = torch.searchsorted(ends, draws, right=True)
        rows = draws - (ends - used)[shards]
        return [self.store.row_ids(s)[r] for s, r in zip(shards.tolist(), rows.tolist())]

    def _history_rows(self, recent: list[list[Id]]
                      ) -> tuple[list[Id], torch.Tensor, torch.Tensor, torch.Tensor]:
        """Distinct known history ids, their rows [m, d], mask [B, k] and index [B, k] into rows
        (index m points at an extra zero row for empty positions)."""
        k = self.config.history
        ids = list(dict.fromkeys(i for items in recent for i in items if i in self.store))
        position = {item: p for p, item in enumerate(ids)}
        index = torch.full((len(recent), k), len(ids), dtype=torch.long)
        for b, items in enumerate(recent):
            for j, item in enumerate(items):
                if item in position:
                    index[b, j] = position[item]
        device = self.store.output_device
        rows = self.store.lookup(ids, admit=False) if ids else torch.zeros(0, self.config.dim, device=device)
        return ids, rows, (index < len(ids)).to(device), index.to(device)

    def _count(self, samples: list[Sample]) -> None:
        """Popularity of each target and the count channels, for items that have rows."""
        targets = [t for _, t in samples if t in self.store]
        self.popularity.add(targets, torch.ones(len(targets), 1))
        self.changed_popularity.update(targets)
        for history, target in samples:
            if history and target in self.store:
                recent = history[-self.counts.gaps:]
                self.changed_sources |= self.counts.add_sample(recent, target, [i for i in recent if i in self.store] + [target])

    def _forget_evicted(self) -> None:
        # By store version, not list index: the list is pruned at every promoted version.
        evicted = [key for v, key in self.store.evicted if v > self.seen_evictions]
        self.seen_evictions = self.store.version
        self.counts.drop(evicted)
        self.changed_sources.update(evicted)

    # ---- scoring ------------------------------------------------------------------------
    def users(self, histories: Sequence[Sequence[Id]]) -> torch.Tensor:
        """[B, d] user vectors (no gradient)."""
        with torch.no_grad():
            _, rows, mask, index = self._history_rows(last_items(histories, self.config.history))
            padded = torch.cat([rows, torch.zeros(1, self.config.dim, device=rows.device)])
            return self.dense.user(padded[index], mask)

    def tables(self) -> list[Table]:
        """Per shard: its used rows and their popularity, on the shard's device."""
        return [Table(shard.weights[: self.store.used_rows(s)], self.popularity.shard_table(s)[:, 0])
                for s, shard in enumerate(self.store.shards)]

    def _scores(self, histories: Sequence[Sequence[Id]], masked: Sequence[Sequence[Id]],
                keep: Sequence[Id | None]) -> list[torch.Tensor]:
        with torch.no_grad():
            # Each shard's id -> row map is its columns; the features are taken among them.
            k, per_source = self.config.history, self.config.features_per_source
            return scores_in_columns(self.dense, self.users(histories), self.tables(),
                                     [shard.rows for shard in self.store.shards],
                                     lambda column: self.counts.features_among(histories, k, column, per_source),
                                     masked, keep)

    def score_batch(self, histories: Sequence[Sequence[Id]], targets: Sequence[Id]) -> list[int | None]:
        """Progressive validation: 0-based rank of each target over all admitted items, history
        masked (the target excepted), ties against the target; None if the target has no row."""
        scores = self._scores(histories, histories, targets)
        return target_ranks(scores, self.store.rows_for(targets))

    def rank(self, history: Sequence[Id], k: int, exclude: Sequence[Id] = (),
             allow: Callable[[Id], bool] | None = None) -> list[tuple[Id, float]]:
        """Top `k` (item, score) over every admitted item, leaving out `exclude` (history is not
        excluded unless passed) and items `allow` rejects."""
        scores = self._scores([history], [[]], [None])
        ids = [key for s in range(len(self.store.shards))
               for key in self.store.row_ids(s)[: self.store.used_rows(s)]]
        return top_k(torch.cat([s[0].cpu() for s in scores]), ids, k, exclude, allow)


def top_k(scores: torch.Tensor, ids: Sequence[Id], k: int, exclude: Sequence[Id] = (),
          allow: Callable[[Id], bool] | None = None) -> list[tuple[Id, float]]:
    """Best `k` (id, score) of one score row [n] aligned with `ids`, skipping excluded,
    disallowed and -inf items; equal scores keep the order of `ids`."""
    excluded = set(exclude)
    order = torch.argsort(scores, descending=True, stable=True)
    out: list[tuple[Id, float]] = []
    for i in order.tolist():
        score = float(scores[i])
        if len(out) >= k or score == float("-inf"):
            break
        item = ids[i]
        if item not in excluded and (allow is None or allow(item)):
            out.append((item, score))
    return out

