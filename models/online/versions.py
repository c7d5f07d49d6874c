"""Versions of the online learner: paired validation, the guard, fusion, deltas, rollback.

`OnlineLearner.step` scores each sample with the live model AND the frozen serving snapshot
(before the live model learns it), so both are judged on the same samples. `propose` then
waits, refuses (the live model is reset to the serving snapshot) or promotes a fused model
as a new `Version`: a delta of what changed since the previous one, small enough to ship.

A promoted version is on probation: until it has served `min_samples` samples without being
significantly worse than the last good version (scored on the same samples too), it is not
good yet, and one that degrades is rolled back by itself to the last good one. That catches
what the guard cannot see at promotion: damage learned at the very end of a window (a burst
the window judged on its own noisy samples) or traffic the version does not fit any more.
"""
from __future__ import annotations

import copy
import json
import struct
from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from models.online.click_model import ClickSample, OnlineClickModel
from models.online.config import LearnerConfig
from models.online.progressive import WindowMetric
from models.online.rec_model import OnlineRecModel, Sample
from models.online.serving import ServingRecModel
from models.online import state

Id = Hashable
# SRV2: the counts are arrays among the tensors (TransitionCounts.to_arrays). SRV1 held them
# in the JSON header, which a gateway parsed in one GIL-holding call; it is still read.
MAGIC, MAGIC_V1 = b"SRV2", b"SRV1"


@dataclass
class Version:
    """A promoted model as a delta over `parent` (or a full snapshot when `full`)."""

    number: int
    parent: int
    created: float
    full: bool = False
    row_ids: list[Id] = field(default_factory=list)
    rows: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 0))  # [m, d]
    evicted: list[Id] = field(default_factory=list)
    pop_ids: list[Id] = field(default_factory=list)
    popularity: torch.Tensor = field(default_factory=lambda: torch.zeros(0))  # [p] event counts
    dense: dict[str, torch.Tensor] = field(default_factory=dict)
    # TransitionCounts.to_arrays of the changed sources (to_json's list in an SRV1 record)
    transitions: dict[str, np.ndarray] | list[Any] = field(default_factory=dict)
    dropped_sources: list[Id] = field(default_factory=list)
    click_row_ids: list[Id] = field(default_factory=list)
    click_rows: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 0))
    click_stats: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 2))
    click_dense: dict[str, torch.Tensor] = field(default_factory=dict)
    # The click model's ad counts (models/ads/ctr.py AdClickCounts): changed (item, context) keys,
    # their [clicks, examinations], and keys dropped by its capacity.
    ad_keys: list[Any] = field(default_factory=list)
    ad_counts: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 2, dtype=torch.float64))
    ad_evicted: list[Any] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)

    _TENSORS = ("rows", "popularity", "click_rows", "click_stats", "ad_counts")
    _DICTS = ("dense", "click_dense", "transitions")

    def to_bytes(self) -> bytes:
        """MAGIC, header length (u64 LE), JSON header, safetensors of the tensors."""
        tensors = {name: getattr(self, name).contiguous() for name in self._TENSORS}
        if isinstance(self.transitions, list):
            raise ValueError("an SRV1 version (counts as JSON) is read, never written")
        for name in self._DICTS:
            tensors.update({f"{name}.{k}": torch.as_tensor(v).detach().contiguous() for k, v in getattr(self, name).items()})
        header = {k: v for k, v in self.__dict__.items() if k not in self._TENSORS + self._DICTS}
        blob = json.dumps(header).encode("utf-8")
        return MAGIC + struct.pack("<Q", len(blob)) + blob + save_tensors(tensors)

    @classmethod
    def from_bytes(cls, data: bytes) -> "Version":
        if data[:4] not in (MAGIC, MAGIC_V1):
            raise ValueError("not a streamrank online version (bad magic bytes)")
        (size,) = struct.unpack("<Q", data[4:12])
        header = json.loads(data[12 : 12 + size])
        tensors = load_tensors(data[12 + size :])
        # A version written before a tensor existed lacks it: the field's default (none).
        fields: dict[str, Any] = {name: tensors[name] for name in cls._TENSORS if name in tensors}
        for name in cls._DICTS:
            fields[name] = {k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(f"{name}.")}
        if data[:4] == MAGIC:
            fields["transitions"] = {k: v.numpy() for k, v in fields["transitions"].items()}
        else:
            del fields["transitions"]  # in the header
        return cls(**header, **fields)


