"""Exponentially time-decayed counters: `value` at `to_ts` from a value last set at `from_ts`."""
from __future__ import annotations

import math


def decayed(value: float, from_ts: float, to_ts: float, half_life_s: float) -> float:
    """Decay `value` over `to_ts - from_ts` seconds; never grows when time runs backwards."""
    age = max(0.0, to_ts - from_ts)
    return value * math.exp(-math.log(2.0) * age / half_life_s)


def add_decayed(value: float, last_ts: float, weight: float, ts: float, half_life_s: float) -> tuple[float, float]:
    """Add `weight` at time `ts` to a counter last updated at `last_ts`; returns (value, ts).

    Late events (ts < last_ts) are decayed to the counter's time instead, so order of
    arrival does not change the result by more than rounding.
    """
    if ts >= last_ts:
        return decayed(value, last_ts, ts, half_life_s) + weight, ts
    return value + decayed(weight, ts, last_ts, half_life_s), last_ts
