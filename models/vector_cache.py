"""Vectors of texts kept on disk between runs, keyed by the text itself (its hash).

A restarted gateway gets back the vectors of an unchanged catalog at once instead of
re-encoding tens of thousands of titles. One file per encoder version; written to a
temporary name and renamed, so a crash never leaves half a file.
"""
from __future__ import annotations

import hashlib
import os
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
