"""The hybrid searcher, one for offline evaluation and training and for the gateway.

Candidates are the union of the top-N of word BM25, character 3-gram BM25 and the dense
retriever; their FEATURES (`models/search_ranker.py`) are scored by a `SearchRanker`. The
catalog may change while the searcher serves: word and character BM25 receive the same adds
and removes, so they share slots, and slots are the candidate rows (`from_catalog` builds a
searcher whose slots are the catalog rows, what training targets index). Dense vectors live
in a `DenseIndex`: an item is found by its text at once and by meaning once its vector
arrives. Dense candidates come from `DenseIndex.scan`, exact until blocks are packed as int8
(the gateway packs them once its catalog is quiet, offline evaluation never does); the
features of every candidate are float32 either way.

Not thread-safe: one thread applies the changes and runs the searches.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from models.dense_index import DenseIndex
from models.lexical import BM25Index, char_ngrams
from models.search_ranker import Candidates, LexicalFeatures, SearchRanker, candidate_features, top_positive

# item ids -> (popularity [C], ctr [C]) float32, e.g. read from live item statistics.
ItemStats = Callable[[Sequence[str]], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class LexicalScores:
    """One query's word and char BM25 over every slot, as of the searcher's `changes` count.

    Needs no query vector, so it can be computed while the query is being encoded.
    """

    query: str
    changes: int
    words: np.ndarray  # [S] BM25 by slot
    chars: np.ndarray  # [S] char 3-gram BM25 by slot
    coverage: np.ndarray  # [S] share of query terms in the item
    top: np.ndarray  # slots of the best word and char scores (candidates)


class HybridSearcher:
    """Word + char BM25 + dense candidates over a changing catalog, scored by a `SearchRanker`."""

    def __init__(self, dim: int = 384, n_candidates: int = 200, capacity: int = 1024) -> None:
        self.index = BM25Index()
        self.char_index = BM25Index(analyzer=char_ngrams)
        self.dense = DenseIndex(dim, capacity)  # rows; grows by doubling
        self.n_candidates = n_candidates
        self.texts: dict[str, str] = {}
        self._slot_ids: list[str | None] = []  # BM25 slot -> item id
        # Between BM25 slots and dense rows, -1 where there is none (no vector yet, a free
        # row): candidates map a few hundred of each per query, and dict lookups by id cost
        # more than the features computed from them.
        self._slot_row = np.full(1024, -1, np.int64)
        self._row_slot = np.full(1024, -1, np.int64)
        self.changes = 0  # text adds and removes so far: LexicalScores of another count are stale

    @classmethod
    def from_catalog(cls, item_ids: Sequence[str], texts: Sequence[str], item_vecs: torch.Tensor,
                     n_candidates: int = 200) -> HybridSearcher:
        """A searcher holding a whole catalog whose slot n is item_ids[n]; item_vecs [N, D] normalised."""
        searcher = cls(item_vecs.shape[1], n_candidates, capacity=max(1, len(item_ids)))
        for item_id, text in zip(item_ids, texts):
            searcher.upsert(item_id, text)
        if len(searcher) != len(item_ids):
            raise ValueError(f"{len(item_ids) - len(searcher)} repeated item ids: slots would not be catalog rows")
        searcher.set_vectors(list(zip(item_ids, texts)), item_vecs.float())
        return searcher

    def __len__(self) -> int:
        return len(self.texts)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.texts

    def upsert(self, item_id: str, text: str, vector: torch.Tensor | None = None) -> None:
        """Index an item's text (and its vector [D] if given); a changed text drops the old vector."""
        if self.texts.get(item_id) != text:
            self.changes += 1
            self.texts[item_id] = text
            self.index.add(item_id, text)
            self.char_index.add(item_id, text)
            slot = int(self.index.slots([item_id])[0])
            self._slot_ids.extend([None] * (slot + 1 - len(self._slot_ids)))
            self._slot_ids[slot] = item_id
            # Every slot needs its entry (-1: no vector), not only those of items with a
            # vector: a gateway serving half its catalog without vectors indexed slots past
            # the end of this array in `candidates` and answered every search with a 500.
            self._slot_row = _fit(self._slot_row, slot)
            self._remove_vector(item_id)  # it was the vector of the old text
        if vector is not None:
            self.dense.upsert([item_id], vector.unsqueeze(0))
            self._link([item_id])

    def set_vectors(self, items: Sequence[tuple[str, str]], vectors: torch.Tensor) -> int:
        """Vectors [n, D] of (item_id, text) pairs; pairs whose text is no longer current are skipped.

        Returns how many were set. Lets an encoder run behind the catalog without a stale
        vector ever overwriting a newer text's.
        """
        keep = [n for n, (item_id, text) in enumerate(items) if self.texts.get(item_id) == text]
        if keep:
            ids = [items[n][0] for n in keep]
            self.dense.upsert(ids, vectors[keep])
            self._link(ids)
        return len(keep)

    def remove(self, item_id: str) -> bool:
        if self.texts.pop(item_id, None) is None:
            return False
        self.changes += 1
        slot = int(self.index.slots([item_id])[0])
        self._remove_vector(item_id)
        self.index.remove(item_id)
        self.char_index.remove(item_id)
        self._slot_ids[slot] = None
        return True

    def _link(self, item_ids: Sequence[str]) -> None:
        """Record the slot <-> row pairs of items that have both (at once: a gateway links its
        whole catalog at start)."""
        rows = np.fromiter((self.dense.slot[i] for i in item_ids), np.int64, len(item_ids))
        slots = self.index.slots(item_ids)
        self._slot_row = _fit(self._slot_row, int(slots.max()))
        self._row_slot = _fit(self._row_slot, int(rows.max()))
        self._slot_row[slots], self._row_slot[rows] = rows, slots

    def _remove_vector(self, item_id: str) -> None:
        row = self.dense.slot.get(item_id)
        if row is not None:
            slot = self._row_slot[row]
            self._row_slot[row] = -1
            if slot >= 0:
                self._slot_row[slot] = -1
        self.dense.remove(item_id)

    def warm(self, budget_s: float) -> bool:
        """Precompute BM25 posting arrays for up to `budget_s` (see BM25Index.warm); True when done."""
        words = self.index.warm(budget_s / 2)
        return self.char_index.warm(budget_s / 2) and words

    def lexical(self, query: str) -> LexicalScores:
        """Word and char BM25 of `query` over the current texts."""
        words = self.index.scores(query)  # [S] by slot, as are chars
        chars = self.char_index.scores(query)
        n = min(self.n_candidates, len(self.texts))
        return LexicalScores(query, self.changes, words, chars, self.index.coverage(query),
                             np.concatenate([top_positive(words, n), top_positive(chars, n)]))

    def candidates(
        self,
        query: str,
        q_tuned: torch.Tensor,
        q_zero: torch.Tensor,
        item_stats: ItemStats | None = None,
        user_vec: torch.Tensor | None = None,
        lexical: LexicalScores | None = None,
    ) -> Candidates:
        """Candidates in slot order with their features; items without a vector score 0 on the
        vector features and are found by their text.

        q_tuned, q_zero: [D] fine-tuned and pretrained query embeddings; user_vec: [D] or None.
        `lexical` may pass `self.lexical(query)` computed earlier; it is recomputed when the
        texts changed since.
        """
        if lexical is None or lexical.query != query or lexical.changes != self.changes:
            lexical = self.lexical(query)
        n = min(self.n_candidates, len(self.texts))
        # The scan (int8 where packed) only picks dense candidates; features are exact below.
        top_dense = torch.topk(self.dense.scan(q_tuned), min(n, len(self.dense))).indices.numpy() if n else np.zeros(0, np.int64)
        dense_slots = self._row_slot[top_dense]  # -1: a free row
        # The union of both candidate sets in slot order (np.unique, without its sort).
        chosen = np.zeros(len(self._slot_ids), bool)
        chosen[lexical.top] = True
        chosen[dense_slots[dense_slots >= 0]] = True
        slots = np.flatnonzero(chosen)
        ids: list[str] = [self._slot_ids[s] for s in slots]  # type: ignore[misc]  # chosen slots hold items
        rows = torch.from_numpy(self._slot_row[slots])
        has_vec = rows >= 0
        vecs = self.dense.vectors.index_select(0, rows.clamp(min=0))
        if not bool(has_vec.all()):
            vecs[~has_vec] = 0.0  # no vector yet: zeros
        popularity, ctr = item_stats(ids) if item_stats is not None else (np.zeros(len(ids), np.float32),) * 2
        bm25 = LexicalFeatures(lexical.words, lexical.chars, slots, lexical.coverage[slots],
                               len(self.index.analyzer(query)), self.index.lengths(slots))
        return Candidates(slots, candidate_features(vecs, q_tuned, q_zero, user_vec, bm25, popularity, ctr), ids)

    @torch.inference_mode()
    def search(
        self,
        query: str,
        q_tuned: torch.Tensor,
        q_zero: torch.Tensor,
        ranker: SearchRanker,
        k: int = 10,
        allow: Callable[[str], bool] | None = None,
        item_stats: ItemStats | None = None,
        user_vec: torch.Tensor | None = None,
        lexical: LexicalScores | None = None,
    ) -> list[tuple[str, float]]:
        """The k best (item_id, score) pairs that `allow` passes, best first.

        The ranker is an argument because model versions change while the catalog state stays.
        """
        cands = self.candidates(query, q_tuned, q_zero, item_stats, user_vec, lexical)
        ids, features = cands.ids, cands.features
        if allow is not None:
            keep = [n for n, i in enumerate(ids) if allow(i)]
            ids, features = [ids[n] for n in keep], features[keep]
        if not ids:
            return []
        scores = ranker(features)
        order = torch.argsort(scores, descending=True, stable=True)[:k].tolist()
        return [(ids[n], float(scores[n])) for n in order]

    def dense_search(self, query: torch.Tensor, k: int) -> list[tuple[str, float]]:
        """Top k (item_id, cosine) by vector alone, for a normalised query [D]."""
        return self.dense.search(query, k)


def _fit(array: np.ndarray, index: int) -> np.ndarray:
    """`array`, grown by doubling (new entries -1) until `index` is inside it."""
    if index < len(array):
        return array
    grown = np.full(max(2 * len(array), index + 1), -1, np.int64)
    grown[: len(array)] = array
    return grown
