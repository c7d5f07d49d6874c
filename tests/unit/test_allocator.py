"""app/allocator.py: glibc's malloc set at start-up (each case in a fresh interpreter: mallopt
changes the whole process)."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from app.allocator import tune_allocator
from app.settings import Settings

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# After a 1 MiB mapped block is freed, glibc's dynamic threshold rises to 1 MiB: a 512 KiB block
# then comes from the heap. With the threshold fixed, it is mapped (mallinfo2's hblks counts them).
PROBE = """
import ctypes, json, sys
from app.allocator import tune_allocator
done = tune_allocator(int(sys.argv[1]), int(sys.argv[2]))
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = Info
libc.free(libc.malloc(1 << 20))
before = libc.mallinfo2().hblks
block = libc.malloc(512 << 10)
mapped = libc.mallinfo2().hblks - before
libc.free(block)
print(json.dumps({"done": done, "mapped": mapped}))
"""

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")


def probe(arena_max: int, mmap_threshold: int, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | env
    out = subprocess.run([sys.executable, "-c", PROBE, str(arena_max), str(mmap_threshold)], cwd=ROOT,
                         env=environ, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@glibc
def test_a_fixed_threshold_maps_a_large_block_after_a_larger_one_was_freed() -> None:
    assert probe(0, 0) == {"done": {}, "mapped": 0}  # glibc's default: the threshold rose, from the heap
    assert probe(2, 128 * 1024) == {"done": {"arena_max": 2, "mmap_threshold": 128 * 1024}, "mapped": 1}


@glibc
def test_glibcs_own_variables_win_over_the_settings() -> None:
    got = probe(2, 128 * 1024, MALLOC_MMAP_THRESHOLD_="2097152", MALLOC_ARENA_MAX="4")
    assert got == {"done": {}, "mapped": 0}  # 512 KiB is under the 2 MiB the variable set


def test_a_gateways_defaults_are_two_arenas_and_a_128k_threshold_and_0_leaves_glibcs() -> None:
    gateway = Settings.from_env({}).gateway
    assert (gateway.malloc_arena_max, gateway.malloc_mmap_threshold) == (2, 128 * 1024)
    off = Settings.from_env({"STREAMRANK_GATEWAY_MALLOC_ARENA_MAX": "0",
                             "STREAMRANK_GATEWAY_MALLOC_MMAP_THRESHOLD": "0"}).gateway
    assert (off.malloc_arena_max, off.malloc_mmap_threshold) == (0, 0)
    assert tune_allocator(0, 0) == {}
