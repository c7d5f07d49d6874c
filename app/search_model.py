"""A search checkpoint's serving side: its name, its query tower and loading it.

Split from app/search_pipeline.py (fine-tuning and evaluation) so the gateway loads the
model without importing the trainers (tests/unit/test_layering.py).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from app.settings import Settings
from models.checkpoint import Checkpoint, load_checkpoint
from models.encoder import TENSOR_PREFIX as ENCODER_PREFIX
from models.encoder import TextEncoder
from models.errors import ModelUnavailable
from models.query_adapter import QueryAdapter
from models.search_ranker import FEATURES, SearchRanker

if TYPE_CHECKING:
    from app.search_pipeline import SearchAssets

MODEL_NAME = "search"
ADAPTER_PREFIX = "adapter."


@dataclass
class QueryTower:
    """Query side of the model: a MiniLM (None: the pretrained one of the assets) and the adapter."""

    encoder: TextEncoder | None
    adapter: QueryAdapter

    @torch.inference_mode()
    def encode(self, assets: SearchAssets, queries: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(fine-tuned [Q, 384], pretrained [Q, 384]) embeddings of normalised queries."""
        zero = assets.query_vecs(queries)
        base = zero if self.encoder is None else self.encoder.encode(queries, progress=len(queries) > 2000)
        return self.adapter(base), zero

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {ADAPTER_PREFIX + k: v.detach().cpu() for k, v in self.adapter.state_dict().items()}
        return out if self.encoder is None else {**out, **self.encoder.state_tensors()}


def load_search_model(settings: Settings, checkpoint: Checkpoint) -> tuple[QueryTower, SearchRanker]:
    """Query tower and ranker of a search checkpoint."""
    card = checkpoint.card
    if card.get("kind") != "search" or card.get("features") != list(FEATURES):
        raise ModelUnavailable(f"{checkpoint.path} is not a search checkpoint of this version: run `streamrank finetune`")
    adapter = QueryAdapter()
    adapter.load_state_dict({k[len(ADAPTER_PREFIX):]: v for k, v in checkpoint.tensors.items() if k.startswith(ADAPTER_PREFIX)})
    encoder = None
    if any(k.startswith(ENCODER_PREFIX) for k in checkpoint.tensors):
        encoder = TextEncoder.from_tensors(
            checkpoint.tensors,
            weights_id=str(card["model_id"]),
            max_length=settings.encoder.max_length,
            cache_size=settings.encoder.query_cache,
        )
    ranker = SearchRanker().load_tensors(checkpoint.tensors)
    return QueryTower(encoder, adapter.eval()), ranker.eval()


def latest_search_checkpoint(settings: Settings) -> Checkpoint | None:
    root = settings.runtime.model_dir / MODEL_NAME
    try:
        return load_checkpoint(root)
    except FileNotFoundError:
        return None
