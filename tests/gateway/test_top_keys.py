"""TopKeys: the largest values of a changing dict, as a full sort would give them, without a scan per read."""
from __future__ import annotations

import random

from app.gateway.top_keys import TopKeys


def _values(pairs: list[tuple[str, float]]) -> list[float]:
    return [v for _, v in pairs]


def test_largest_equals_a_full_sort_through_rises_falls_deletions_and_ties():
    rng = random.Random(7)
    top = TopKeys(capacity=16)
    values = top.values
    for step in range(20_000):
        key = f"i{rng.randrange(400)}"
        roll = rng.random()
        if roll < 0.05:
            top.pop(key)
        else:
            # mostly rises (popularity keys grow with events), some falls, some ties
            old = values.get(key, 0.0)
            value = float(round(old + rng.choice([1, 1, 1, 2, -3, 0]))) if roll < 0.9 else float(rng.randrange(5))
            top.set(key, value)
        if step % 7 == 0:
            n = rng.choice([1, 5, 16, 40])  # 40: more than the candidates kept, so a scan
            want = sorted(values.values(), reverse=True)[:n]
            assert _values(top.largest(n)) == want  # ties may name other keys, never other values


def test_rising_keys_are_read_without_scans():
    rng = random.Random(3)
    top = TopKeys(capacity=64)
    values = top.values
    for step in range(50_000):  # popularity keys: an event raises its item's key
        key = f"i{int(rng.paretovariate(1.0)) % 5000}"
        top.set(key, values.get(key, 0.0) + rng.random())
        if step % 10 == 0:
            assert _values(top.largest(20)) == sorted(values.values(), reverse=True)[:20]
    assert top.rebuilds <= 1 and len(top.candidates) <= 2 * 64


def test_reads_follow_rises_falls_and_deletions_from_the_candidates_alone():
    top = TopKeys(capacity=64)
    for i in range(10_000):
        top.set(f"i{i}", float(i))
    assert [k for k, _ in top.largest(3)] == ["i9999", "i9998", "i9997"]
    assert top.rebuilds == 0
    top.set("i5", 20_000.0)  # an item below the floor rises to the top
    top.set("i9999", -1.0)  # the largest falls below the floor
    assert [k for k, _ in top.largest(3)] == ["i5", "i9998", "i9997"]
    top.pop("i9998")
    assert [k for k, _ in top.largest(2)] == ["i5", "i9997"]
    assert top.rebuilds == 0
    assert len(top.candidates) <= 2 * 64


def test_fewer_candidates_than_asked_rebuilds_from_the_whole_dict():
    top = TopKeys(capacity=4)
    for i in reversed(range(100)):  # largest first: the candidates are 96-99, the rest at or below the floor
        top.set(f"i{i}", float(i))
    values = top.values
    assert sorted(top.candidates) == ["i96", "i97", "i98", "i99"]
    for i in range(96, 100):  # every candidate goes
        top.pop(f"i{i}")
    assert _values(top.largest(4)) == [95.0, 94.0, 93.0, 92.0]
    assert top.rebuilds == 1
    assert _values(top.largest(200)) == sorted(values.values(), reverse=True)
