"""Full state of the online models as (CPU tensors, JSON meta), and a directory format for it.

A directory holds `state.safetensors` and `card.json`; both are written to a temporary
folder renamed into place, so a reader sees the old state or the new one, never half.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import orjson
import torch
from safetensors.torch import load_file, save_file

from models.embedding_store import EmbeddingStore
from models.online.click_model import OnlineClickConfig, OnlineClickModel
from models.online.rec_model import OnlineRecConfig, OnlineRecModel

Tensors = dict[str, torch.Tensor]
STATE_FILE = "state.safetensors"
CARD_FILE = "card.json"


def prefixed(prefix: str, tensors: Tensors) -> Tensors:
    return {f"{prefix}{k}": v for k, v in tensors.items()}


def unprefixed(prefix: str, tensors: Tensors) -> Tensors:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[Tensors, list]:
    full = optimizer.state_dict()
    tensors = {f"{i}.{k}": torch.as_tensor(v).cpu() for i, s in full["state"].items() for k, v in s.items()}
    return tensors, full["param_groups"]


def load_optimizer_state(optimizer: torch.optim.Optimizer, tensors: Tensors, groups: list) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        i, name = key.split(".", 1)
        state.setdefault(int(i), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def _common_state(model: OnlineRecModel | OnlineClickModel, stats: Any) -> tuple[Tensors, dict]:
    store_tensors, store_meta = model.store.state()
    opt_tensors, groups = optimizer_state(model.optimizer)
    tensors = {**prefixed("store.", store_tensors), **prefixed("opt.", opt_tensors),
               **{f"dense.{k}": v.detach().cpu() for k, v in model.dense.state_dict().items()},
               **{f"stats.{s}": v.cpu() for s, v in enumerate(stats.values)}}
    meta = {"store": store_meta, "optimizer": groups, "samples_learned": model.samples_learned}
    return tensors, meta


def _load_common(model: OnlineRecModel | OnlineClickModel, stats: Any, tensors: Tensors, meta: dict,
                 devices: list[torch.device] | None) -> None:
    model.store = EmbeddingStore.from_state(unprefixed("store.", tensors), meta["store"], devices)
    stats.store = model.store
    for s, v in enumerate(stats.values):
        v.copy_(tensors[f"stats.{s}"])
    model.dense.load_state_dict(unprefixed("dense.", tensors))
    load_optimizer_state(model.optimizer, unprefixed("opt.", tensors), meta["optimizer"])
    model.samples_learned = meta["samples_learned"]


def rec_state(model: OnlineRecModel) -> tuple[Tensors, dict]:
    tensors, meta = _common_state(model, model.popularity)
    tensors["generator"] = model.generator.get_state()
    meta |= {"config": model.config.__dict__, "counts": model.counts.to_json(),
             "seen_evictions": model.seen_evictions, "changed_sources": list(model.changed_sources),
             "changed_popularity": list(model.changed_popularity)}
    return tensors, meta


def rec_from_state(tensors: Tensors, meta: dict, devices: list[torch.device] | None = None) -> OnlineRecModel:
    model = OnlineRecModel(OnlineRecConfig(**meta["config"]), devices)
    _load_common(model, model.popularity, tensors, meta, devices)
    model.generator.set_state(tensors["generator"])
    model.counts.load_json(meta["counts"])
    model.seen_evictions = meta["seen_evictions"]
    model.changed_sources = set(meta["changed_sources"])
    model.changed_popularity = set(meta["changed_popularity"])
    return model


def click_state(model: OnlineClickModel) -> tuple[Tensors, dict]:
    tensors, meta = _common_state(model, model.stats)
    meta |= {"config": model.config.__dict__, "changed_items": list(model.changed_items)}
    return tensors, meta


def click_from_state(tensors: Tensors, meta: dict, devices: list[torch.device] | None = None) -> OnlineClickModel:
    model = OnlineClickModel(OnlineClickConfig(**meta["config"]), devices)
    _load_common(model, model.stats, tensors, meta, devices)
    model.changed_items = set(meta["changed_items"])
    return model


def write_state_dir(directory: Path | str, tensors: Tensors, card: dict) -> Path:
    """Write (replace) `directory` atomically with the tensors and the JSON card."""
    final = Path(directory)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp / STATE_FILE))
        # orjson: a card holds every count of every model, and json.dumps spent seconds on it
        # (infinite ranks become null; WindowMetric.add_ranks reads null as a miss again).
        (tmp / CARD_FILE).write_bytes(orjson.dumps(card))
        old = final.with_name(f".{final.name}-old")
        if final.exists():
            os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def read_state_dir(directory: Path | str) -> tuple[Tensors, dict]:
    directory = Path(directory)
    if not (directory / CARD_FILE).is_file():
        raise FileNotFoundError(f"no online learner state at {directory}: expected {CARD_FILE} and {STATE_FILE}")
    return load_file(str(directory / STATE_FILE)), orjson.loads((directory / CARD_FILE).read_bytes())
