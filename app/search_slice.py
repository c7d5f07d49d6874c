"""A fine-tune sized for a small machine: a slice of the catalog, the item vectors already computed.

`streamrank finetune --max-items N` (what the demo runs in the background) fits the query tower
and ranker on the first N products of the judgments file and the queries judged on them. The
expensive part of a fine-tune on CPU is not the training but embedding the catalog with the
item tower (45k Home Depot titles: about 13 minutes of one core); the item tower is frozen and
the same one the encoder process runs (`streamrank encoder`), so its on-disk vector cache
already holds most of these vectors: they are read from it, and only the missing titles are
encoded here. The checkpoint serves the whole catalog: adapter and ranker do not depend on
which items they saw, only on the (frozen) item vectors' space.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import torch

from app.search_pipeline import SearchAssets, assets_of
from app.settings import Settings
from app.threads import limit_threads
from models.data.homedepot import SearchData
from models.encoder import DIM, TextEncoder
from models.vector_cache import VectorCache, cached_vectors

log = logging.getLogger(__name__)


def catalog_slice(data: SearchData, max_items: int) -> SearchData:
    """The first `max_items` products, and each query's judgments restricted to them.

    Queries left with no judged product are dropped: they could neither train nor be scored.
    """
    if max_items < 1:
        raise ValueError(f"max_items must be at least 1, got {max_items}")
    out = SearchData(items=data.items[:max_items], titles=data.titles[:max_items])
    keep = set(out.items)
    for query, judged in data.judgments.items():
        kept = {item: rel for item, rel in judged.items() if item in keep}
        if kept:
            out.judgments[query] = kept
            out.query_text[query] = data.query_text.get(query, query)
    return out


def encoder_cache_vectors(cache: VectorCache | None, encode: Callable[[Sequence[str]], torch.Tensor],
                          texts: Sequence[str]) -> torch.Tensor:
    """Vectors [n, DIM] of `texts`: from the item encoder's cache where it has them, else `encode`d."""
    found = [cache.get(t) if cache is not None else None for t in texts]
    missing = [t for t, v in zip(texts, found) if v is None]
    log.info("item vectors: %d of %d from the item encoder's cache, %d to encode", len(texts) - len(missing),
             len(texts), len(missing))
    if missing:
        fresh = iter(encode(missing))
        found = [v if v is not None else next(fresh) for v in found]
    return torch.stack([v.float() for v in found]) if found else torch.zeros(0, DIM)  # type: ignore[union-attr]


def shared_assets(settings: Settings, data: SearchData) -> SearchAssets:
    """`search_pipeline.prepare`, with the catalog vectors the item encoder process already computed."""
    from app.gateway.dense_search import vector_cache_path

    limit_threads(settings.runtime.torch_threads)
    encoder = TextEncoder(max_length=settings.encoder.max_length, cache_size=settings.encoder.query_cache)
    started = time.monotonic()
    # The encoder process names its cache by the item tower's key: the same key as here, so
    # the same weights and settings (vectors of another tower would sit under another name).
    path = vector_cache_path(settings, encoder)
    cache = VectorCache(path, DIM) if path.is_file() else None
    item_vecs = cached_vectors(
        settings.runtime.embedding_cache_dir,
        encoder.model_key,
        data.titles,
        lambda texts: encoder_cache_vectors(
            cache, lambda rest: encoder.encode(rest, settings.encoder.batch_size, progress=True), texts),
    )
    log.info("catalog embeddings: %d items in %.1fs", len(data.items), time.monotonic() - started)
    return assets_of(settings, data, encoder, item_vecs)
