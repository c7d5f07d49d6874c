"""bench/ingest.py's per-process CPU and run-queue wait, which bench/serve.py's live pass reports."""
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from ingest import cpu_and_wait_seconds


def test_cpu_counts_every_thread_even_those_that_ended():
    def burn(seconds: float) -> None:  # this thread's own CPU time, whoever else runs
        until = time.thread_time() + seconds
        while time.thread_time() < until:
            pass

    cpu0, wait0 = cpu_and_wait_seconds(os.getpid())
    threads = [threading.Thread(target=burn, args=(0.2,)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cpu1, wait1 = cpu_and_wait_seconds(os.getpid())
    assert cpu1 - cpu0 >= 0.5  # the three threads' time, though each ended before the reading
    assert wait1 >= wait0  # a sum over the threads alive at each reading
