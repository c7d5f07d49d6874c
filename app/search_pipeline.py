"""Search model life cycle shared by `streamrank finetune` and `streamrank evaluate search`.

The model is a dual encoder with a frozen item tower (pretrained MiniLM, catalog embeddings
cached on disk) and a fine-tuned query tower (MiniLM, optionally fine-tuned, + QueryAdapter),
plus a ranker over BM25, dense and item features. A checkpoint (`<model_dir>/search/vNNNN`)
holds the adapter, ranker and (when fine-tuned) query-encoder tensors; its card lists every
query whose judgments were used in training.
"""
from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.search_model import MODEL_NAME, QueryTower
from app.settings import Settings
from app.threads import limit_threads
from models.checkpoint import save_checkpoint
from models.data.homedepot import (
    SearchData,
    eligible_test_queries,
    normalize_query,
    queries_hash,
    split_queries,
    write_queries,
)
from models.encoder import BASE_MODEL, TextEncoder
from models.errors import DataError, ModelUnavailable
from models.query_adapter import QueryAdapter
from models.search_eval import search_metrics
from models.hybrid_search import HybridSearcher
from models.search_ranker import FEATURES, SearchRanker, dense_search
from models.vector_cache import cached_vectors
from models.search_training import (
    Judged,
    candidate_targets,
    hard_negatives,
    train_adapter,
    train_query_side,
    train_ranker,
)

log = logging.getLogger(__name__)

DEV_QUERIES_FILE = "dev_queries.txt"
TOP_K = 100


@dataclass
class SearchAssets:
    """What every search system of one data file shares: catalog embeddings, the hybrid searcher
    over them (its BM25 is the BM25 baseline), query vectors."""

    data: SearchData
    encoder: TextEncoder
    item_vecs: torch.Tensor  # [N, 384], pretrained item tower
    searcher: HybridSearcher  # slot n is catalog row n
    row_of: dict[str, int] = field(default_factory=dict)
    _queries: dict[str, torch.Tensor] = field(default_factory=dict)

    def query_vecs(self, queries: Sequence[str]) -> torch.Tensor:
        """Pretrained embeddings [Q, 384] of normalised queries (computed once per query)."""
        missing = [q for q in dict.fromkeys(queries) if q not in self._queries]
        if missing:
            for q, vec in zip(missing, self.encoder.encode(missing, progress=len(missing) > 2000)):
                self._queries[q] = vec
        return torch.stack([self._queries[q] for q in queries]) if queries else torch.zeros(0, 384)

    def judged(self, queries: Sequence[str]) -> list[Judged]:
        """Catalog rows and gains of the judged products of each query."""
        out = []
        for q in queries:
            gains = self.data.gains(q)
            out.append(Judged(np.array([self.row_of[i] for i in gains], np.int64), np.array(list(gains.values()), np.float32)))
        return out


def prepare(settings: Settings, data: SearchData) -> SearchAssets:
    """Load the pretrained encoder, embed the catalog (disk cache) and build the searcher."""
    limit_threads(settings.runtime.torch_threads)
    encoder = TextEncoder(max_length=settings.encoder.max_length, cache_size=settings.encoder.query_cache)
    started = time.monotonic()
    item_vecs = cached_vectors(
        settings.runtime.embedding_cache_dir,
        encoder.model_key,
        data.titles,
        lambda texts: encoder.encode(texts, settings.encoder.batch_size, progress=True),
    )
    log.info("catalog embeddings: %d items in %.1fs", len(data.items), time.monotonic() - started)
    return assets_of(settings, data, encoder, item_vecs)


def assets_of(settings: Settings, data: SearchData, encoder: TextEncoder, item_vecs: torch.Tensor) -> SearchAssets:
    """SearchAssets of a catalog and its item vectors [N, 384] (row n: data.items[n])."""
    searcher = HybridSearcher.from_catalog(data.items, data.titles, item_vecs, settings.search.candidates)
    return SearchAssets(data, encoder, item_vecs, searcher, {item: r for r, item in enumerate(data.items)})


# ---- ranking with each system ------------------------------------------------------------


def rank_bm25(assets: SearchAssets, queries: Sequence[str], k: int = TOP_K) -> dict[str, list[str]]:
    return {q: [i for i, _ in assets.searcher.index.search(q, k)] for q in queries}


def rank_dense(assets: SearchAssets, queries: Sequence[str], q_vecs: torch.Tensor, k: int = TOP_K) -> dict[str, list[str]]:
    top = dense_search(assets.item_vecs, q_vecs, k)
    return {q: [assets.data.items[r] for r in row.tolist()] for q, row in zip(queries, top)}


def rank_model(assets: SearchAssets, tower: QueryTower, ranker: SearchRanker, queries: Sequence[str], k: int = TOP_K
               ) -> dict[str, list[str]]:
    tuned, zero = tower.encode(assets, queries)
    return {q: [i for i, _ in assets.searcher.search(q, tuned[n], zero[n], ranker, k)] for n, q in enumerate(queries)}


