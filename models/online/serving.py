"""Read-only recommender for serving, built from a full snapshot and moved forward by versions.

`apply(version)` returns a NEW object (copy-on-write): a reader holding the old one keeps
seeing one whole version. Scoring is the live model's (`scoring`), over one flat table.
"""
from __future__ import annotations

import copy
import functools
import math
import sys
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import torch

from models.online.counts import EMPTY_STEP, TransitionCounts
from models.online.rec_model import FEATURES_PER_SOURCE, OnlineRecModel, top_k
from models.online.scoring import DenseScorer, Table, scores_in_columns, target_ranks
from models.steps import Steps, emptied, run_steps

# Bytes of history items' count terms a serving model keeps (see _item_terms): a float64 per
# channel for each of up to `per_source` (100) rows a channel, so 4-20 KB for a busy item.
MAX_TERM_BYTES = 32 * 2**20
# Memo entries a new version finds again while it is built, of those it cannot carry over: the
# items asked for last, which the next requests ask for again.
REFRESHED_TERMS = 2048
INDEX_STEP = 8192  # ids indexed per step of apply_in_steps (0.4 ms, timeit)

Id = Hashable


class Version(Protocol):
    """What serving reads of a `models.online.versions.Version`.

    A protocol, not an import: versions.py builds serving models, so importing it back here
    would make the two modules a cycle (tests/unit/test_layering.py).
    """

    @property
    def number(self) -> int: ...
    @property
    def parent(self) -> int: ...
    @property
    def full(self) -> bool: ...
    @property
    def row_ids(self) -> Sequence[Id]: ...
    @property
    def rows(self) -> torch.Tensor: ...  # [m, d]
    @property
    def evicted(self) -> Sequence[Id]: ...
    @property
    def pop_ids(self) -> Sequence[Id]: ...
    @property
    def popularity(self) -> torch.Tensor: ...  # [p]
    @property
    def dense(self) -> Mapping[str, torch.Tensor]: ...
    @property
    def transitions(self) -> Mapping[str, np.ndarray] | list[Any]: ...
    @property
    def dropped_sources(self) -> Sequence[Id]: ...