@dataclass(frozen=True)
class Decision:
    action: str  # "wait" | "refuse" | "promote" | "rollback" (a serving version on probation degraded)
    reason: str
    version: Version | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


class OnlineLearner:
    """Live models that learn, a frozen serving snapshot they are judged against, and versions."""

    def __init__(self, rec: OnlineRecModel, click: OnlineClickModel | None = None,
                 config: LearnerConfig | None = None) -> None:
        self.config = config or LearnerConfig()
        self._validation_credit = 0.0
        self.live_rec, self.live_click = rec, click
        self.version = 0
        self.floor = 0  # numbers up to here were published before (by an earlier run): new ones go above
        self.kept: deque[tuple[int, OnlineRecModel, OnlineClickModel | None]] = deque(maxlen=self.config.keep)
        self._set_serving(0)
        self._confirm_good()

    # ---- the last good version ------------------------------------------------------------
    @property
    def on_probation(self) -> bool:
        """Is the serving version newer than the last good one (judged against it on new samples)?"""
        return self.good[0] != self.version

    def _confirm_good(self) -> None:
        """The serving version is the last good one (no more probation)."""
        self.good = (self.version, self.serving_rec, self.serving_click)
        self.good_window = WindowMetric(self.config.window)

    def _set_serving(self, number: int) -> None:
        """Freeze the live models as the serving snapshot of version `number`."""
        self.live_rec.changed_sources.clear()
        self.live_rec.changed_popularity.clear()
        if self.live_click is not None:
            self.live_click.changed_items.clear()
            self.live_click.ad_counts.mark()
        self.serving_rec = copy.deepcopy(self.live_rec)
        self.serving_click = copy.deepcopy(self.live_click)
        self.kept.append((number, self.serving_rec, self.serving_click))
        self._reset_windows()

    def _reset_windows(self) -> None:
        self.live_window = WindowMetric(self.config.window)
        self.serving_window = WindowMetric(self.config.window)
        self.good_window = WindowMetric(self.config.window)

    def _reset_live_to(self, rec: OnlineRecModel, click: OnlineClickModel | None) -> None:
        self.serving_rec, self.serving_click = rec, click
        self.live_rec, self.live_click = copy.deepcopy(rec), copy.deepcopy(click)
        self._reset_windows()

    # ---- learning -----------------------------------------------------------------------
    def step(self, rec_samples: Sequence[Sample] = (), click_samples: Sequence[ClickSample] = ()) -> None:
        """Score samples with live and serving (paired progressive validation: every click
        sample, `validation_share` of the rank samples), then learn every one."""
        if rec_samples:
            picked = [rec_samples[i] for i in self._validation_picks(len(rec_samples))]
            if picked:
                histories, targets = [h for h, _ in picked], [t for _, t in picked]
                self.live_window.add_ranks(self.live_rec.score_batch(histories, targets))
                self.serving_window.add_ranks(self.serving_rec.score_batch(histories, targets))
                if self.on_probation:
                    self.good_window.add_ranks(self.good[1].score_batch(histories, targets))
            self.live_rec.learn(rec_samples)
        if click_samples and self.live_click is not None and self.serving_click is not None:
            labels = [s.label for s in click_samples]
            self.live_window.add_clicks(self.live_click.score_batch(click_samples).tolist(), labels)
            self.serving_window.add_clicks(self.serving_click.score_batch(click_samples).tolist(), labels)
            if self.on_probation and self.good[2] is not None:
                self.good_window.add_clicks(self.good[2].score_batch(click_samples).tolist(), labels)
            self.live_click.learn(click_samples)

    def _validation_picks(self, n: int) -> list[int]:
        """Positions in a batch of `n` to score: `validation_share` of them, evenly spread (the
        fraction carried to the next batch), and at least one. A busy stream fills its batches,
        so the share bounds the cost; a quiet one sends small batches and is judged nearly
        whole, so a version is never held back for want of scored samples."""
        share = self.config.validation_share
        if share >= 1.0 or n == 0:
            return list(range(n))
        self._validation_credit += share * n
        m = max(1, min(n, int(self._validation_credit)))
        self._validation_credit = max(0.0, self._validation_credit - m)
        return [int((j + 0.5) * n / m) for j in range(m)]

    # ---- the guard and versions -----------------------------------------------------------
    def propose(self, now: float) -> Decision:
        """"wait" below min_samples; "rollback" to the last good version if the serving one,
        on probation, is worse than guard_ratio x the last good one on the same samples;
        "refuse" (live reset to serving) if live is worse than guard_ratio x serving; else
        "promote" a fused Version."""
        live, serving = self.live_window, self.serving_window
        metrics = {"live": live.summary(), "serving": serving.summary()}
        if self.on_probation:
            metrics["good"] = {**self.good_window.summary(), "version": self.good[0]}
        if max(live.count, live.click_count) < self.config.min_samples:
            return Decision("wait", f"{max(live.count, live.click_count)} samples < {self.config.min_samples}",
                            metrics=metrics)
        if self.on_probation:
            degraded = self._worse(serving, self.good_window)
            if degraded:
                bad, good = self.version, self.good[0]
                version = self._restore(self.good, now, {"rollback_to": good, "rolled_back": bad, "reason": degraded})
                return Decision("rollback", f"serving version {bad} degraded ({degraded}); "
                                            f"back to version {good} as {version.number}", version, metrics)
            self._confirm_good()
        worse = self._worse(live, serving)
        if worse:
            self._reset_live_to(self.serving_rec, self.serving_click)
            return Decision("refuse", worse, metrics=metrics)
        version = self._promote(now, metrics)
        return Decision("promote", f"version {version.number}", version, metrics)

    def _worse(self, live: WindowMetric, serving: WindowMetric) -> str:
        """Why `live` is worse than the guard allows against `serving` ('' when it is not).

        Worse means both below `guard_ratio` x serving AND significantly so on the paired
        per-sample differences (mean below -2 standard errors): on a few hundred samples an
        NDCG near 0.05 moves by more than 10% by chance, and a refusal throws the window's
        learning away, so noise alone must not trigger one.
        """
        ratio = self.config.guard_ratio
        if live.count and live.ndcg() < ratio * serving.ndcg() and significantly_lower(
                per_sample_ndcg(live), per_sample_ndcg(serving)):
            return f"NDCG@10 {live.ndcg():.4f} < {ratio} x serving {serving.ndcg():.4f}"
        live_loss, serving_loss = live.log_loss(), serving.log_loss()
        if (live_loss is not None and serving_loss is not None and live_loss * ratio > serving_loss
                and significantly_lower(per_sample_log_loss(serving), per_sample_log_loss(live))):
            return f"log-loss {live_loss:.4f} > serving {serving_loss:.4f} / {ratio}"
        return ""

    def _promote(self, now: float, metrics: dict[str, Any]) -> Version:
        alpha = self.config.fusion_alpha
        fuse(self.live_rec, self.serving_rec, alpha)
        if self.live_click is not None and self.serving_click is not None:
            fuse(self.live_click, self.serving_click, alpha)
        metrics = {**metrics, "samples": self.live_window.count + self.live_window.click_count}
        version = delta_version(self.live_rec, self.serving_rec, self.live_click, self.serving_click,
                                self.next_number(), self.version, now, metrics)
        self.version = version.number
        # Shipped: older evictions are known to every reader of this version.
        self.live_rec.store.prune_evicted(self.live_rec.store.version)
        if self.live_click is not None:
            self.live_click.store.prune_evicted(self.live_click.store.version)
        self._set_serving(version.number)
        return version

    def rollback(self, to_version: int, now: float) -> Version:
        """Pin serving (and live) to a kept promoted version; returns it as a full Version with a new number."""
        for kept in (*self.kept, self.good):
            if kept[0] == to_version:
                break
        else:
            raise KeyError(f"version {to_version} is not kept (kept: {self.held()})")
        # An operator's choice is good by definition: no probation for it.
        return self._restore(kept, now, {"rollback_to": to_version})

    def next_number(self) -> int:
        """The number the next version gets: above every number published, by this run or before.

        A gateway keys what it holds by number and builds a delta on the version numbered as
        its parent, so a number used twice for two states would corrupt what it serves.
        """
        return max(self.version, self.floor) + 1

    def republish(self, now: float, metrics: dict[str, Any]) -> Version:
        """The serving state whole under a new number, for readers that may serve anything else
        (a learner resumed from a checkpoint older than what it had published)."""
        old, new = self.version, self.next_number()
        self.version = new
        self.kept = deque((((new if n == old else n), rec, click) for n, rec, click in self.kept),
                          maxlen=self.config.keep)
        if self.good[0] == old:
            self.good = (new, self.good[1], self.good[2])
        return full_version(self.serving_rec, self.serving_click, new, old, now, metrics)

    def held(self) -> list[int]:
        """Versions `rollback` can return to."""
        return sorted({n for n, _, _ in self.kept} | {self.good[0]})

    def _restore(self, kept: tuple[int, OnlineRecModel, OnlineClickModel | None], now: float,
                 metrics: dict[str, Any]) -> Version:
        """Serve (and learn on from) a kept snapshot again, as a full Version with a new number."""
        _, rec, click = kept
        self._reset_live_to(rec, click)
        parent, self.version = self.version, self.next_number()
        self._confirm_good()
        return full_version(rec, click, self.version, parent, now, metrics)

    def serving_model(self, fp16: bool = False) -> ServingRecModel:
        """The current serving version as a ServingRecModel (to bootstrap a reader)."""
        return ServingRecModel.from_model(self.serving_rec, self.version, fp16)

    # ---- checkpoints ----------------------------------------------------------------------
    def save(self, directory: Path | str, offsets: dict[str, int]) -> Path:
        """Live and serving models, windows and version, plus the caller's Kafka `offsets`."""
        tensors: dict[str, torch.Tensor] = {}
        models: dict[str, Any] = {}
        probation = self.on_probation
        for name, model in (("live_rec", self.live_rec), ("serving_rec", self.serving_rec),
                            ("live_click", self.live_click), ("serving_click", self.serving_click),
                            ("good_rec", self.good[1] if probation else None),
                            ("good_click", self.good[2] if probation else None)):
            if model is None:
                continue
            t, meta = state.rec_state(model) if isinstance(model, OnlineRecModel) else state.click_state(model)
            tensors |= state.prefixed(f"{name}.", t)
            models[name] = meta
        windows = (self.live_window, self.serving_window, self.good_window)
        card = {"version": self.version, "good_version": self.good[0], "config": self.config.__dict__,
                "offsets": offsets, "models": models,
                "windows": [list(w.ranks) for w in windows], "click_windows": [list(w.clicks) for w in windows]}
        return state.write_state_dir(directory, tensors, card)

    @classmethod
    def load(cls, directory: Path | str, devices: list[torch.device] | None = None
             ) -> tuple["OnlineLearner", dict[str, int]]:
        """A learner that continues exactly where `save` left it, and the offsets saved with it."""
        tensors, card = state.read_state_dir(directory)
        models = card["models"]

        def load_rec(name: str) -> OnlineRecModel:
            return state.rec_from_state(state.unprefixed(f"{name}.", tensors), models[name], devices)

        def load_click(name: str) -> OnlineClickModel | None:
            if name not in models:
                return None
            return state.click_from_state(state.unprefixed(f"{name}.", tensors), models[name], devices)

        learner = cls.__new__(cls)
        learner.config = LearnerConfig(**card["config"])
        learner.version = card["version"]
        learner.floor = 0
        learner._validation_credit = 0.0
        learner.live_rec, learner.live_click = load_rec("live_rec"), load_click("live_click")
        learner.serving_rec, learner.serving_click = load_rec("serving_rec"), load_click("serving_click")
        learner.kept = deque([(learner.version, learner.serving_rec, learner.serving_click)],
                             maxlen=learner.config.keep)
        learner._reset_windows()
        if "good_rec" in models:  # saved while a version was on probation
            learner.good = (card["good_version"], load_rec("good_rec"), load_click("good_click"))
        else:
            learner.good = (learner.version, learner.serving_rec, learner.serving_click)
        for window, ranks, clicks in zip((learner.live_window, learner.serving_window, learner.good_window),
                                         card["windows"], card["click_windows"]):
            window.add_ranks(ranks)  # a miss (inf) was written as null
            window.clicks.extend((p, y) for p, y in clicks)
        return learner, {k: int(v) for k, v in card["offsets"].items()}