def evaluate_all(assets: SearchAssets, tower: QueryTower, ranker: SearchRanker, queries: Sequence[str]
                 ) -> dict[str, dict[str, float]]:
    """Metrics of the hybrid model, BM25, the fine-tuned dense retriever and the zero-shot encoder."""
    tuned, zero = tower.encode(assets, queries)
    data = assets.data
    return {
        "model": search_metrics(data, queries, rank_model(assets, tower, ranker, queries)),
        "bm25": search_metrics(data, queries, rank_bm25(assets, queries)),
        "zero_shot": search_metrics(data, queries, rank_dense(assets, queries, zero)),
        "dense_tuned": search_metrics(data, queries, rank_dense(assets, queries, tuned)),
    }


# ---- fitting and saving ------------------------------------------------------------------


@dataclass
class FitResult:
    tower: QueryTower
    ranker: SearchRanker
    encoder_losses: list[float]
    adapter_losses: list[float]
    ranker_losses: list[float]
    seconds: float


def _progress(total: int, desc: str) -> tuple[Any, Any]:
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="step", mininterval=2.0)
    return bar, lambda step, loss: (bar.update(1), bar.set_postfix(loss=f"{loss:.3f}"))


def _steps(n: int, epochs: int, batch_size: int, max_steps: int | None) -> int:
    steps = epochs * -(-n // batch_size)
    return min(steps, max_steps) if max_steps is not None else steps


def fit_query_encoder(
    settings: Settings, assets: SearchAssets, train: Sequence[str], epochs: int, max_steps: int | None
) -> tuple[TextEncoder, list[float]]:
    """Fine-tune a copy of MiniLM as the query tower against the frozen item embeddings."""
    encoder = TextEncoder(max_length=settings.encoder.max_length, cache_size=settings.encoder.query_cache)
    for param in encoder.transformer.embeddings.parameters():  # the 30k-word table: slow, overfits
        param.requires_grad = False
    bar, on_step = _progress(_steps(len(train), epochs, settings.finetune.encoder_batch_size, max_steps), "finetune query encoder")
    losses = train_query_side(
        encoder,
        lambda batch: encoder.embed([train[i] for i in batch]),
        assets.judged(train),
        assets.item_vecs,
        epochs=epochs,
        batch_size=settings.finetune.encoder_batch_size,
        lr=settings.finetune.encoder_lr,
        temperature=settings.finetune.temperature,
        negatives=settings.finetune.negatives,
        max_steps=max_steps,
        on_step=on_step,
    )
    bar.close()
    encoder.eval()
    return encoder, losses


def fit(
    settings: Settings,
    assets: SearchAssets,
    train: Sequence[str],
    calib: Sequence[str],
    epochs: int,
    max_steps: int | None = None,
    encoder_epochs: int = 0,
) -> FitResult:
    """Query tower on `train` queries, then ranker on `calib` queries (scores the tower never fitted).

    The query encoder is fine-tuned only when `encoder_epochs` > 0 (slow on a CPU); the adapter
    is trained on top of it in every case.
    """
    started = time.monotonic()
    torch.manual_seed(0)
    encoder, encoder_losses = (
        fit_query_encoder(settings, assets, train, encoder_epochs, max_steps) if encoder_epochs > 0 else (None, [])
    )
    tower = QueryTower(encoder, QueryAdapter())
    base = assets.query_vecs(train) if encoder is None else encoder.encode(train, progress=True)
    hard = hard_negatives(base, assets.item_vecs, settings.finetune.hard_negatives) if settings.finetune.hard_negatives > 0 else None
    bar, on_step = _progress(_steps(len(train), epochs, settings.finetune.batch_size, max_steps), "finetune query adapter")
    adapter_losses = train_adapter(
        tower.adapter,
        base,
        assets.judged(train),
        assets.item_vecs,
        epochs,
        negatives=settings.finetune.negatives,
        hard=hard,
        batch_size=settings.finetune.batch_size,
        lr=settings.finetune.lr,
        temperature=settings.finetune.temperature,
        max_steps=max_steps,
        on_step=on_step,
    )
    bar.close()
    ranker = SearchRanker()
    tuned, zero = tower.encode(assets, calib)
    examples = []
    for n, (q, judged) in enumerate(zip(calib, assets.judged(calib))):
        cands = assets.searcher.candidates(q, tuned[n], zero[n])
        examples.append((cands, candidate_targets(cands, judged)))
    ranker_losses = train_ranker(ranker, examples)
    return FitResult(tower, ranker, encoder_losses, adapter_losses, ranker_losses, time.monotonic() - started)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def finetune_search(
    settings: Settings,
    data_path: Path,
    data: SearchData,
    exclude: Iterable[str] = (),
    epochs: int | None = None,
    max_steps: int | None = None,
    assets: SearchAssets | None = None,
    plot: bool = True,
    hold_out_dev: bool = True,
    encoder_epochs: int | None = None,
) -> Path:
    """Fit on the file's queries minus `exclude` and the dev split; save and return the checkpoint folder.

    Writes next to the weights: card.json, dev_queries.txt (held-out dev queries eligible as
    test queries) and training_curve.png. Without `hold_out_dev` every query but the excluded
    ones trains (what an evaluation that brings its own test queries wants).
    """
    started = time.monotonic()
    excluded = sorted({normalize_query(q) for q in exclude})
    dev_fraction = settings.search.dev_fraction if hold_out_dev else 0.0
    splits = split_queries(data, excluded, dev_fraction, settings.search.calib_fraction)
    if not splits["train"] or not splits["calib"]:
        raise DataError(f"{data_path}: too few queries to fine-tune ({len(data.judgments)} judged queries)")
    assets = assets or prepare(settings, data)
    epochs = settings.finetune.epochs if epochs is None else epochs
    encoder_epochs = settings.finetune.encoder_epochs if encoder_epochs is None else encoder_epochs
    if encoder_epochs < 0:
        encoder_epochs = 3 if torch.cuda.is_available() else 0
    result = fit(settings, assets, splits["train"], splits["calib"], epochs, max_steps, encoder_epochs)
    model_id = uuid.uuid4().hex
    if result.tower.encoder is not None:
        result.tower.encoder.weights_id = model_id  # its query cache entries belong to this model
    dev = eligible_test_queries(data, [q for q in splits["dev"] if q not in set(excluded)])
    metrics = evaluate_all(assets, result.tower, result.ranker, dev) if dev else {}
    training = sorted(set(splits["train"]) | set(splits["calib"]))
    card: dict[str, Any] = {
        "kind": "search",
        "model_id": model_id,
        "base_model": BASE_MODEL,
        "architecture": "frozen MiniLM item tower; MiniLM + QueryAdapter query tower; SearchRanker over hybrid candidates",
        "query_encoder": "pretrained" if result.tower.encoder is None else "fine-tuned",
        "features": list(FEATURES),
        "data": {
            "path": str(data_path),
            "sha256": file_sha256(data_path),
            "catalog_sha256": data.catalog_hash(),
            "items": len(data.items),
            "queries": len(data.judgments),
        },
        "settings": {
            k: settings.values()[k]
            for k in (
                "encoder_max_length", "search_candidates", "search_calib_fraction",
                "finetune_batch_size", "finetune_lr", "finetune_temperature", "finetune_negatives",
                "finetune_hard_negatives", "finetune_encoder_batch_size", "finetune_encoder_lr",
            )
        },
        "dev_fraction": dev_fraction,
        "epochs": epochs,
        "encoder_epochs": encoder_epochs,
        "max_steps": max_steps,
        "encoder_steps": len(result.encoder_losses),
        "adapter_steps": len(result.adapter_losses),
        "fit_seconds": round(result.seconds, 1),
        "seconds": round(time.monotonic() - started, 1),
        "metrics": {"dev": metrics, "dev_queries": len(dev)},
        "training_queries": training,
        "training_queries_sha256": queries_hash(training),
        "excluded_queries_sha256": queries_hash(excluded),
        "excluded_queries": len(excluded),
    }
    tensors = {**result.tower.tensors(), **result.ranker.state_tensors()}
    path = save_checkpoint(settings.runtime.model_dir, MODEL_NAME, tensors, card)
    write_queries(path / DEV_QUERIES_FILE, dev)
    if plot:
        plot_losses(path / "training_curve.png", result.encoder_losses, result.adapter_losses, result.ranker_losses)
    log.info("saved %s (dev metrics %s)", path, metrics)
    return path


def plot_losses(
    path: Path, encoder_losses: Sequence[float], adapter_losses: Sequence[float], ranker_losses: Sequence[float]
) -> Path:
    """PNG of the training losses: query encoder and adapter per step, ranker per epoch."""
    from models.plots import Panel, plot_panels

    encoder = "query encoder (graded softmax)" + ("" if encoder_losses else ": not fine-tuned")
    return plot_panels([Panel({"loss": encoder_losses}, encoder, "step"),
                        Panel({"loss": adapter_losses}, "query adapter (graded softmax)", "step"),
                        Panel({"loss": ranker_losses}, "ranker (listwise, calibration queries)")], path)


def leaked_queries(card: dict[str, Any], test_queries: Iterable[str]) -> set[str]:
    """Test queries (normalised) whose judgments the checkpoint was trained on."""
    if "training_queries" not in card:
        raise ModelUnavailable("the checkpoint card has no training_queries: cannot check for leakage")
    trained = set(card["training_queries"])
    if queries_hash(card["training_queries"]) != card.get("training_queries_sha256"):
        raise ModelUnavailable("the checkpoint card's training_queries do not match its hash")
    return trained & set(test_queries)
