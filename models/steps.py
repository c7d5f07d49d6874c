"""Work that a caller runs whole, or a step at a time.

A `Steps[T]` generator does a bounded piece of work between yields and returns its result. A
gateway builds each model version this way on its event loop, a slice of steps between
requests (app/gateway/model_updates.py): in a thread, a build that wants the GIL takes it from
the loop at every switch interval, and at 1,000 requests/s the loop ran at half speed for the
whole build. Everyone else runs the steps whole (`run_steps`).
"""
from __future__ import annotations

from collections.abc import Generator, MutableMapping
from typing import Any, TypeVar

T = TypeVar("T")
Steps = Generator[None, None, T]


def run_steps(steps: Steps[T]) -> T:
    """Run every step; the result."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def emptied(table: MutableMapping[Any, Any], per_step: int) -> Steps[None]:
    """Delete `table`'s keys, `per_step` a step: its values are freed a few at a time (a dict
    dropped whole frees them all in one C call, which no switch interval interrupts)."""
    keys = list(table)
    for start in range(0, len(keys), per_step):
        for key in keys[start:start + per_step]:
            del table[key]
        yield
