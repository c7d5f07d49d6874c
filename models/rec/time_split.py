"""The time-split protocol: train offline on the first part of the stream, then learn the rest online.

Events (user, item) come in time order. The offline hybrid (SASRec blended with extended
transitions, `models.rec.hybrid`) is trained on the first `split` of them (the checkpoint); the
rest are streamed in micro-batches, each event scored before anything learns it (prequential:
test, then train). Every event is ranked over all items, its user's earlier items masked (the
target excepted), ties against the target. The systems, as they would be served:
- frozen: the checkpoint's blend as it is (items it never saw cannot be ranked: a miss);
- online: the checkpoint's SASRec warm-started into `OnlineSASRec`, blended with the learner's
  count model (`OnlineRecModel`, warmed on the first part), both learning each micro-batch after
  scoring it;
- counts: the count model alone;
- retrained: a SASRec trained on every event up to the last streamed one (an upper bound: it
  has seen the targets it is scored on), blended like the online one with the count model as it
  stands; the offline hybrid retrained alike is reported beside it (`hybrid_retrained`), but its
  transition counts hold each target's own transition, which makes it a lookup of the answers
  rather than a bound.
The blends are chosen as `streamrank train` chooses its own: on a validation split of the first
part only (each user's last event there held out, a hybrid fitted on the rest), never on the
streamed events. `neural_only` gives the SASRec models alone. `new_items` is NDCG@10 over the
streamed events whose target was first seen after the checkpoint.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from models.data.sequences import Dataset, Split, split_leave_one_out
from models.metrics import batch_ranks, rank_metrics
from models.online.rec_model import OnlineRecConfig, OnlineRecModel
from models.rec.blend import LogBlend
from models.rec.hybrid import HybridConfig, HybridRecommender, fit_hybrid, tune_blend, tune_blend_of
from models.rec.online_blend import abstain_when_blind, count_parts, neural_logits
from models.rec.online_neural import OnlineSASRec, OnlineSASRecConfig
from models.rec.training import TrainConfig

Event = tuple[int, int]  # (user index, item index)
Log = Callable[[str], None]
SYSTEMS = ("online", "frozen", "counts", "retrained")
NEURAL = ("online", "frozen", "retrained")
RANKED = tuple("neural:" + n for n in NEURAL) + ("hybrid:retrained",)  # besides SYSTEMS


@dataclass(frozen=True)
class TimeSplitConfig:
    split: float = 0.8  # share of events the checkpoint is trained on
    max_events: int = 0  # streamed events scored (the first ones after the split); 0: all
    batch: int = 256  # events per prequential micro-batch
    # 10 epochs leave Beauty's checkpoint under-trained (frozen SASRec NDCG@10 0.033 against 0.065
    # at 20), which flatters the online model
    # blends tuned on 5,000 validation users: the offline recipe's 10,000 cost a minute more of a
    # Beauty run that must stay under 9 on two shared cores
    offline: HybridConfig = field(default_factory=lambda: HybridConfig(train=TrainConfig(epochs=20), tune_users=5000))
    online: OnlineSASRecConfig = field(default_factory=OnlineSASRecConfig)
    counts: OnlineRecConfig = field(default_factory=OnlineRecConfig)


@dataclass
class TimeSplitResult:
    """HR@10 and NDCG@10 of each served system, NDCG@10 on new items, the SASRec models alone."""

    served: dict[str, dict[str, float]]  # SYSTEMS
    new_items: dict[str, float]  # online, frozen
    neural_only: dict[str, dict[str, float]]  # NEURAL, and new_items: {online, frozen}
    blends: dict[str, str]  # offline, online: the blend chosen on validation
    hybrid_retrained: dict[str, float]  # the offline hybrid retrained on everything (targets counted)

    def to_json(self) -> dict[str, object]:
        """The issue's line, plus the SASRec models alone."""
        return {**self.served, "new_items": self.new_items, "neural_only": self.neural_only}


@dataclass
class _Stream:
    """The split: per-user training sequences and the streamed events after them."""

    train: list[list[int]]
    streamed: list[Event]
    known: np.ndarray  # [n_items] bool: seen before the split
    cut: int  # events the checkpoint was trained on


def split_events(n_users: int, n_items: int, events: Sequence[Event], config: TimeSplitConfig) -> _Stream:
    cut = int(round(config.split * len(events)))
    train: list[list[int]] = [[] for _ in range(n_users)]
    for user, item in events[:cut]:
        train[user].append(item)
    streamed = list(events[cut:])
    if config.max_events > 0:
        streamed = streamed[: config.max_events]
    known = np.zeros(n_items, dtype=bool)
    for _, item in events[:cut]:
        known[item] = True
    return _Stream(train, streamed, known, cut)


@dataclass
class _Offline:
    """What is fitted before the stream: the two hybrids, the warmed count model, the blends."""

    frozen: HybridRecommender
    retrained: HybridRecommender
    counts: OnlineRecModel
    online_blend: LogBlend