def per_sample_ndcg(window: WindowMetric, k: int = 10) -> torch.Tensor:
    ranks = torch.tensor(list(window.ranks), dtype=torch.float64)
    return torch.where(ranks < k, 1.0 / torch.log2(ranks.clamp(max=1e9) + 2.0), torch.zeros_like(ranks))


def per_sample_log_loss(window: WindowMetric, clip: float = 1e-7) -> torch.Tensor:
    p = torch.tensor([q for q, _ in window.clicks], dtype=torch.float64).clamp(clip, 1 - clip)
    y = torch.tensor([float(t) for _, t in window.clicks], dtype=torch.float64)
    return -(y * p.log() + (1 - y) * (1 - p).log())


def significantly_lower(a: torch.Tensor, b: torch.Tensor, z: float = 2.0) -> bool:
    """Is the mean of the paired differences a - b below -z standard errors (and below 0)?"""
    n = min(len(a), len(b))
    if n < 2:
        return False
    d = a[-n:] - b[-n:]
    return bool(d.mean() < 0 and d.mean() < -z * d.std() / n ** 0.5)


def fuse(live: OnlineRecModel | OnlineClickModel, serving: OnlineRecModel | OnlineClickModel, alpha: float) -> None:
    """live := alpha * live + (1 - alpha) * serving on rows changed since serving, and dense weights.

    Rows serving does not have are kept as live has them; counts are live's.
    """
    changed = live.store.changed_rows_since(serving.store.version)
    found, old, _ = serving.store.export_rows(changed)
    if found:
        _, new, _ = live.store.export_rows(found)
        live.store.overwrite_rows(found, alpha * new + (1 - alpha) * old)
    with torch.no_grad():
        for p, q in zip(live.dense.parameters(), serving.dense.parameters()):
            p.mul_(alpha).add_(q.to(p.device), alpha=1 - alpha)


