"""SIGUSR1 on a worker logs where its consumer stands, then its threads and tasks.

A worker that stops making progress logs nothing by itself. mode's dump of threads and
asyncio tasks follows what this prints first: what Faust and aiokafka know
per assigned partition (position, paused, highwater, Faust's read and committed offsets,
whether the partition is set aside for a full stream buffer) and the flow flags, which is
what a stalled partition is diagnosed from (`app/processes.py:Process.dump_tasks`).
"""
from __future__ import annotations

import logging
import signal
import sys
from typing import Any

from mode.utils.logging import cry

log = logging.getLogger(__name__)


def consumer_state(app: Any) -> str:
    consumer = app.consumer
    lines = [f"flow_active={consumer.flow_active} flow_control_active={app.flow_control.is_active()} "
             f"rebalancing={app.rebalancing} in_recovery={app.in_recovery} "
             f"generation={app.consumer_generation_id} unacked={len(consumer._unacked_messages)}"]
    client = getattr(consumer._thread, "_consumer", None)  # aiokafka's, on the consumer thread
    assignment = getattr(getattr(client, "_subscription", None), "subscription", None)
    assignment = getattr(assignment, "assignment", None)
    active = consumer._active_partitions or set()
    for tp in sorted(consumer.assignment()):
        state = assignment.state_value(tp) if assignment is not None else None
        position = state._position if state is not None else None
        lines.append(
            f"{tp.topic}[{tp.partition}] position={position} highwater={getattr(state, 'highwater', None)} "
            f"paused={getattr(state, 'paused', None)} faust_paused={tp in consumer._paused_partitions} "
            f"active={tp in active} buffered={tp in consumer._buffered_partitions} "
            f"read={consumer._read_offset.get(tp)} committed={consumer._committed_offset.get(tp)} "
            f"acked_head={sorted(consumer._acked.get(tp, []))[:3]}")
    return "\n".join(lines)


def install(app: Any) -> None:
    """SIGUSR1: the consumer state, then mode's dump of threads and tasks (its own handler's)."""
    def on_sigusr1() -> None:
        try:
            print("CONSUMER STATE\n" + consumer_state(app), file=sys.stderr, flush=True)
        except Exception as exc:  # noqa: BLE001  (a diagnostic must not take the worker down)
            log.warning("consumer state not available: %r", exc)
        cry(file=sys.stderr)

    app.loop.add_signal_handler(signal.SIGUSR1, on_sigusr1)
