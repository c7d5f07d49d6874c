"""On-disk cache of text embeddings, keyed by (model key, hash of the texts in order).

A catalog re-encoded by the same model with the same settings is read back in a second
instead of minutes. Files are written to a temporary name and renamed, so a reader never
sees a partial file.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def texts_hash(texts: Sequence[str]) -> str:
    """sha256 of the texts in order (one a line)."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def cache_path(cache_dir: Path, model_key: str, texts: Sequence[str]) -> Path:
    key = hashlib.sha256(f"{model_key}\n{texts_hash(texts)}".encode()).hexdigest()[:32]
    return Path(cache_dir) / f"{key}.safetensors"


def cached_embeddings(
    cache_dir: Path | None, model_key: str, texts: Sequence[str], encode: Callable[[Sequence[str]], torch.Tensor]
) -> torch.Tensor:
    """`encode(texts)` ([n, d] float), read from / written to `cache_dir` when it is given."""
    if cache_dir is None:
        return encode(texts)
    path = cache_path(cache_dir, model_key, texts)
    if path.is_file():
        cached = load_file(str(path))["embeddings"]
        if cached.shape[0] == len(texts):
            return cached
    vectors = encode(texts)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".emb-", suffix=".safetensors", dir=path.parent)
    os.close(fd)
    try:
        save_file({"embeddings": vectors.detach().cpu().contiguous()}, tmp, metadata={"model_key": model_key})
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return vectors
