"""Vectors of texts kept on disk between runs, keyed by the text itself (its hash).

The one vector cache: the encoder process, the gateways and the training pipelines get back
the vectors of an unchanged catalog at once instead of re-encoding tens of thousands of
titles, and a changed catalog costs only its new texts. One file per encoder version; written
to a temporary name and renamed, so a crash never leaves half a file.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def text_key(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


class VectorCache:
    def __init__(self, path: Path, dim: int) -> None:
        self.path = path
        self.dim = dim
        self.vectors: dict[str, torch.Tensor] = {}
        self.dirty = False
        if path.is_file():
            loaded = load_file(str(path))
            keys = bytes(loaded["keys"].tolist()).decode().split("\n") if len(loaded["keys"]) else []
            self.vectors = dict(zip(keys, loaded["vectors"]))

    def get(self, text: str) -> torch.Tensor | None:
        return self.vectors.get(text_key(text))

    def put(self, texts: list[str], vectors: torch.Tensor) -> None:
        for text, vec in zip(texts, vectors):
            self.vectors[text_key(text)] = vec
        self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        keys = list(self.vectors)
        tensors = {
            "keys": torch.tensor(list("\n".join(keys).encode()), dtype=torch.uint8),
            "vectors": torch.stack([self.vectors[k] for k in keys]) if keys else torch.zeros(0, self.dim),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        save_file(tensors, str(tmp))
        os.replace(tmp, self.path)
        self.dirty = False


def cached_vectors(cache_dir: Path | None, model_key: str, texts: Sequence[str],
                   encode: Callable[[Sequence[str]], torch.Tensor]) -> torch.Tensor:
    """`encode(texts)` ([n, d] float), each text's vector read from / added to the model's
    cache file in `cache_dir` when one is given: only texts it has not seen are encoded."""
    if cache_dir is None or not texts:
        return encode(texts)
    name = hashlib.blake2b(model_key.encode(), digest_size=16).hexdigest()
    cache = VectorCache(Path(cache_dir) / f"{name}.safetensors", dim=0)
    found = [cache.get(text) for text in texts]
    missing = list(dict.fromkeys(t for t, v in zip(texts, found) if v is None))
    if missing:
        fresh = encode(missing).detach().cpu().float()
        cache.dim = fresh.shape[1]
        cache.put(missing, fresh)
        cache.save()
        found = [cache.get(text) if v is None else v for text, v in zip(texts, found)]
    return torch.stack([v for v in found if v is not None])
