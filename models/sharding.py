"""Where shards live and which shard an id belongs to (a plan applied from outside the store)."""
from __future__ import annotations

import hashlib
from collections.abc import Hashable

import torch


def available_devices() -> list[torch.device]:
    """One `cuda:i` per visible GPU (from torch.cuda.device_count()), else just the CPU."""
    count = torch.cuda.device_count()
    if count > 0:
        return [torch.device(f"cuda:{i}") for i in range(count)]
    return [torch.device("cpu")]


def shard_devices(num_shards: int, devices: list[torch.device] | None = None) -> list[torch.device]:
    """Device of each shard: shards are dealt round-robin over `devices` (default: all present)."""
    if num_shards < 1:
        raise ValueError("num_shards must be at least 1")
    devices = devices or available_devices()
    return [devices[s % len(devices)] for s in range(num_shards)]


def stable_hash(key: Hashable) -> int:
    """A 64-bit hash of an id that is the same in every process (unlike built-in hash() of str).

    Ints and their decimal strings hash alike, so `42` and `"42"` are the same id.
    """
    data = str(key).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def shard_of(key: Hashable, num_shards: int) -> int:
    """Shard index in [0, num_shards) for an id."""
    return stable_hash(key) % num_shards