class ServingRecModel:
    """One immutable version of the recommender: rows (fp32 or fp16), popularity, dense, counts.

    Each count row holds only its `per_source` strongest successors (the `keep` of the loads in
    `from_model` and `apply`, the only ways one is made): all that serving reads.
    """

    def __init__(self, version: int, ids: list[Id], rows: torch.Tensor, popularity: torch.Tensor,
                 dense: DenseScorer, counts: TransitionCounts, history: int,
                 per_source: int = FEATURES_PER_SOURCE, index: dict[Id, int] | None = None) -> None:
        self.version = version
        self.ids = ids
        self.index = {key: i for i, key in enumerate(ids)} if index is None else index  # given: `apply` made it
        self.rows = rows
        self.popularity = popularity
        self.dense = dense
        self.counts = counts
        self.history = history
        self.per_source = per_source  # successors a history item's features read (OnlineRecConfig.features_per_source)
        self._sparse: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        # history item -> its count terms (see _item_terms): a version's counts never change.
        self._terms: dict[Id, tuple[tuple[np.ndarray, np.ndarray] | None, tuple[Id, ...]]] = {}
        self._term_bytes = 0

    @classmethod
    def from_model(cls, model: OnlineRecModel, version: int = 0, fp16: bool = False) -> "ServingRecModel":
        """A full snapshot of a live model (copied: later learning does not show here)."""
        ids = [key for s in range(len(model.store.shards))
               for key in model.store.row_ids(s)[: model.store.used_rows(s)]]
        tables = model.tables()
        rows = torch.cat([t.rows.cpu() for t in tables]).clone()
        popularity = torch.cat([t.popularity.cpu() for t in tables]).clone()
        counts = model.counts.empty_like()
        # each row's strongest successors only: all that serving reads (a popular item has ten times more)
        counts.load_arrays(model.counts.to_arrays(), keep=model.config.features_per_source)
        dense = copy.deepcopy(model.dense).cpu().requires_grad_(False)
        return cls(version, ids, rows.half() if fp16 else rows, popularity, dense, counts, model.config.history,
                   model.config.features_per_source)

    def memory_bytes(self) -> int:
        """Bytes of the row and popularity tensors (dicts and counts excluded)."""
        return sum(t.element_size() * t.nelement() for t in (self.rows, self.popularity))

    def apply(self, version: Version) -> "ServingRecModel":
        """The next version: this one with the delta applied (this object is left unchanged)."""
        return run_steps(self.apply_in_steps(version))

    def apply_in_steps(self, version: Version) -> Steps["ServingRecModel"]:
        """`apply` in steps of about a millisecond or less (models/steps.py): a gateway builds
        each version on its event loop, between requests."""
        gone = [i for key in dict.fromkeys(version.evicted) if (i := self.index.get(key)) is not None]
        if gone:
            # A mask, not a list of the kept positions: torch turns a list into a tensor in one
            # call, and a gateway builds versions on its event loop, between requests.
            kept = torch.ones(len(self.ids), dtype=torch.bool)
            kept[gone] = False
            dropped = set(gone)
            ids: list[Id] = []
            for start in range(0, len(self.ids), INDEX_STEP):
                ids.extend(key for i, key in enumerate(self.ids[start:start + INDEX_STEP], start) if i not in dropped)
                yield
            rows, popularity = self.rows[kept], self.popularity[kept]
        else:  # most versions evict nothing
            ids, rows, popularity = list(self.ids), self.rows.clone(), self.popularity.clone()
        yield
        index: dict[Id, int] = {}
        for start in range(0, len(ids), INDEX_STEP):
            index.update(zip(ids[start:start + INDEX_STEP], range(start, start + INDEX_STEP)))
            yield
        new = [_interned(key) for key in version.row_ids if key not in index]  # as the counts' ids are
        ids += new
        index.update({key: len(index) + n for n, key in enumerate(new)})
        rows = torch.cat([rows, torch.zeros(len(new), rows.shape[1], dtype=rows.dtype)])
        popularity = torch.cat([popularity, torch.zeros(len(new))])
        if version.row_ids:
            rows[[index[key] for key in version.row_ids]] = version.rows.to(rows.dtype)
        known = [(index[key], p) for key, p in zip(version.pop_ids, version.popularity.tolist()) if key in index]
        if known:
            at, values = zip(*known)
            popularity[list(at)] = torch.tensor(values)
        yield
        counts = yield from self.counts.without_in_steps(version.dropped_sources)
        # new Counters: the old object's are not touched
        replaced: list[Id] = []  # a version without counts (the neural learner's) replaces none
        if isinstance(version.transitions, list):  # an SRV1 record, published before the counts were arrays
            counts.load_json(version.transitions, keep=self.per_source)
            replaced = [row[0] for row in version.transitions]
        elif version.transitions:
            replaced = yield from counts.upsert_arrays_in_steps(version.transitions, keep=self.per_source)
        dense = copy.deepcopy(self.dense)
        # versions from before the embedding gate had none: it was 1
        dense.load_state_dict({"embed_gate": torch.tensor(1.0), **version.dense})
        out = ServingRecModel(version.number, ids, rows, popularity, dense, counts, self.history, self.per_source,
                              index=index)
        yield
        # The terms are counts alone: the version's weights are not in them. Requests add to
        # this model's memo between the steps of the next one's build, and may in a thread: read
        # a copy, made in one step. Iterating the memo itself allocates a tuple per entry, an
        # allocation can start a collection, a collection runs the gc callbacks (Python, the
        # pause metric), and another thread then got the GIL and grew the memo: "dictionary
        # changed size during iteration", and the version was refused (every later delta with it).
        memo = self._terms.copy()
        out._terms, out._term_bytes = self._carried_terms(memo, version, new, replaced)
        yield
        yield from out._refresh_terms([item for item in memo if item not in out._terms][-REFRESHED_TERMS:])
        return out

    def emptied_in_steps(self) -> Steps[None]:
        """This version's count rows and memo dropped a step at a time (see
        TransitionCounts.emptied_in_steps): only for a version no request holds any more, once a
        newer one serves. Its apply made the newer one's own tables, so they keep every row."""
        yield from self.counts.emptied_in_steps()
        yield from emptied(self._terms, EMPTY_STEP)
        self._term_bytes = 0

    def successor_scores(self, history: Sequence[Id], weights: Sequence[float]) -> dict[Id, float]:
        """What came right after each of the last `len(weights)` history items (channel 0),
        weighted, each count over sqrt(1 + degree): models.rec.online_transitions's scores."""
        k = len(weights)
        return self.counts.weighted_sum(history, k, [*weights, *[0.0] * (k * (self.counts.channels - 1))])

    # ---- scoring (same math as OnlineRecModel) ---------------------------------------------
    def _locate(self, ids: Sequence[Id]) -> list[tuple[int, int] | None]:
        return [None if (i := self.index.get(key)) is None else (0, i) for key in ids]

    def _scores(self, histories: Sequence[Sequence[Id]], masked: Sequence[Sequence[Id]],
                keep: Sequence[Id | None]) -> torch.Tensor:
        with torch.no_grad():
            recent = [list(reversed(h[-self.history:])) for h in histories]
            mask = torch.zeros(len(recent), self.history, dtype=torch.bool)
            index = torch.full((len(recent), self.history), len(self.ids), dtype=torch.long)
            for b, items in enumerate(recent):
                for j, item in enumerate(items):
                    if (i := self.index.get(item)) is not None:
                        mask[b, j], index[b, j] = True, i
            rows = self.rows.float()
            padded = torch.cat([rows, torch.zeros(1, rows.shape[1])])
            users = self.dense.user(padded[index], mask)
            k, per_source = self.history, self.per_source
            return scores_in_columns(self.dense, users, [Table(rows, self.popularity)], [self.index],
                                     lambda column: self.counts.features_among(histories, k, column, per_source),
                                     masked, keep)[0]

    def score_batch(self, histories: Sequence[Sequence[Id]], targets: Sequence[Id]) -> list[int | None]:
        """0-based rank of each target, history masked (see OnlineRecModel.score_batch)."""
        return target_ranks([self._scores(histories, histories, targets)], self._locate(targets))

    def rank(self, history: Sequence[Id], k: int, exclude: Sequence[Id] = (),
             allow: Callable[[Id], bool] | None = None) -> list[tuple[Id, float]]:
        """Top `k` (item, score), as OnlineRecModel.rank."""
        if self._sparse_only:
            return self._rank_sparse(history, k, exclude, allow)
        return top_k(self._scores([history], [[]], [None])[0], self.ids, k, exclude, allow)

    @functools.cached_property
    def _sparse_only(self) -> bool:
        """The embedding term is gated off (read once: a version never changes, and a torch
        read on every request cost a tenth of a served recommendation)."""
        return float(self.dense.embed_gate.detach()) == 0.0

    def _rank_sparse(self, history: Sequence[Id], k: int, exclude: Sequence[Id],
                     allow: Callable[[Id], bool] | None) -> list[tuple[Id, float]]:
        """`rank` without the embedding term (gate 0, the default). An item the count channels
        do not reach scores its popularity term alone, so only the reached items (each history
        item's strongest successors, summed as arrays) and the most popular others are
        candidates. Summing the reached items one by one in Python was most of a cache miss's
        CPU on a 20k-item Zipf-shaped shop (py-spy of the gateway in bench/scale.py)."""
        weights, base, order = self._sparse_parts()
        rows_parts, value_parts = [], []
        for j in range(min(self.history, len(history))):
            terms = self._item_terms(history[len(history) - 1 - j])
            if terms is not None:
                rows, by_channel = terms
                rows_parts.append(rows)
                value_parts.append(weights[:, j] @ by_channel)
        index = self.index
        banned = np.fromiter((row for item in exclude if (row := index.get(item)) is not None), np.int64)
        reached, reached_scores = _summed(rows_parts, value_parts)
        reached_scores += base[reached]
        if len(banned) and len(reached):  # a few (the history): a search in the sorted rows beats np.isin
            at = np.minimum(np.searchsorted(reached, banned), len(reached) - 1)
            reached_scores[at[reached[at] == banned]] = -np.inf
        # Unreached items score their popularity alone: the most popular of them, in popularity
        # order, are the other candidates (a mask, not a set: no Python loop over the reached).
        skip = np.zeros(len(self.ids), dtype=bool)
        skip[reached] = True
        skip[banned] = True
        want = k if allow is None else 4 * k + 16
        while True:
            m = min(want, len(reached))
            best = np.argpartition(-reached_scores, m - 1)[:m] if 0 < m < len(reached) else np.arange(m)
            best = best[reached_scores[best] != -np.inf]
            head = order[: want + len(reached) + len(banned)]  # holds `want` unskipped where there are
            popular = head[~skip[head]][:want]
            rows = np.concatenate([reached[best], popular])
            scores = np.concatenate([reached_scores[best], base[popular]])
            # Stable: a reached item goes before a popular one of the same score.
            ranked = np.argsort(-scores, kind="stable")
            ids = self.ids
            if allow is None:
                ranked = ranked[:k]
                return list(zip(map(ids.__getitem__, rows[ranked].tolist()), scores[ranked].tolist()))
            out = [(ids[row], score) for row, score in zip(rows[ranked].tolist(), scores[ranked].tolist())
                   if allow(ids[row])]
            if len(out) >= k or (len(popular) < want and m == len(reached)):
                return out[:k]
            want *= 4  # the filter refused many: look further down the popularity order

    def _item_terms(self, item: Id) -> tuple[np.ndarray, np.ndarray] | None:
        """(rows, values [channel, row]) of a history item: the rows among its successors in any
        channel (each row holds its strongest `per_source`, see __init__), and each channel's count of them over
        sqrt(1 + the item's degree there); None where no channel has a row for it. Memoised
        per item (bounded): at position j its contribution is one product, weights[:, j] @
        values, where summing channel by channel cost a cache miss a Python step per channel.
        The memo notes the successors that had no row: the next version keeps an entry until
        one of them gets a row or the item's counts change (see _carried_terms)."""
        memo = self._terms
        hit = memo.get(item)
        if hit is not None:
            return hit[0]
        index = self.index
        channels: list[tuple[int, int, float]] = []
        missing: list[Id] = []
        for c, (table, degree) in enumerate(zip(self.counts.neighbours, self.counts.degrees)):
            neighbours = table.get(item)
            if not neighbours:
                continue
            norm = 1.0 / math.sqrt(1.0 + degree[item])
            found = [(c, row, count * norm) for successor, count in neighbours.items()
                     if (row := index.get(successor)) is not None]
            channels.extend(found)
            if len(found) < len(neighbours):
                missing.extend(successor for successor in neighbours if successor not in index)
        terms: tuple[np.ndarray, np.ndarray] | None = None
        size = 0
        if channels:
            chans, rows, values = (np.array(column) for column in zip(*channels))
            distinct, at = np.unique(rows.astype(np.int64), return_inverse=True)
            by_channel = np.zeros((len(self.counts.neighbours), len(distinct)))
            by_channel[chans, at] = values
            distinct.flags.writeable = by_channel.flags.writeable = False  # shared by every ranking that reads them
            terms, size = (distinct, by_channel), distinct.nbytes + by_channel.nbytes
        if self._term_bytes + size > MAX_TERM_BYTES:
            memo.clear()  # bounded memory; the busiest items come back first
            self._term_bytes = 0
        memo[item] = (terms, tuple(dict.fromkeys(missing)))
        self._term_bytes += size
        return terms

    @staticmethod
    def _carried_terms(memo: dict[Id, Any], version: Version, added: Sequence[Id], replaced: Sequence[Id]
                       ) -> tuple[dict[Id, Any], int]:
        """The entries of a copy of this model's terms memo that still hold in `version`'s model, and their
        bytes. A version installed every few seconds emptied the memo, so every request after it
        found its terms again: most of a cache miss's CPU while the learner works (bench/serve.py's
        live pass). An entry holds while the item's counts are not `replaced` or dropped and none
        of its successors without a row got one (`added`); the new model keeps the rows' order
        only when nothing was evicted, so then nothing is carried."""
        if version.evicted or version.full:
            return {}, 0
        changed = {*version.dropped_sources, *replaced}
        new = set(added)
        carried = {item: entry for item, entry in memo.items()
                   if item not in changed and not (new and any(m in new for m in entry[1]))}
        size = sum(t[0].nbytes + t[1].nbytes for t, _ in carried.values() if t is not None)
        return carried, size

    def _refresh_terms(self, items: Sequence[Id]) -> Steps[None]:
        """Find the terms of `items` now, an item a step, while this version is built, not on the
        request path: after a version replaced the counts of the busiest items, every cache miss
        that read one found its terms again (a third of the gateway's ranking time in
        bench/serve.py's live pass)."""
        for item in items:
            self._item_terms(item)
            yield

    def _sparse_parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The count features' weights as [channel, history position] (float64), each row's
        popularity term (gamma x log1p(popularity), float64) and the rows in popularity order,
        made once per version."""
        if self._sparse is None:
            gamma = float(self.dense.pop_weight.detach())
            log_pop = torch.log1p(self.popularity.float())
            order = torch.argsort(-gamma * log_pop, stable=True).numpy().astype(np.int64)
            # feature f = channel * history + position (TransitionCounts.features)
            weights = self.dense.trans_weight.detach().double().numpy().reshape(-1, self.history)
            self._sparse = (weights, gamma * log_pop.numpy().astype(np.float64), order)
        return self._sparse


def serving_for(base: ServingRecModel | None, version: Version) -> ServingRecModel:
    """The serving model of `version`: its parent's with the delta applied, or built whole
    from a full version (a rollback, or a reader that starts late) or from a first version
    (parent 0: the delta from a model that had learned nothing)."""
    return run_steps(serving_for_in_steps(base, version))


def serving_for_in_steps(base: ServingRecModel | None, version: Version) -> Steps[ServingRecModel]:
    """`serving_for` in steps (models/steps.py)."""
    if version.full or base is None:
        if not version.full and version.parent != 0:
            raise ValueError(f"version {version.number} is a delta on {version.parent}, and no base was given")
        history = int(version.dense["position"].numel())
        dim = int(version.rows.shape[1]) if version.rows.dim() == 2 and version.rows.shape[1] else 1
        # a reader only scores: the channels need their order, not how they were counted
        channels = max(1, int(version.dense["trans_weight"].numel()) // max(1, history))
        base = ServingRecModel(0, [], torch.zeros(0, dim), torch.zeros(0),
                               DenseScorer(dim, history, 0.0, 0.0, [0.0] * channels), TransitionCounts(gaps=channels),
                               history)
    return (yield from base.apply_in_steps(version))


def _interned(key: Id) -> Id:
    return sys.intern(key) if type(key) is str else key


def _summed(rows_parts: list[np.ndarray], value_parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Each row's values summed: (distinct rows ascending, their sums). A stable sort keeps
    each row's terms in the order given, so sums do not depend on how the rows were found;
    np.unique's inverse and a bincount cost twice as much (a py-spy of bench/scale.py)."""
    if not rows_parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    if len(rows_parts) == 1:  # one history item: its rows are distinct and ascending already
        return rows_parts[0], value_parts[0]
    rows, values = np.concatenate(rows_parts), np.concatenate(value_parts)
    by_row = np.argsort(rows, kind="stable")
    rows, values = rows[by_row], values[by_row]
    starts = np.flatnonzero(np.concatenate(([True], rows[1:] != rows[:-1])))
    return rows[starts], np.add.reduceat(values, starts)
