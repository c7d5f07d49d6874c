"""User sequences in the Beauty format (`user item item ...` per line, oldest item first).

Raw user and item ids are kept as strings (any token, not necessarily contiguous numbers)
and mapped to contiguous item indices 0..n_items-1 in order of first appearance. The
optional attributes file is JSON `{"item": [attr, ...]}`; attributes get indices too.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Dataset:
    """Sequences as item indices, with the id maps needed to go back to raw ids.

    sequences[u]: int64 array of item indices in time order for user `users[u]`.
    item_attributes[i]: int64 array of attribute indices of item i (empty when unknown).
    """

    users: list[str]
    items: list[str]
    sequences: list[np.ndarray]
    item_attributes: list[np.ndarray] = field(default_factory=list)
    n_attributes: int = 0

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_interactions(self) -> int:
        return int(sum(len(s) for s in self.sequences))

    def item_index(self) -> dict[str, int]:
        return {item: i for i, item in enumerate(self.items)}


def load_sequences(path: Path | str, attributes: Path | str | None = None) -> Dataset:
    """Read a sequence file (and optionally its attributes JSON) into a Dataset.

    Blank lines and users with no items are skipped; a user id seen twice has its items
    appended in file order. Raises ValueError naming the line for a malformed file.
    """
    path = Path(path)
    index: dict[str, int] = {}
    by_user: dict[str, list[int]] = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if not parts:
                continue
            if len(parts) == 1:
                continue  # a user without items carries nothing to learn or evaluate
            seq = by_user.setdefault(parts[0], [])
            for raw in parts[1:]:
                idx = index.get(raw)
                if idx is None:
                    idx = index[raw] = len(index)
                seq.append(idx)
    if not by_user:
        raise ValueError(f"{path} holds no `user item ...` lines")
    users = list(by_user)
    data = Dataset(
        users=users,
        items=list(index),
        sequences=[np.asarray(by_user[u], dtype=np.int64) for u in users],
    )
    if attributes is not None:
        data.item_attributes, data.n_attributes = load_attributes(attributes, data.items)
    return data


def load_attributes(path: Path | str, items: list[str]) -> tuple[list[np.ndarray], int]:
    """Attribute indices per item (aligned with `items`) and the attribute count.

    Items missing from the file get an empty array; attributes of unknown items are ignored.
    """
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object {{item: [attribute, ...]}}")
    attr_index: dict[str, int] = {}
    out: list[np.ndarray] = []
    for item in items:
        values = raw.get(item, [])
        if not isinstance(values, list):
            values = [values]
        idx = []
        for v in values:
            key = str(v)
            if key not in attr_index:
                attr_index[key] = len(attr_index)
            idx.append(attr_index[key])
        out.append(np.asarray(sorted(set(idx)), dtype=np.int64))
    return out, len(attr_index)


@dataclass(frozen=True)
class Split:
    """One leave-one-out split: train prefixes, targets and the users they belong to.

    train[u] is every item of user u before the cut (may be empty); target[j] is the
    held-out item of user evaluated[j], whose history is train[evaluated[j]].
    """

    train: list[np.ndarray]
    evaluated: np.ndarray  # [E] user indices with a target
    targets: np.ndarray  # [E] item indices


def split_leave_one_out(sequences: list[np.ndarray], holdout: int) -> Split:
    """Cut the last `holdout` items of every user; the first held-out one is the target.

    holdout=1: test split (train = all but last, target = last).
    holdout=2: validation split (train = all but last two, target = second-last).
    Users with no item before the target are not evaluated (nothing to rank from).
    """
    if holdout < 1:
        raise ValueError("holdout must be >= 1")
    train = [s[: max(len(s) - holdout, 0)] for s in sequences]
    evaluated = [u for u, s in enumerate(sequences) if len(s) > holdout]
    targets = [sequences[u][len(sequences[u]) - holdout] for u in evaluated]
    return Split(
        train=train,
        evaluated=np.asarray(evaluated, dtype=np.int64),
        targets=np.asarray(targets, dtype=np.int64),
    )