def _dense(model: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.dense.state_dict().items()}


def delta_version(rec: OnlineRecModel, since: OnlineRecModel, click: OnlineClickModel | None,
                  click_since: OnlineClickModel | None, number: int, parent: int, now: float,
                  metrics: dict[str, Any]) -> Version:
    """What changed in `rec` (and `click`) since the snapshots `since` / `click_since`."""
    row_ids, rows, _ = rec.store.export_rows(rec.store.changed_rows_since(since.store.version))
    pop_ids = [key for key in dict.fromkeys([*row_ids, *rec.changed_popularity]) if key in rec.store]
    version = Version(
        number=number, parent=parent, created=now, row_ids=row_ids, rows=rows,
        evicted=rec.store.evicted_since(since.store.version), pop_ids=pop_ids,
        popularity=rec.popularity.get(pop_ids)[:, 0].cpu(), dense=_dense(rec),
        transitions=rec.counts.to_arrays(rec.changed_sources),
        dropped_sources=[a for a in rec.changed_sources if a not in rec.counts], metrics=metrics)
    if click is not None and click_since is not None:
        changed = click.store.changed_rows_since(click_since.store.version)
        version.click_row_ids, version.click_rows, _ = click.store.export_rows(changed)
        version.click_stats = click.stats.get(version.click_row_ids).cpu()
        version.click_dense = _dense(click)
        _ad_counts(version, click, click.ad_counts.changed)
        version.ad_evicted = list(click.ad_counts.evicted)
    return version


