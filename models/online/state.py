"""Full state of the online models as (CPU tensors, JSON meta), and a directory format for it.

Everything that grows with the data (embedding rows, transition counts) is in the tensors;
the JSON meta keeps settings and bookkeeping (the counts were JSON once: a 14 MB card that
took ~12% of a worker's time to write every 30 s).

A directory holds `state.safetensors` and `card.json`; both are written to a temporary
folder renamed into place, so a reader sees the old state or the new one, never half.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import torch
from safetensors.torch import load_file, save_file

from models.embedding_store import EmbeddingStore
from models.online.click_model import OnlineClickConfig, OnlineClickModel
from models.online.rec_model import OnlineRecConfig, OnlineRecModel

Tensors = dict[str, torch.Tensor]
STATE_FILE = "state.safetensors"
CARD_FILE = "card.json"
COUNTS_FORMAT = "arrays-1"  # the transition counts are `counts.*` tensors (TransitionCounts.to_arrays)


def prefixed(prefix: str, tensors: Tensors) -> Tensors:
    return {f"{prefix}{k}": v for k, v in tensors.items()}


def unprefixed(prefix: str, tensors: Tensors) -> Tensors:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[Tensors, list[Any]]:
    full = optimizer.state_dict()
    tensors = {f"{i}.{k}": torch.as_tensor(v).cpu() for i, s in full["state"].items() for k, v in s.items()}
    return tensors, full["param_groups"]


def load_optimizer_state(optimizer: torch.optim.Optimizer, tensors: Tensors, groups: list[Any]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        i, name = key.split(".", 1)
        state.setdefault(int(i), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def _strings(values: list[Any]) -> bool:
    return all(v is None or isinstance(v, str) for v in values)


def pack_strings(values: list[str | None]) -> Tensors:
    """Strings (or None) as tensors: one UTF-8 blob, where each ends, which are None."""
    encoded = [b"" if v is None else v.encode("utf-8") for v in values]
    ends = np.cumsum(np.fromiter(map(len, encoded), np.int64, len(encoded)), dtype=np.int64)
    return {"blob": torch.from_numpy(np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()),
            "ends": torch.from_numpy(ends), "none": torch.tensor([v is None for v in values], dtype=torch.bool)}


def unpack_strings(tensors: Tensors) -> list[str | None]:
    blob, ends = tensors["blob"].numpy().tobytes(), tensors["ends"].tolist()
    return [None if none else blob[a:b].decode("utf-8")
            for a, b, none in zip([0, *ends], ends, tensors["none"].tolist())]


def pack_store_meta(meta: dict[str, Any]) -> tuple[Tensors, dict[str, Any]]:
    """The per-row parts of an EmbeddingStore's meta (row map, free rows, ids, sighting counts)
    as tensors; the rest stays JSON. Unchanged when an id is not a string."""
    shards, counts = meta["shards"], meta["counts"]
    if not all(_strings([k for k, _ in m["rows"]]) and _strings(m["ids"]) for m in shards) \
            or not _strings([k for k, _ in counts]):
        return {}, meta
    tensors: Tensors = {}
    for s, m in enumerate(shards):
        tensors |= prefixed(f"shard{s}.row_keys.", pack_strings([k for k, _ in m["rows"]]))
        tensors |= prefixed(f"shard{s}.ids.", pack_strings(m["ids"]))
        tensors[f"shard{s}.row_numbers"] = torch.tensor([r for _, r in m["rows"]], dtype=torch.int64)
        tensors[f"shard{s}.free"] = torch.tensor(m["free"], dtype=torch.int64)
    tensors |= prefixed("counts.keys.", pack_strings([k for k, _ in counts]))
    tensors["counts.values"] = torch.tensor([n for _, n in counts], dtype=torch.int64)
    return tensors, {**meta, "shards": len(shards), "counts": "arrays"}


def unpack_store_meta(tensors: Tensors, meta: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(meta["shards"], int):  # JSON all through (an old checkpoint, or non-string ids)
        return meta
    shards = [{"rows": list(zip(unpack_strings(unprefixed(f"shard{s}.row_keys.", tensors)),
                                tensors[f"shard{s}.row_numbers"].tolist())),
               "free": tensors[f"shard{s}.free"].tolist(),
               "ids": unpack_strings(unprefixed(f"shard{s}.ids.", tensors))} for s in range(meta["shards"])]
    counts = list(zip(unpack_strings(unprefixed("counts.keys.", tensors)), tensors["counts.values"].tolist()))
    return {**meta, "shards": shards, "counts": counts}


def _common_state(model: OnlineRecModel | OnlineClickModel, stats: Any) -> tuple[Tensors, dict[str, Any]]:
    store_tensors, store_meta = model.store.state()
    meta_tensors, store_meta = pack_store_meta(store_meta)
    opt_tensors, groups = optimizer_state(model.optimizer)
    tensors = {**prefixed("store.", store_tensors), **prefixed("store_meta.", meta_tensors),
               **prefixed("opt.", opt_tensors),
               **{f"dense.{k}": v.detach().cpu() for k, v in model.dense.state_dict().items()},
               **{f"stats.{s}": v.cpu() for s, v in enumerate(stats.values)}}
    meta = {"store": store_meta, "optimizer": groups, "samples_learned": model.samples_learned}
    return tensors, meta


def _load_common(model: OnlineRecModel | OnlineClickModel, stats: Any, tensors: Tensors, meta: dict[str, Any],
                 devices: list[torch.device] | None) -> None:
    store_meta = unpack_store_meta(unprefixed("store_meta.", tensors), meta["store"])
    model.store = EmbeddingStore.from_state(unprefixed("store.", tensors), store_meta, devices)
    stats.store = model.store
    for s, v in enumerate(stats.values):
        v.copy_(tensors[f"stats.{s}"])
    model.dense.load_state_dict(unprefixed("dense.", tensors))
    load_optimizer_state(model.optimizer, unprefixed("opt.", tensors), meta["optimizer"])
    model.samples_learned = meta["samples_learned"]


def rec_state(model: OnlineRecModel) -> tuple[Tensors, dict[str, Any]]:
    tensors, meta = _common_state(model, model.popularity)
    tensors["generator"] = model.generator.get_state()
    tensors |= {f"counts.{k}": torch.from_numpy(v) for k, v in model.counts.to_arrays().items()}
    meta |= {"config": model.config.__dict__, "counts": COUNTS_FORMAT,
             "seen_evictions": model.seen_evictions, "changed_sources": list(model.changed_sources),
             "changed_popularity": list(model.changed_popularity)}
    return tensors, meta


def rec_from_state(tensors: Tensors, meta: dict[str, Any], devices: list[torch.device] | None = None) -> OnlineRecModel:
    model = OnlineRecModel(OnlineRecConfig(**meta["config"]), devices)
    _load_common(model, model.popularity, tensors, meta, devices)
    model.generator.set_state(tensors["generator"])
    if isinstance(meta["counts"], list):  # a checkpoint from before the binary counts
        model.counts.load_json(meta["counts"])
    else:
        model.counts.load_arrays({k: v.numpy() for k, v in unprefixed("counts.", tensors).items()})
    model.seen_evictions = meta["seen_evictions"]
    model.changed_sources = set(meta["changed_sources"])
    model.changed_popularity = set(meta["changed_popularity"])
    return model


def click_state(model: OnlineClickModel) -> tuple[Tensors, dict[str, Any]]:
    tensors, meta = _common_state(model, model.stats)
    ads = model.ad_counts
    keys, values = ads.export()  # least recent first: eviction goes on in the same order
    tensors["ad_counts"] = torch.tensor(values, dtype=torch.float64).reshape(-1, 2)
    meta |= {"config": model.config.__dict__, "changed_items": list(model.changed_items),
             "ad_keys": keys, "ad_changed": list(ads.changed), "ad_evicted": list(ads.evicted)}
    return tensors, meta


def click_from_state(tensors: Tensors, meta: dict[str, Any], devices: list[torch.device] | None = None) -> OnlineClickModel:
    model = OnlineClickModel(OnlineClickConfig(**meta["config"]), devices)
    _load_common(model, model.stats, tensors, meta, devices)
    model.changed_items = set(meta["changed_items"])
    if "ad_keys" in meta:  # a checkpoint written before the click model counted ads has none
        model.ad_counts = model.ad_counts.replaced(meta["ad_keys"], tensors["ad_counts"].tolist())
        model.ad_counts.changed = {tuple(k) for k in meta["ad_changed"]}
        model.ad_counts.evicted = {tuple(k) for k in meta["ad_evicted"]}
    return model


def write_state_dir(directory: Path | str, tensors: Tensors, card: dict[str, Any]) -> Path:
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


def read_state_dir(directory: Path | str) -> tuple[Tensors, dict[str, Any]]:
    directory = Path(directory)
    if not (directory / CARD_FILE).is_file():
        raise FileNotFoundError(f"no online learner state at {directory}: expected {CARD_FILE} and {STATE_FILE}")
    return load_file(str(directory / STATE_FILE)), orjson.loads((directory / CARD_FILE).read_bytes())