def _fit_offline(data: Dataset, stream: _Stream, config: TimeSplitConfig, log: Log) -> _Offline:
    """Choose both blends on validation, then fit the checkpoint and the upper bound."""
    start = time.monotonic()
    blend, online_blend, counts, epochs = _validate(data, stream.train, config, log)
    everything = [list(s) for s in stream.train]
    for user, item in stream.streamed:
        everything[user].append(item)
    frozen, retrained = (fit_hybrid(data, [np.asarray(s, dtype=np.int64) for s in sequences], config.offline,
                                    blend=blend, epochs=epochs)[0] for sequences in (stream.train, everything))
    log(f"offline: validation, checkpoint and retrained hybrids in {time.monotonic() - start:.1f}s")
    return _Offline(frozen, retrained, counts, online_blend)


def _validate(data: Dataset, train: list[list[int]], config: TimeSplitConfig,
              log: Log) -> tuple[LogBlend, LogBlend, OnlineRecModel, int]:
    """(offline blend, online blend, the count model warmed on `train`, epochs for the final fits).

    As `streamrank train` does: each user's last event of `train` is held out, a hybrid (and the
    count model) fitted on the rest, the blends picked on the held-out events.
    """
    start = time.monotonic()
    val = split_leave_one_out([np.asarray(s, dtype=np.int64) for s in train], holdout=1)
    model_v, history_v = fit_hybrid(data, val.train, config.offline)
    counts = OnlineRecModel(config.counts)
    _warm(counts, [[data.items[i] for i in s] for s in val.train], config.offline.max_len)
    blend, table = tune_blend(model_v, val, config.offline)
    online_blend, online_table = _tune_online(data, model_v, counts, val, config.offline)
    log(f"validation ({len(val.evaluated)} held-out events, {time.monotonic() - start:.0f}s): offline blend "
        f"{blend.name} NDCG@10 {table[blend.name]['NDCG@10']:.4f}; online blend {online_blend.name} "
        f"{online_table[online_blend.name]['NDCG@10']:.4f}")
    held_out = [([data.items[i] for i in val.train[u][-config.offline.max_len:]], data.items[t])
                for u, t in zip(val.evaluated.tolist(), val.targets.tolist())]
    for begin in range(0, len(held_out), 1024):  # the count model now knows the whole first part too
        counts.learn(held_out[begin:begin + 1024])
    return blend, online_blend, counts, max(1, len(history_v.loss))


def _warm(counts: OnlineRecModel, sequences: list[list[str]], max_len: int) -> None:
    for start in range(0, len(sequences), 256):
        counts.learn(_samples(sequences[start:start + 256], max_len))


def _tune_online(data: Dataset, model_v: HybridRecommender, counts: OnlineRecModel, val: Split,
                 config: HybridConfig) -> tuple[LogBlend, dict[str, dict[str, float]]]:
    """The online blend's scale on validation: the validation SASRec stands in for the online one
    at the checkpoint (where it starts), the count model warmed on the validation prefixes."""
    index = data.item_index()

    def parts(histories: list[np.ndarray]) -> dict[str, torch.Tensor]:
        names = [[data.items[i] for i in h[-config.max_len:]] for h in histories]
        return {"neural": model_v.sasrec.score(histories), "prior": model_v.prior.unsqueeze(0),
                "transition": count_parts(counts, names, index, data.n_items)[1]}

    return tune_blend_of(parts, val, config)