def _ad_counts(version: Version, click: OnlineClickModel, keys: Any) -> None:
    version.ad_keys, values = click.ad_counts.export(keys)
    version.ad_counts = torch.tensor(values, dtype=torch.float64).reshape(-1, 2)


def full_version(rec: OnlineRecModel, click: OnlineClickModel | None, number: int, parent: int, now: float,
                 metrics: dict[str, Any]) -> Version:
    """Everything in `rec` (and `click`), for a reader that must start over."""
    ids = [key for s in range(len(rec.store.shards)) for key in rec.store.row_ids(s)[: rec.store.used_rows(s)]]
    row_ids, rows, _ = rec.store.export_rows(ids)
    version = Version(number=number, parent=parent, created=now, full=True, row_ids=row_ids, rows=rows,
                      pop_ids=row_ids, popularity=rec.popularity.get(row_ids)[:, 0].cpu(), dense=_dense(rec),
                      transitions=rec.counts.to_arrays(), metrics=metrics)
    if click is not None:
        ids = [key for s in range(len(click.store.shards)) for key in click.store.row_ids(s)[: click.store.used_rows(s)]]
        version.click_row_ids, version.click_rows, _ = click.store.export_rows(ids)
        version.click_stats = click.stats.get(version.click_row_ids).cpu()
        version.click_dense = _dense(click)
        _ad_counts(version, click, None)
    return version
