"""streamrank's composition root. `faust -A app worker` finds the Faust app as `app.app`."""
import os
from typing import Any

# One BLAS thread per process, set before numpy loads OpenBLAS (this package is imported
# before anything else of ours). numpy's default is a thread per core; a serving pass of a
# few users then spun a second thread against the event loop, the search threads and the
# other processes: a recommendation miss took 5-10 ms instead of 0.5 ms with the cores busy.
# Scale with processes, as with TORCH_THREADS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# Every Kafka consumer of the process reads past a record whose header key is not UTF-8.
from app import kafka_compat  # noqa: E402,F401 — not `import app.…`: that would bind `app.app`


def __getattr__(name: str) -> Any:
    # Built on first use, so `import app.settings` (the gateway, the jobs) stays light.
    if name == "app":
        from app.main import faust_app

        return faust_app
    raise AttributeError(name)
