"""The gateway's loop-lag timer sees a stall of the event loop that no handler's time shows."""
from __future__ import annotations

import asyncio
import time

from app.gateway.loop_stalls import watch_loop_lag


async def test_a_blocked_loop_is_seen_as_a_late_timer():
    seen: list[float] = []
    watcher = asyncio.create_task(watch_loop_lag(seen.append, interval_s=0.01))
    await asyncio.sleep(0.05)
    quiet = list(seen)
    time.sleep(0.08)  # the loop is held, as by work that does not yield
    await asyncio.sleep(0.03)
    watcher.cancel()
    assert quiet and max(quiet) < 0.05
    assert max(seen) >= 0.06