class _Systems:
    """Every system, scoring a micro-batch to target ranks, and learning it after."""

    def __init__(self, data: Dataset, stream: _Stream, offline: _Offline, config: TimeSplitConfig, log: Log) -> None:
        self.items = data.items
        self.index = data.item_index()
        self.offline = offline
        self.counts = offline.counts
        self.known = stream.known
        self.unknown = torch.from_numpy(~stream.known)
        self.max_len = config.offline.max_len
        start = time.monotonic()
        self.online = OnlineSASRec.warm_start(copy.deepcopy(offline.frozen.sasrec), data.items, config.online,
                                              known=stream.known.tolist())
        self.online.remember([[data.items[i] for i in s] for s in stream.train])
        log(f"warm start: online rows {len(self.online.store)} in {time.monotonic() - start:.1f}s")
        self.learn_s = 0.0

    def ranks(self, histories: list[list[int]], targets: list[int]) -> dict[str, list[float]]:
        """Target ranks by system: SYSTEMS served, "neural:" + NEURAL the SASRec models alone,
        "hybrid:retrained" the offline hybrid retrained on everything."""
        t = torch.tensor(targets, dtype=torch.long)
        return {name: batch_ranks(scores, t, histories).tolist() for name, scores in self._scores(histories).items()}

    def _scores(self, histories: list[list[int]]) -> dict[str, torch.Tensor]:
        """[B, n_items] scores of every system."""
        known = [np.asarray([i for i in h if self.known[i]][-self.max_len:], dtype=np.int64) for h in histories]
        frozen = self.offline.frozen.parts(known)
        retrained = self.offline.retrained.parts([np.asarray(h[-self.max_len:], dtype=np.int64) for h in histories])
        names = [[self.items[i] for i in h[-self.max_len:]] for h in histories]
        counts, q = count_parts(self.counts, names, self.index, len(self.items))
        neural = neural_logits(self.online, names, self.index, len(self.items))
        served = self.offline.online_blend  # counts with a SASRec: the online one, or the retrained one
        out = {
            "frozen": self.offline.frozen.blend(frozen), "neural:frozen": frozen["neural"].clone(),
            "online": served({"neural": abstain_when_blind(neural), "transition": q, "prior": frozen["prior"]}),
            "neural:online": neural, "counts": counts,
            "retrained": served({"neural": retrained["neural"], "transition": q, "prior": retrained["prior"]}),
            "hybrid:retrained": self.offline.retrained.blend(retrained), "neural:retrained": retrained["neural"],
        }
        for name in ("frozen", "neural:frozen"):
            out[name][:, self.unknown] = float("-inf")
        return out

    def learn(self, histories: list[list[int]], targets: list[int]) -> None:
        sequences = [[self.items[i] for i in h[-self.max_len:]] + [self.items[t]] for h, t in zip(histories, targets)]
        start = time.monotonic()
        self.online.learn(sequences)
        self.learn_s += time.monotonic() - start
        self.counts.learn([(s[:-1], s[-1]) for s in sequences if len(s) >= 2])


def _samples(sequences: list[list[str]], max_len: int) -> list[tuple[list[str], str]]:
    """(history, target) for every event that has a history."""
    return [(s[max(0, k - max_len):k], s[k]) for s in sequences for k in range(1, len(s))]


def evaluate_time_split(data: Dataset, events: Sequence[Event], config: TimeSplitConfig,
                        log: Log = lambda line: None) -> TimeSplitResult:
    """The table of the protocol: HR@10 and NDCG@10 per system, NDCG@10 on new items."""
    stream = split_events(len(data.users), data.n_items, events, config)
    log(f"events: {len(events)}; checkpoint on {stream.cut}, streamed {len(stream.streamed)}; "
        f"items known at the checkpoint {int(stream.known.sum())}/{data.n_items}")
    offline = _fit_offline(data, stream, config, log)
    systems = _Systems(data, stream, offline, config, log)
    ranks, new = _stream(stream, systems, config, log)
    log(f"online learning: {len(stream.streamed)} events in {systems.learn_s:.1f}s "
        f"({len(stream.streamed) / max(systems.learn_s, 1e-9):.0f} events/s); {sum(new)} with a new target")
    fresh = torch.tensor(new, dtype=torch.bool)

    def metrics(name: str) -> dict[str, float]:
        return rank_metrics(torch.tensor(ranks[name], dtype=torch.float64), ks=(10,))

    def on_new(name: str) -> float:
        return rank_metrics(torch.tensor(ranks[name], dtype=torch.float64)[fresh], ks=(10,))["NDCG@10"]

    neural = {name: metrics("neural:" + name) for name in NEURAL}
    return TimeSplitResult(
        served={name: metrics(name) for name in SYSTEMS},
        new_items={name: on_new(name) for name in ("online", "frozen")},
        neural_only={**neural, "new_items": {name: on_new("neural:" + name) for name in ("online", "frozen")}},
        blends={"offline": offline.frozen.blend.name, "online": offline.online_blend.name},
        hybrid_retrained=metrics("hybrid:retrained"),
    )


def _stream(stream: _Stream, systems: _Systems, config: TimeSplitConfig,
            log: Log) -> tuple[dict[str, list[float]], list[bool]]:
    """Prequential pass: each micro-batch is scored by every system, then learned."""
    histories = [list(s) for s in stream.train]
    ranks: dict[str, list[float]] = {name: [] for name in SYSTEMS + RANKED}
    new: list[bool] = []
    last_log = time.monotonic()
    for start in range(0, len(stream.streamed), config.batch):
        batch = stream.streamed[start:start + config.batch]
        hist: list[list[int]] = []
        for user, item in batch:  # earlier events of the batch are inputs already, not yet learned
            hist.append(list(histories[user]))
            histories[user].append(item)
        targets = [item for _, item in batch]
        scored = [b for b, h in enumerate(hist) if h]  # a user's first event has nothing to rank from
        if scored:
            got = systems.ranks([hist[b] for b in scored], [targets[b] for b in scored])
            for name, r in got.items():
                ranks[name] += r
            new += [not stream.known[targets[b]] for b in scored]
        systems.learn(hist, targets)
        if time.monotonic() - last_log > 30:
            log(f"  streamed {start + len(batch)}/{len(stream.streamed)}")
            last_log = time.monotonic()
    return ranks, new
