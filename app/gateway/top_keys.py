"""The largest values of a dict that changes one key at a time, without a scan per read.

The trending list was `heapq.nlargest` over every item's popularity key, once a second: 3–5 ms
in-process at 56k items, and in a loaded gateway among the longest stretches of a busy event
loop (py-spy, bench/scale.py), which delayed the requests that arrived meanwhile: the p99. Here
a set of candidates is kept beside the values, with a floor: every key outside the set is at
or below the floor, every key in it at or above. A read then ranks only the candidates; a full scan happens only when too
few candidates are left (deletions, or keys that fell below the floor).
"""
from __future__ import annotations

import heapq
from operator import itemgetter

NONE_BELOW = float("-inf")


class TopKeys:
    """key -> value, written only through `set` and `pop`, so the candidates follow every change."""

    def __init__(self, capacity: int = 1024) -> None:
        self.values: dict[str, float] = {}  # every key's value: read on a rebuild only
        self.capacity = capacity
        self.candidates: dict[str, float] = {}
        self.floor = NONE_BELOW  # no key outside `candidates` is above it
        self.rebuilds = 0

    def __len__(self) -> int:
        return len(self.values)

    def set(self, key: str, value: float) -> None:
        self.values[key] = value
        if value > self.floor or (value == self.floor and key in self.candidates):
            self.candidates[key] = value
            if len(self.candidates) > 2 * self.capacity:  # amortised: one trim per `capacity` inserts
                self._keep(heapq.nlargest(self.capacity, self.candidates.items(), key=itemgetter(1)))
        else:  # at or below the floor: where the invariant allows every key outside
            self.candidates.pop(key, None)

    def pop(self, key: str) -> None:
        self.values.pop(key, None)
        self.candidates.pop(key, None)

    def largest(self, n: int) -> list[tuple[str, float]]:
        """The `n` largest (key, value) pairs of `values`, largest first (ties in any order)."""
        if len(self.candidates) < n and len(self.candidates) < len(self.values):
            self.rebuilds += 1
            self._keep(heapq.nlargest(max(n, self.capacity), self.values.items(), key=itemgetter(1)))
        return heapq.nlargest(n, self.candidates.items(), key=itemgetter(1))

    def _keep(self, top: list[tuple[str, float]]) -> None:
        self.candidates = dict(top)
        # Everything outside is at or below the smallest kept; when nothing is outside, no floor.
        self.floor = top[-1][1] if top and len(top) < len(self.values) else NONE_BELOW
