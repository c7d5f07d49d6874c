"""Thread pools of a process (BLAS and torch), set once at start-up by every entry point and bench."""
from __future__ import annotations

import os
import sys


def limit_threads(torch_threads: int, blas_threads: int = 1) -> None:
    """Cap BLAS at `blas_threads` and torch's intra-op pool at `torch_threads` (0: torch's default).

    One BLAS thread per process: numpy's default is a thread per core, and a serving pass of a
    few users then spun a second thread against the event loop, the search threads and the
    other processes (a recommendation miss took 5-10 ms instead of 0.5 ms with the cores busy).
    One torch thread per gateway: a second spinning intra-op thread made a query encoding ~15x
    slower (292 ms against 17 ms, cores busy). Scale with processes instead.
    Works whatever the import order: libraries already loaded are limited now (threadpoolctl,
    `torch.set_num_threads`), the ones loaded later and child processes read the environment.
    Nothing is imported that the process does not already use (the worker loads neither).
    """
    os.environ["OPENBLAS_NUM_THREADS"] = str(blas_threads)
    if torch_threads > 0:
        os.environ["OMP_NUM_THREADS"] = str(torch_threads)  # torch sizes its intra-op pool from it
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(torch_threads)
    from threadpoolctl import threadpool_limits

    # Not as a context manager: the limits hold for the life of the process. After torch's
    # set_num_threads, which would otherwise resize the BLAS torch brings with it.
    threadpool_limits(limits=blas_threads, user_api="blas")
