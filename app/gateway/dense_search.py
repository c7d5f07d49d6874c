"""Dense and fine-tuned search in the gateway: a live hybrid searcher, queries ranked off the loop.

Catalog changes reach the `HybridSearcher` (the one offline evaluation uses) as a queue of
operations that only the query thread applies (before each search, and when idle), so the
searcher is never read and written at once and the event loop never waits for it. Item
vectors come from the item-vectors topic (`streamrank encoder` computes them once for every
gateway, see app/item_encoder.py); a vector is installed only while the item's text is the
one it encodes. Until an item has its vector, search finds it by its text only. A lone gateway may
encode catalog texts itself (`search_encode_catalog`): in batches on a second thread through
an on-disk `VectorCache`.

A search checkpoint (query adapter + ranker, `SearchModel`) is installed by swapping one
reference; without one, search is BM25 blended with the pretrained dense hits.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import torch

from app.gateway.serving import item_text
from app.gateway.tasks import cancel_and_wait
from app.metrics import Metrics
from app.search_model import load_search_model
from app.settings import Settings
from models.checkpoint import load_checkpoint
from models.data.homedepot import normalize_query
from models.dense_index import DenseIndex, pack_rows
from models.encoder import BASE_MODEL, DIM, TextEncoder
from models.errors import ModelUnavailable
from models.hybrid_search import HybridSearcher, ItemStats, LexicalScores
from models.item_vectors import ItemVector, model_digest, text_digest
from models.query_adapter import serving_adapter
from models.search_ranker import SearchRanker
from models.vector_cache import VectorCache, text_key
from tables import catalog

log = logging.getLogger(__name__)
BATCH = 256
WARM_SLICE_S = 0.005  # BM25 precomputation per idle pass (every 0.1 s) on the query thread
QUIET_S = 2.0  # int8 blocks are packed and BM25 terms precomputed once no text changed for this long
T = TypeVar("T")


@dataclass(frozen=True)
class SearchModel:
    """One search checkpoint as served; `encoder` is a fine-tuned query MiniLM or None (pretrained)."""

    version: str
    adapter: Callable[[torch.Tensor], torch.Tensor]  # [B, D] -> [B, D]: `serving_adapter`
    ranker: SearchRanker
    encoder: TextEncoder | None

    @classmethod
    def load(cls, settings: Settings, path: Path) -> "SearchModel":
        checkpoint = load_checkpoint(path)
        card = checkpoint.card
        trained_length = card.get("settings", {}).get("encoder_max_length", settings.encoder.max_length)
        if card.get("base_model", BASE_MODEL) != BASE_MODEL or trained_length != settings.encoder.max_length:
            raise ModelUnavailable(f"{path} was trained against other item vectors ({card.get('base_model')}, "
                                   f"max_length {trained_length}) than the gateway serves")
        tower, ranker = load_search_model(settings, checkpoint)
        encoder = tower.encoder.for_serving(fp16=True) if tower.encoder is not None else None
        return cls(f"search-v{checkpoint.version}", serving_adapter(tower.adapter), ranker, encoder)


def item_model_key(settings: Settings) -> str:
    """`model_key` of the item tower (pretrained MiniLM, float32 weights) without loading it."""
    return f"{BASE_MODEL}|pretrained|max_length={settings.encoder.max_length}|mean-pool-l2"


def vector_cache_path(settings: Settings, encoder: TextEncoder) -> Path:
    """One cache file per item tower (weights and settings), under the state dir."""
    digest = hashlib.sha256(encoder.model_key.encode()).hexdigest()[:12]
    return settings.runtime.state_dir / "cache" / f"item-vectors-minilm-{digest}.safetensors"


class DenseSearch:
    version = "minilm-l6-pretrained"

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.searcher = HybridSearcher(DIM, settings.search.candidates)  # query thread only
        # Swapped whole by `install`; a request reads this reference once.
        self.model: SearchModel | None = None
        self.texts: dict[str, str] = {}  # current text of each live item, as the loop saw it
        self.pending: dict[str, str] = {}  # item -> text waiting to be encoded here (search_encode_catalog)
        self._ops: deque[Callable[[], Any]] = deque()  # searcher changes, applied on the query thread
        self.encode_catalog = settings.search.encode_catalog
        self._item_model = model_digest(item_model_key(settings))
        # Topic vectors not installed: their item's text is not theirs (yet: the catalog may
        # come after its vectors, or an item be renamed before the encoder catches up).
        self.arrived: dict[str, ItemVector] = {}
        # (item, text, vector [D]) whose text matched, for the query thread to install together.
        self._matched: deque[tuple[str, str, torch.Tensor]] = deque()
        self._catalog_pool = ThreadPoolExecutor(1, thread_name_prefix="encode-catalog")
        # A query is encoded on one thread and searched on another: while one query searches,
        # the next one encodes (torch lets go of the GIL), so two queries overlap on two cores.
        # Each runs torch on one intra-op thread of its own: two pools of several threads
        # spinning on the same cores made every query tens of times slower.
        one_thread = partial(torch.set_num_threads, 1)
        self._encode_pool = ThreadPoolExecutor(1, thread_name_prefix="encode-query", initializer=one_thread)
        self._query_pool = ThreadPoolExecutor(1, thread_name_prefix="search", initializer=one_thread)
        self._catalog_encoder: TextEncoder | None = None
        self._query_encoder: TextEncoder | None = None
        self._cache: VectorCache | None = None
        self._saved_at = time.monotonic()
        self._changed_at = time.monotonic()  # last catalog text change seen
        self._lexical_warm = False  # every BM25 term's arrays are precomputed (see HybridSearcher.warm)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        encoder = partial(TextEncoder, max_length=self.settings.encoder.max_length,
                          cache_size=self.settings.encoder.query_cache)
        if self.encode_catalog:
            # Two instances: a tokenizer must not be used from two threads at once. Catalog
            # vectors stay float32 (the cached ones are); queries take fp16 weights.
            self._catalog_encoder = await loop.run_in_executor(self._catalog_pool, lambda: encoder().for_serving())
            self._cache = await loop.run_in_executor(self._catalog_pool, _open_cache,
                                                     vector_cache_path(self.settings, self._catalog_encoder))
        self._query_encoder = await loop.run_in_executor(self._encode_pool, lambda: encoder().for_serving(fp16=True))
        self._task = asyncio.create_task(self._loop(), name="dense-search")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        if self._cache is not None:
            try:
                await asyncio.get_running_loop().run_in_executor(self._catalog_pool, self._save_cache, self._live_texts())
            except Exception:  # a cache is an optimisation; stopping must go on
                log.exception("could not save the item vector cache")
        for pool in (self._catalog_pool, self._encode_pool, self._query_pool):
            pool.shutdown(wait=False, cancel_futures=True)

    @property
    def ready(self) -> bool:
        return self._query_encoder is not None

    @property
    def index(self) -> DenseIndex:
        """Vectors of the items the searcher holds (read its size only: the query thread writes it)."""
        return self.searcher.dense

    def settled(self, quiet_s: float) -> bool:
        """Every item has its vector and no item text changed for `quiet_s` seconds."""
        return (not self.pending and len(self.index) >= len(self.texts)
                and time.monotonic() - self._changed_at > quiet_s)

    def status(self) -> dict[str, Any]:
        """Search readiness for /readyz: ready once queries are encoded and every item has its vector;
        and the search model serving (what /v1/search answers as `model_version`), so a page or an
        operator sees a fine-tuned version replace the pretrained one."""
        items, with_vectors = len(self.texts), min(len(self.index), len(self.texts))
        model = self.model
        return {"items": items, "with_vectors": with_vectors,
                "ready": self._query_encoder is not None and with_vectors >= items,
                "model_version": model.version if model is not None else f"bm25+{self.version}"}

    def on_vectors(self, records: Sequence[tuple[str, ItemVector | None]]) -> None:
        """Item vectors from the topic (None: a tombstone); those of current texts get installed."""
        for item, vector in records:
            if vector is None:
                self.arrived.pop(item, None)  # the item's delete removes its installed vector
            elif vector.model == self._item_model:  # another tower's vectors are not comparable
                self.arrived[item] = vector
                self._match(item)

    def _match(self, item: str) -> None:
        """Queue the arrived vector of `item` for installing if it encodes the item's current text."""
        vector, text = self.arrived.get(item), self.texts.get(item)
        if vector is not None and text is not None and vector.text == text_digest(text):
            del self.arrived[item]
            self._matched.append((item, text, vector.vector))

    def install(self, model: SearchModel) -> None:
        self.model = model

    def on_change(self, table: str, key: str, old: Any, new: Any) -> None:
        if table != catalog.NAME:
            return
        if not catalog.is_live(new):
            if self.texts.pop(key, None) is not None:
                self._changed_at = time.monotonic()
                self.pending.pop(key, None)
                self._ops.append(partial(self.searcher.remove, key))
            return
        text = item_text(new)
        if self.texts.get(key) != text:  # a price or stock change needs no new vector
            self._changed_at = time.monotonic()
            self.texts[key] = text
            self._ops.append(partial(self.searcher.upsert, key, text))
            self._match(key)
            if self.encode_catalog:
                self.pending[key] = text

    def _apply_and_warm(self, budget_s: float) -> bool:
        """Query thread: `_apply`, then up to `budget_s` of BM25 precomputation (a query
        waits at most that); True when every term is precomputed."""
        self._apply()
        return budget_s > 0 and self.searcher.warm(budget_s)

    def _apply(self) -> None:
        """Query thread: bring the searcher up to the changes the loop has seen."""
        while self._ops:
            self._ops.popleft()()
        if self._matched:  # after the texts they encode: the searcher takes vectors of current texts only
            matched = [self._matched.popleft() for _ in range(len(self._matched))]
            self.searcher.set_vectors([(item, text) for item, text, _ in matched],
                                      torch.stack([v for _, _, v in matched]).float())
        self.metrics.dense_items.set(len(self.searcher.dense))

    async def _on_query_thread(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._query_pool, fn)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.pending:  # always so unless this gateway encodes the catalog itself
                try:
                    await self._idle(loop)
                except Exception:  # this loop must outlive one bad change or a full disk
                    log.exception("applying catalog changes or saving the vector cache failed")
                await asyncio.sleep(0.1)
                continue
            batch: list[tuple[str, str]] = []
            while self.pending and len(batch) < BATCH:
                item = next(iter(self.pending))
                batch.append((item, self.pending.pop(item)))
            try:
                vectors = await loop.run_in_executor(self._catalog_pool, self._vectors, [t for _, t in batch])
            except Exception:  # keep serving; the items stay lexical-only
                log.exception("encoding %d catalog items failed", len(batch))
                continue
            # The searcher skips pairs whose text changed meanwhile: a newer change wins.
            self._ops.append(partial(self.searcher.set_vectors, batch, vectors))
            try:
                await self._on_query_thread(self._apply)
            except Exception:  # the next search or idle pass applies the rest
                log.exception("applying catalog changes to the searcher failed")

    async def _idle(self, loop: asyncio.AbstractEventLoop) -> None:
        """Keep the searcher current without queries; precompute BM25 terms; pack changed
        vectors; save them now and then."""
        # Terms are weighted at the mean text length, and blocks packed from the vectors:
        # both are redone after every text change, so only once the catalog is quiet.
        quiet = time.monotonic() - self._changed_at > QUIET_S
        if self._ops or self._matched or (quiet and not self._lexical_warm):
            self._lexical_warm = await self._on_query_thread(partial(self._apply_and_warm, WARM_SLICE_S if quiet else 0.0))
        if quiet:
            await self._pack_blocks(loop)
        if self._cache is not None and time.monotonic() - self._saved_at > self.settings.gateway.vector_cache_save_s:
            self._saved_at = time.monotonic()
            await loop.run_in_executor(self._catalog_pool, self._save_cache, self._live_texts())

    async def _pack_blocks(self, loop: asyncio.AbstractEventLoop) -> None:
        """Pack changed blocks of item vectors as int8 for the scan, on the catalog thread.

        The copies are taken and the packs installed on the query thread; a block that
        changed meanwhile is scanned in float32 until a later pass packs it again.
        """
        index = self.searcher.dense
        stale = await self._on_query_thread(lambda: index.unpacked_blocks(limit=2))
        for block, generation, rows in stale:
            packed = await loop.run_in_executor(self._catalog_pool, pack_rows, rows)
            await self._on_query_thread(partial(index.install_packed, block, generation, len(rows), packed))

    def _vectors(self, texts: Sequence[str]) -> torch.Tensor:
        """Catalog thread: vectors [n, DIM] of texts, from the cache where it has them."""
        assert self._cache is not None and self._catalog_encoder is not None
        found = [self._cache.get(t) for t in texts]
        missing = [t for t, v in zip(texts, found) if v is None]
        if missing:
            encoded = self._catalog_encoder.encode(missing, self.settings.encoder.batch_size)
            self._cache.put(missing, encoded)
            fresh = iter(encoded)
            found = [v if v is not None else next(fresh) for v in found]
        return torch.stack(found) if found else torch.zeros(0, DIM)  # type: ignore[arg-type]

    def _live_texts(self) -> list[str] | None:
        """Texts of the live items, once the catalog is loaded and quiet; None before (see _save_cache)."""
        return list(self.texts.values()) if self.settled(quiet_s=QUIET_S) else None

    def _save_cache(self, live_texts: list[str] | None) -> None:
        """Catalog thread: write the cache, first dropping texts no live item has once it grew 2x.

        Nothing is dropped while the catalog is still loading (`live_texts` None): a gateway
        saving a minute into its start, with a fifth of the catalog read from the changelog,
        dropped the cached vectors of the rest and encoded them again (minutes of a core).
        """
        cache = self._cache
        if cache is None:
            return
        if live_texts is not None and len(cache.vectors) > 2 * len(live_texts) + 1000:
            keep = {text_key(t) for t in live_texts}
            cache.vectors = {k: v for k, v in cache.vectors.items() if k in keep}
            cache.dirty = True
        cache.save()

    async def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """Top `k` (item, cosine) by the pretrained encoder; [] until it is loaded."""
        encoder = self._query_encoder
        if encoder is None:
            return []

        vector = await asyncio.get_running_loop().run_in_executor(
            self._encode_pool, lambda: encoder.encode_queries([query])[0])

        def run() -> list[tuple[str, float]]:
            self._apply()
            return self.searcher.dense_search(vector, k)

        return await self._on_query_thread(run)

    async def rank(self, model: SearchModel, query: str, k: int, allow: Callable[[str], bool] | None,
                   item_stats: ItemStats | None) -> list[tuple[str, float]]:
        """Top `k` (item, ranker score) by the hybrid model `model`, filtered by `allow`."""
        encoder = self._query_encoder
        if encoder is None:
            return []

        q = normalize_query(query)  # as the model was trained and evaluated

        # `with`, not a decorator: decorating costs the loop tens of microseconds a request.
        def encode() -> tuple[torch.Tensor, torch.Tensor]:
            with torch.inference_mode():
                zero = encoder.encode_queries([q])[0]
                base = zero if model.encoder is None else model.encoder.encode_queries([q])[0]
                return zero, model.adapter(base.unsqueeze(0))[0]

        def lexical() -> LexicalScores:
            self._apply()
            return self.searcher.lexical(q)

        # BM25 needs no vector: it runs on the query thread while the encoder runs.
        loop = asyncio.get_running_loop()
        encoded = loop.run_in_executor(self._encode_pool, encode)
        try:
            words = await self._on_query_thread(lexical)
        finally:
            zero, tuned = await encoded

        def run() -> list[tuple[str, float]]:
            self._apply()  # catalog changes since `lexical` make the searcher score it again
            with torch.inference_mode():
                return self.searcher.search(q, tuned, zero, model.ranker, k, allow, item_stats, lexical=words)

        return await self._on_query_thread(run)


def _open_cache(path: Path) -> VectorCache:
    try:
        return VectorCache(path, DIM)
    except Exception:  # a damaged cache costs one re-encode, not the gateway
        log.exception("item vector cache %s unreadable; starting empty", path)
        path.rename(path.with_suffix(".unreadable"))
        return VectorCache(path, DIM)
