"""The event loop's lateness: a timer due every `interval_s`, and how late the loop ran it.

A request's latency is its handler's time plus however long the loop was busy elsewhere when
it came: a model swap's work in the loop, a thread holding the GIL, a collection, a process that
did not get a core. The handler histogram sees only the first; this sees the rest, at a cost of
one wake-up per interval.
"""
from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable


async def watch_loop_lag(observe: Callable[[float], None], interval_s: float = 0.05) -> None:
    while True:
        due = time.perf_counter() + interval_s
        await asyncio.sleep(interval_s)
        observe(max(0.0, time.perf_counter() - due))


def hand_over_gil_often(switch_ms: float) -> None:
    """Let a thread that holds the GIL keep it for at most `switch_ms` while the loop waits
    for it (a process-wide interpreter setting: call once, at start)."""
    sys.setswitchinterval(switch_ms / 1000.0)
