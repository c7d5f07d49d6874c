"""glibc's malloc in a gateway, set once at its start (`streamrank gateway`, before its threads).

Two defaults let a long-running gateway hold memory it has freed (which of the two matters
more is not measured apart):
- a thread gets an arena of its own (up to 8 per core): a gateway built each learner version
  in a thread when this was measured, and what that thread freed sat in its arena, unused by
  the event loop's;
- the mmap threshold rises to the largest block freed so far (up to 32 MiB), so after one large
  array was freed, every later one (a version's count arrays, its rows) came from the heap,
  where the small objects between them keep its pages from being handed back.
Two arenas and a fixed 128 KiB threshold (large blocks mapped, and unmapped when freed):
`bench/scale.py --events 600000`, twice each way in one hour: gateway RSS grew 985 and 955 B a
shopper by the slope against 1,233 and 1,239 B with glibc's defaults, and 259 and 260 MB over
the run against 293 and 292 (docs/results/scale-600k-allocator.json).
Only the gateway: set in every process in those runs, the learner took 0.19-0.22 CPU-ms an event
against 0.15 with the defaults (it allocates and frees large tensors all the time, and each one
mapped is fresh pages to fault in), and the million-shopper run's learner then caught up 190 s
after ingest instead of 27 s; the worker's CPU did not move, nor did its memory matter.
A variable glibc reads itself (MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_) wins over the setting;
on another C library nothing is changed.
"""
from __future__ import annotations

import ctypes
import logging
import os
import platform

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
M_ARENA_MAX = -8


def tune_allocator(arena_max: int, mmap_threshold: int) -> dict[str, int]:
    """Set what is not 0 and not set in the environment already; returns what was set. Call it
    before the process starts threads: glibc fixes its arena limit when a second thread first allocates."""
    if platform.libc_ver()[0] != "glibc":
        return {}
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done: dict[str, int] = {}
    for name, option, value, env in (("arena_max", M_ARENA_MAX, arena_max, "MALLOC_ARENA_MAX"),
                                     ("mmap_threshold", M_MMAP_THRESHOLD, mmap_threshold, "MALLOC_MMAP_THRESHOLD_")):
        if value > 0 and env not in os.environ:
            if mallopt(option, value) == 1:
                done[name] = value
            else:
                log.warning("mallopt(%s, %d) refused; glibc's default stays", name, value)
    return done
